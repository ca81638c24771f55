package autoconfig

import (
	"context"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// production is the README's production listeners: implicit TLS on 993,
// 995 and 465, STARTTLS on 587.
var production = Settings{Hostname: "mail.example.com", Services: []Service{
	{Protocol: "smtp", Port: 587}, {Protocol: "smtp", Port: 465, ImplicitTLS: true},
	{Protocol: "imap", Port: 993, ImplicitTLS: true}, {Protocol: "pop3", Port: 995, ImplicitTLS: true},
}}

// errDirectoryDown stands for a directory that does not answer.
var errDirectoryDown = errors.New("directory down")

func newHandler(s Settings) *Handler {
	return &Handler{Settings: s, IsLocalDomain: func(_ context.Context, d string) (bool, error) {
		switch d {
		case "example.com", "xn--bcher-kva.example":
			return true, nil
		case "down.example":
			return false, errDirectoryDown
		}
		return false, nil
	}}
}

// thunderbirdConfig is config-v1.1.xml as Thunderbird's readFromXML reads
// it, kept apart from the package's own types so that a wrong tag there
// shows here.
type thunderbirdConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID       string     `xml:"id,attr"`
		Domain   []string   `xml:"domain"`
		Display  string     `xml:"displayName"`
		Short    string     `xml:"displayShortName"`
		Incoming []tbServer `xml:"incomingServer"`
		Outgoing []tbServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type tbServer struct {
	Type, Hostname, SocketType, Username, Authentication string
	Port                                                 int
}

func (s *tbServer) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var raw struct {
		Type           string `xml:"type,attr"`
		Hostname       string `xml:"hostname"`
		Port           int    `xml:"port"`
		SocketType     string `xml:"socketType"`
		Username       string `xml:"username"`
		Authentication string `xml:"authentication"`
	}
	if err := d.DecodeElement(&raw, &start); err != nil {
		return err
	}
	*s = tbServer{raw.Type, raw.Hostname, raw.SocketType, raw.Username, raw.Authentication, raw.Port}
	return nil
}

func get(t *testing.T, h http.Handler, method, target, host, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Host = host // "" as a client without Host (HTTP/1.0) sends
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestThunderbirdURLForms: both of Thunderbird's URLs answer for a hosted
// domain, which comes from the emailaddress parameter or, without it, from
// the Host header (autoconfig.DOMAIN or DOMAIN itself, any port or case),
// and the document decodes with the fields Thunderbird reads.
func TestThunderbirdURLForms(t *testing.T) {
	h := newHandler(production)
	for _, tc := range []struct{ target, host string }{
		{"/mail/config-v1.1.xml?emailaddress=alice%40example.com", "autoconfig.example.com"},
		{"/mail/config-v1.1.xml", "autoconfig.example.com"},
		{"/mail/config-v1.1.xml", "AutoConfig.Example.COM.:80"},
		{"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=Alice%40Example.com", "example.com"},
		{"/.well-known/autoconfig/mail/config-v1.1.xml", "example.com:443"},
		{"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=bob%40example.com", "mail.example.com"},
	} {
		rec := get(t, h, http.MethodGet, tc.target, tc.host, "")
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s (Host %s): %d %s", tc.target, tc.host, rec.Code, rec.Body)
			continue
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/xml") {
			t.Errorf("GET %s: Content-Type %q", tc.target, ct)
		}
		var doc thunderbirdConfig
		if err := xml.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatalf("GET %s: %v\n%s", tc.target, err, rec.Body)
		}
		if doc.Version != "1.1" || doc.Provider.ID != "example.com" || !reflect.DeepEqual(doc.Provider.Domain, []string{"example.com"}) {
			t.Errorf("GET %s: provider %+v", tc.target, doc)
		}
		want := []tbServer{
			{"imap", "mail.example.com", "SSL", "%EMAILADDRESS%", "password-cleartext", 993},
			{"pop3", "mail.example.com", "SSL", "%EMAILADDRESS%", "password-cleartext", 995},
		}
		if !reflect.DeepEqual(doc.Provider.Incoming, want) {
			t.Errorf("GET %s: incoming %+v\nwant %+v", tc.target, doc.Provider.Incoming, want)
		}
		want = []tbServer{
			{"smtp", "mail.example.com", "SSL", "%EMAILADDRESS%", "password-cleartext", 465},
			{"smtp", "mail.example.com", "STARTTLS", "%EMAILADDRESS%", "password-cleartext", 587},
		}
		if !reflect.DeepEqual(doc.Provider.Outgoing, want) {
			t.Errorf("GET %s: outgoing %+v\nwant %+v", tc.target, doc.Provider.Outgoing, want)
		}
	}
}

