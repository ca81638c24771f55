package autoconfig

import (
	"encoding/xml"
	"net/http"
	"strconv"
)

// Thunderbird's autoconfig format, version 1.1, as Thunderbird reads it
// (the fields of its readFromXML); see
// https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat.
type clientConfig struct {
	XMLName  xml.Name      `xml:"clientConfig"`
	Version  string        `xml:"version,attr"`
	Provider emailProvider `xml:"emailProvider"`
}

type emailProvider struct {
	ID               string         `xml:"id,attr"`
	Domain           string         `xml:"domain"`
	DisplayName      string         `xml:"displayName"`
	DisplayShortName string         `xml:"displayShortName"`
	Incoming         []serverConfig `xml:"incomingServer"`
	Outgoing         []serverConfig `xml:"outgoingServer"`
}

type serverConfig struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Username       string `xml:"username"`
	Authentication string `xml:"authentication"`
}

// Thunderbird's placeholder for the address the user typed; it fills it in
// itself, so one answer serves every user of the domain.
const thunderbirdAddress = "%EMAILADDRESS%"

// Thunderbird's names for the connection security and for a password sent
// inside TLS (PLAIN/LOGIN, what vmaild offers).
const (
	socketSSL      = "SSL"
	socketSTARTTLS = "STARTTLS"
	authPassword   = "password-cleartext"
)

// ClientConfig is the config-v1.1.xml document for domain.
func ClientConfig(s Settings, domain string) ([]byte, error) {
	doc := clientConfig{
		Version: "1.1",
		Provider: emailProvider{
			ID: domain, Domain: domain, DisplayName: domain, DisplayShortName: domain,
		},
	}
	for _, sv := range s.Incoming() {
		doc.Provider.Incoming = append(doc.Provider.Incoming, thunderbirdServer(s.Hostname, sv))
	}
	for _, sv := range s.Outgoing() {
		doc.Provider.Outgoing = append(doc.Provider.Outgoing, thunderbirdServer(s.Hostname, sv))
	}
	return marshalXML(doc)
}

func thunderbirdServer(host string, sv Service) serverConfig {
	socket := socketSTARTTLS
	if sv.ImplicitTLS {
		socket = socketSSL
	}
	return serverConfig{
		Type: sv.Protocol, Hostname: host, Port: sv.Port, SocketType: socket,
		Username: thunderbirdAddress, Authentication: authPassword,
	}
}

// serveAutoconfig answers both of Thunderbird's URL forms. The domain is
// the emailaddress parameter's when given (Thunderbird always sends it),
// else the Host header's.
func (h *Handler) serveAutoconfig(w http.ResponseWriter, r *http.Request) error {
	if err := readOnly(r); err != nil {
		return err
	}
	_, domain, err := queryAddress(r)
	if err != nil {
		return err
	}
	if domain == "" {
		if domain, err = hostDomain(r.Host); err != nil {
			return err
		}
	}
	if err := h.hosted(r.Context(), domain); err != nil {
		return err
	}
	if len(h.Settings.Incoming()) == 0 || len(h.Settings.Outgoing()) == 0 {
		return refuse(http.StatusNotFound, "no IMAP, POP3 or submission listener to announce")
	}
	body, err := ClientConfig(h.Settings, domain)
	if err != nil {
		return err
	}
	return writeBody(w, r, contentTypeXML, body)
}

func marshalXML(v any) ([]byte, error) {
	out, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}

func writeBody(w http.ResponseWriter, r *http.Request, contentType string, body []byte) error {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	// Answers change with the configuration; a client asks once per setup.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
	return nil
}
