package autoconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Apple's configuration profile: an XML property list holding one
// com.apple.mail.managed payload (Apple's "Configuration Profile
// Reference", Mail payload). It is unsigned, so iOS and macOS show it as
// "Unverified" and ask before installing; the user enters the password.
const (
	plistHeader = xml.Header + `<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n"
	payloadMail = "com.apple.mail.managed"
)

// plist values: string, int, bool, []plistEntry (a dict, ordered) and
// []any (an array). Only what a profile needs.
type plistEntry struct {
	key   string
	value any
}

// writePlist writes a property list document whose root is dict.
func writePlist(dict []plistEntry) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(plistHeader)
	b.WriteString(`<plist version="1.0">` + "\n")
	if err := writePlistValue(&b, dict, 0); err != nil {
		return nil, err
	}
	b.WriteString("</plist>\n")
	return b.Bytes(), nil
}

func writePlistValue(b *bytes.Buffer, v any, depth int) error {
	indent := func(d int) {
		for range d {
			b.WriteByte('\t')
		}
	}
	indent(depth)
	switch v := v.(type) {
	case string:
		b.WriteString("<string>")
		if err := xml.EscapeText(b, []byte(v)); err != nil {
			return err
		}
		b.WriteString("</string>\n")
	case int:
		fmt.Fprintf(b, "<integer>%d</integer>\n", v)
	case bool:
		if v {
			b.WriteString("<true/>\n")
		} else {
			b.WriteString("<false/>\n")
		}
	case []plistEntry:
		b.WriteString("<dict>\n")
		for _, e := range v {
			indent(depth + 1)
			b.WriteString("<key>")
			if err := xml.EscapeText(b, []byte(e.key)); err != nil {
				return err
			}
			b.WriteString("</key>\n")
			if err := writePlistValue(b, e.value, depth+1); err != nil {
				return err
			}
		}
		indent(depth)
		b.WriteString("</dict>\n")
	case []any:
		b.WriteString("<array>\n")
		for _, e := range v {
			if err := writePlistValue(b, e, depth+1); err != nil {
				return err
			}
		}
		indent(depth)
		b.WriteString("</array>\n")
	default:
		return fmt.Errorf("plist: no encoding for %T", v)
	}
	return nil
}

// profileUUID is a stable UUID (RFC 9562 version 8, from SHA-256) for a
// name: installing the profile for the same address again replaces it
// instead of adding a second account.
func profileUUID(name string) string {
	h := sha256.Sum256([]byte(name))
	h[6] = h[6]&0x0f | 0x80 // version 8
	h[8] = h[8]&0x3f | 0x80 // RFC variant
	return fmt.Sprintf("%X-%X-%X-%X-%X", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// reverseDNS is the reverse of a domain name, Apple's identifier style.
func reverseDNS(domain string) string {
	labels := strings.Split(domain, ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}

// Mobileconfig is the profile for one address: the best incoming service
// (an Apple mail account is IMAP or POP, one server) and the best
// submission service, the login being the address.
func Mobileconfig(s Settings, address, domain string) ([]byte, error) {
	in, out := s.Incoming(), s.Outgoing()
	if len(in) == 0 || len(out) == 0 {
		return nil, fmt.Errorf("mobileconfig: no incoming or no outgoing service")
	}
	accountType := "EmailTypeIMAP"
	if in[0].Protocol == "pop3" {
		accountType = "EmailTypePOP"
	}
	id := reverseDNS(s.Hostname) + ".vmaild." + address
	mail := []plistEntry{
		{"EmailAccountDescription", address},
		{"EmailAccountName", address},
		{"EmailAccountType", accountType},
		{"EmailAddress", address},
		{"IncomingMailServerAuthentication", "EmailAuthPassword"},
		{"IncomingMailServerHostName", s.Hostname},
		{"IncomingMailServerPortNumber", in[0].Port},
		// UseSSL on a STARTTLS port makes Mail upgrade with STARTTLS; on
		// 993/995/465 it is TLS from the start. Either way no password
		// travels in the clear.
		{"IncomingMailServerUseSSL", true},
		{"IncomingMailServerUsername", address},
		{"OutgoingMailServerAuthentication", "EmailAuthPassword"},
		{"OutgoingMailServerHostName", s.Hostname},
		{"OutgoingMailServerPortNumber", out[0].Port},
		{"OutgoingMailServerUseSSL", true},
		{"OutgoingMailServerUsername", address},
		{"OutgoingPasswordSameAsIncomingPassword", true},
		{"PayloadDescription", "Mail account " + address},
		{"PayloadDisplayName", address},
		{"PayloadIdentifier", id + ".mail"},
		{"PayloadType", payloadMail},
		{"PayloadUUID", profileUUID(id + ".mail")},
		{"PayloadVersion", 1},
	}
	return writePlist([]plistEntry{
		{"PayloadContent", []any{mail}},
		{"PayloadDescription", "Mail settings for " + address + " on " + s.Hostname},
		{"PayloadDisplayName", "Mail (" + domain + ")"},
		{"PayloadIdentifier", id},
		{"PayloadRemovalDisallowed", false},
		{"PayloadType", "Configuration"},
		{"PayloadUUID", profileUUID(id)},
		{"PayloadVersion", 1},
	})
}

// serveMobileconfig answers /apple/mobileconfig?emailaddress=…; the address
// is required, as the profile names it.
func (h *Handler) serveMobileconfig(w http.ResponseWriter, r *http.Request) error {
	if err := readOnly(r); err != nil {
		return err
	}
	addr, domain, err := queryAddress(r)
	if err != nil {
		return err
	}
	if addr == "" {
		return refuse(http.StatusBadRequest, "give the address: /apple/mobileconfig?emailaddress=user@example.com")
	}
	if err := h.hosted(r.Context(), domain); err != nil {
		return err
	}
	if len(h.Settings.Incoming()) == 0 || len(h.Settings.Outgoing()) == 0 {
		return refuse(http.StatusNotFound, "no IMAP, POP3 or submission listener to announce")
	}
	body, err := Mobileconfig(h.Settings, addr, domain)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Disposition", `attachment; filename="`+domain+`.mobileconfig"`)
	return writeBody(w, r, contentTypeProfile, body)
}