const autodiscoverBody = `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>%s</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`

func autodiscoverRequest(addr string) string { return strings.Replace(autodiscoverBody, "%s", addr, 1) }

// TestHostileRequests: every malformed, oversized, foreign or unsupported
// request gets its precise 4xx (or 503 while the directory is down), and
// nothing panics.
func TestHostileRequests(t *testing.T) {
	h := newHandler(production)
	huge := strings.Repeat("<a>", MaxBodyBytes)
	tests := []struct {
		name, method, target, host, body string
		want                             int
	}{
		{"unknown path", "GET", "/mail/config.xml", "example.com", "", 404},
		{"unknown domain by address", "GET", "/mail/config-v1.1.xml?emailaddress=a%40other.example", "autoconfig.other.example", "", 404},
		{"unknown domain by host", "GET", "/mail/config-v1.1.xml", "autoconfig.other.example", "", 404},
		{"IP literal host", "GET", "/mail/config-v1.1.xml", "192.0.2.1", "", 404},
		{"IPv6 literal host", "GET", "/mail/config-v1.1.xml", "[2001:db8::1]:80", "", 400},
		{"no host, no address", "GET", "/mail/config-v1.1.xml", "", "", 400},
		{"non-ASCII address", "GET", "/mail/config-v1.1.xml?emailaddress=j%C3%B6rg%40example.com", "example.com", "", 400},
		{"non-ASCII domain", "GET", "/mail/config-v1.1.xml?emailaddress=a%40b%C3%BCcher.example", "example.com", "", 400},
		{"punycode domain", "GET", "/mail/config-v1.1.xml?emailaddress=a%40xn--bcher-kva.example", "x", "", 200},
		{"non-ASCII host", "GET", "/mail/config-v1.1.xml", "b\xc3\xbccher.example", "", 400},
		{"address without @", "GET", "/mail/config-v1.1.xml?emailaddress=example.com", "example.com", "", 400},
		{"address with control character", "GET", "/mail/config-v1.1.xml?emailaddress=a%0D%0A%40example.com", "example.com", "", 400},
		{"percent hack", "GET", "/mail/config-v1.1.xml?emailaddress=a%25b%40example.com", "example.com", "", 400},
		{"overlong address", "GET", "/mail/config-v1.1.xml?emailaddress=" + strings.Repeat("a", 250) + "%40example.com", "example.com", "", 400},
		{"two addresses", "GET", "/mail/config-v1.1.xml?emailaddress=a%40example.com&emailaddress=b%40example.com", "example.com", "", 400},
		{"malformed query", "GET", "/mail/config-v1.1.xml?emailaddress=%zz", "example.com", "", 400},
		{"POST to autoconfig", "POST", "/mail/config-v1.1.xml", "example.com", "x", 405},
		{"directory down", "GET", "/mail/config-v1.1.xml?emailaddress=a%40down.example", "example.com", "", 503},

		{"autodiscover GET", "GET", "/autodiscover/autodiscover.xml", "example.com", "", 405},
		{"autodiscover empty body", "POST", "/autodiscover/autodiscover.xml", "example.com", "", 400},
		{"autodiscover not XML", "POST", "/autodiscover/autodiscover.xml", "example.com", "EMailAddress=a@example.com", 400},
		{"autodiscover truncated", "POST", "/autodiscover/autodiscover.xml", "example.com", autodiscoverRequest("a@example.com")[:200], 400},
		{"autodiscover oversized", "POST", "/Autodiscover/Autodiscover.xml", "example.com", huge, 413},
		{"autodiscover entity", "POST", "/autodiscover/autodiscover.xml", "example.com",
			`<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><Autodiscover><Request><EMailAddress>&e;</EMailAddress></Request></Autodiscover>`, 400},
		{"autodiscover wrong root", "POST", "/autodiscover/autodiscover.xml", "example.com", `<Discover><Request><EMailAddress>a@example.com</EMailAddress></Request></Discover>`, 400},
		{"autodiscover wrong namespace", "POST", "/autodiscover/autodiscover.xml", "example.com", `<Autodiscover xmlns="urn:x"><Request><EMailAddress>a@example.com</EMailAddress></Request></Autodiscover>`, 400},
		{"autodiscover no address", "POST", "/autodiscover/autodiscover.xml", "example.com", `<Autodiscover><Request></Request></Autodiscover>`, 400},
		{"autodiscover two addresses", "POST", "/autodiscover/autodiscover.xml", "example.com",
			`<Autodiscover><Request><EMailAddress>a@example.com</EMailAddress><EMailAddress>b@example.com</EMailAddress></Request></Autodiscover>`, 400},
		{"autodiscover mobilesync", "POST", "/autodiscover/autodiscover.xml", "example.com",
			strings.Replace(autodiscoverRequest("a@example.com"), "outlook/responseschema/2006a", "mobilesync/responseschema/2006", 1), 400},
		{"autodiscover non-ASCII", "POST", "/autodiscover/autodiscover.xml", "example.com", autodiscoverRequest("jörg@example.com"), 400},
		{"autodiscover not UTF-8", "POST", "/autodiscover/autodiscover.xml", "example.com", autodiscoverRequest("j\xf6rg@example.com"), 400},
		{"autodiscover unknown domain", "POST", "/autodiscover/autodiscover.xml", "example.com", autodiscoverRequest("a@other.example"), 404},
		{"autodiscover directory down", "POST", "/autodiscover/autodiscover.xml", "example.com", autodiscoverRequest("a@down.example"), 503},
		{"autodiscover fine", "POST", "/AutoDiscover/AutoDiscover.xml", "autodiscover.example.com", autodiscoverRequest("a@example.com"), 200},

		{"mobileconfig without address", "GET", "/apple/mobileconfig", "example.com", "", 400},
		{"mobileconfig unknown domain", "GET", "/apple/mobileconfig?emailaddress=a%40other.example", "example.com", "", 404},
		{"mobileconfig non-ASCII", "GET", "/apple/mobileconfig?emailaddress=%C3%A9%40example.com", "example.com", "", 400},
		{"mobileconfig PUT", "PUT", "/apple/mobileconfig?emailaddress=a%40example.com", "example.com", "", 405},
		{"mobileconfig fine", "GET", "/apple/mobileconfig?emailaddress=a%40example.com", "example.com", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(t, h, tt.method, tt.target, tt.host, tt.body)
			if rec.Code != tt.want {
				t.Errorf("%s %s: %d %q, want %d", tt.method, tt.target, rec.Code, rec.Body, tt.want)
			}
			switch rec.Code {
			case 405:
				if rec.Header().Get("Allow") == "" {
					t.Error("405 without Allow")
				}
			case 503:
				if rec.Header().Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
			}
		})
	}
}

// TestNoServices: with no listener to announce, nothing is invented.
func TestNoServices(t *testing.T) {
	h := newHandler(Settings{Hostname: "mail.example.com"})
	for _, target := range []string{"/mail/config-v1.1.xml?emailaddress=a%40example.com", "/apple/mobileconfig?emailaddress=a%40example.com"} {
		if rec := get(t, h, "GET", target, "example.com", ""); rec.Code != 404 {
			t.Errorf("GET %s: %d, want 404", target, rec.Code)
		}
	}
	if rec := get(t, h, "POST", "/autodiscover/autodiscover.xml", "example.com", autodiscoverRequest("a@example.com")); rec.Code != 404 {
		t.Errorf("autodiscover: %d, want 404", rec.Code)
	}
}
