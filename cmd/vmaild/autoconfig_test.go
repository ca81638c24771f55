package main

import (
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testsrv"
	"github.com/vmaild/vmaild/protocols/autoconfig"
	"github.com/vmaild/vmaild/userdb"
)

// tbClientConfig is config-v1.1.xml as Thunderbird reads it (its
// readFromXML): the provider's id and domains, and for each server the
// type attribute and the hostname, port, socketType, username and
// authentication elements.
type tbClientConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID       string     `xml:"id,attr"`
		Domains  []string   `xml:"domain"`
		Display  string     `xml:"displayName"`
		Incoming []tbServer `xml:"incomingServer"`
		Outgoing []tbServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type tbServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Username       string `xml:"username"`
	Authentication string `xml:"authentication"`
}

// check is Thunderbird's sanitizing of a server: what it would refuse.
func (s tbServer) check(outgoing bool) error {
	types := map[string]bool{"imap": !outgoing, "pop3": !outgoing, "smtp": outgoing}
	switch {
	case !types[s.Type]:
		return fmt.Errorf("type %q", s.Type)
	case s.Port < 1 || s.Port > 65535:
		return fmt.Errorf("port %d", s.Port)
	case s.SocketType != "plain" && s.SocketType != "SSL" && s.SocketType != "STARTTLS":
		return fmt.Errorf("socketType %q", s.SocketType)
	case s.Authentication != "password-cleartext" && s.Authentication != "password-encrypted":
		return fmt.Errorf("authentication %q", s.Authentication)
	case s.Username == "":
		return fmt.Errorf("no username")
	}
	if _, err := userdb.CanonicalDomain(s.Hostname); err != nil {
		return fmt.Errorf("hostname %q: %v", s.Hostname, err)
	}
	return nil
}

// adResponse is the POX autodiscover answer as Outlook reads it, in its
// namespaces.
type adResponse struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		Account struct {
			AccountType string       `xml:"AccountType"`
			Action      string       `xml:"Action"`
			Protocols   []adProtocol `xml:"Protocol"`
		} `xml:"Account"`
	} `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
}

type adProtocol struct {
	Type       string `xml:"Type"`
	Server     string `xml:"Server"`
	Port       int    `xml:"Port"`
	LoginName  string `xml:"LoginName"`
	SSL        string `xml:"SSL"`
	Encryption string `xml:"Encryption"`
}

// autoconfigClient asks one autoconfig listener as the clients do.
type autoconfigClient struct {
	t    *testing.T
	base string // http(s)://127.0.0.1:port
	hc   *http.Client
}

func (c autoconfigClient) do(method, path, host, body string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Host = host
	if body != "" {
		req.Header.Set("Content-Type", "text/xml")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// thunderbird fetches config-v1.1.xml both ways Thunderbird does and
// returns the document, after checking both are the same and pass
// Thunderbird's sanitizing.
func (c autoconfigClient) thunderbird(domain, address string) tbClientConfig {
	c.t.Helper()
	q := "?emailaddress=" + strings.ReplaceAll(address, "@", "%40")
	var docs []tbClientConfig
	for _, u := range []struct{ path, host string }{
		{"/mail/config-v1.1.xml" + q, "autoconfig." + domain},
		{"/.well-known/autoconfig/mail/config-v1.1.xml" + q, domain},
	} {
		code, body := c.do(http.MethodGet, u.path, u.host, "")
		if code != http.StatusOK {
			c.t.Fatalf("GET %s (Host %s): %d %s", u.path, u.host, code, body)
		}
		var doc tbClientConfig
		if err := xml.Unmarshal(body, &doc); err != nil {
			c.t.Fatalf("GET %s: Thunderbird cannot read it: %v\n%s", u.path, err, body)
		}
		for _, s := range doc.Provider.Incoming {
			if err := s.check(false); err != nil {
				c.t.Errorf("incomingServer refused by Thunderbird: %v", err)
			}
		}
		for _, s := range doc.Provider.Outgoing {
			if err := s.check(true); err != nil {
				c.t.Errorf("outgoingServer refused by Thunderbird: %v", err)
			}
		}
		docs = append(docs, doc)
	}
	if !reflect.DeepEqual(docs[0], docs[1]) {
		c.t.Errorf("the two URL forms differ:\n%+v\n%+v", docs[0], docs[1])
	}
	return docs[0]
}

func (c autoconfigClient) outlook(address string) adResponse {
	c.t.Helper()
	body := `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>` + address + `</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`
	code, resp := c.do(http.MethodPost, "/autodiscover/autodiscover.xml", "autodiscover.example.com", body)
	if code != http.StatusOK {
		c.t.Fatalf("autodiscover: %d %s", code, resp)
	}
	var r adResponse
	if err := xml.Unmarshal(resp, &r); err != nil {
		c.t.Fatalf("Outlook cannot read the autodiscover answer: %v\n%s", err, resp)
	}
	return r
}

// tbServers is what Thunderbird is told: one line per server, "type host
// port security", incoming then outgoing, best first; a server with
// another login than the typed address is a line of its own.
func tbServers(doc tbClientConfig) []string {
	var out []string
	for _, s := range append(doc.Provider.Incoming, doc.Provider.Outgoing...) {
		if s.Username != "%EMAILADDRESS%" || s.Authentication != "password-cleartext" {
			out = append(out, "bad login: "+s.Username+" "+s.Authentication)
		}
		out = append(out, fmt.Sprintf("%s %s %d %s", s.Type, s.Hostname, s.Port, s.SocketType))
	}
	return out
}

// adServers is what Outlook is told, in tbServers' form; the login must be
// the address.
func adServers(r adResponse, address string) []string {
	var out []string
	for _, p := range r.Response.Account.Protocols {
		if p.LoginName != address || p.SSL != "on" {
			out = append(out, "bad login or SSL: "+p.LoginName+" "+p.SSL)
		}
		sec := map[string]string{"SSL": "SSL", "TLS": "STARTTLS"}[p.Encryption]
		out = append(out, fmt.Sprintf("%s %s %d %s", strings.ToLower(p.Type), p.Server, p.Port, sec))
	}
	return out
}

// TestAutoconfigFromConfig: for the embedded default, a production
// configuration (993/995/465/587, a certificate, a public name other than
// the greeting name) and a container's mapped ports, Thunderbird's and
// Outlook's answers, read as those clients read them, name exactly the
// enabled client listeners, implicit TLS first, on the announced host and
// ports, with the address as login; an unhosted domain gets 404.
func TestAutoconfigFromConfig(t *testing.T) {
	machine, _ := os.Hostname()
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"embedded default", "", []string{
			"imap " + machine + " 1993 SSL", "imap " + machine + " 1143 STARTTLS",
			"pop3 " + machine + " 1995 SSL", "pop3 " + machine + " 1110 STARTTLS",
			"smtp " + machine + " 5465 SSL", "smtp " + machine + " 5587 STARTTLS",
		}},
		{"production", `hostname: mx1.example.com
tls:
  cert_file: /etc/ssl/mail.example.com.crt
  key_file: /etc/ssl/mail.example.com.key
listen:
  smtp: {address: ":25"}
  submission: {address: ":587"}
  submissions: {address: ":465"}
  imap: {address: ""}
  imaps: {address: ":993"}
  pop3: {address: ""}
  pop3s: {address: ":995"}
autoconfig:
  address: ":443"
  tls: true
  hostname: mail.example.com
`, []string{
			"imap mail.example.com 993 SSL", "pop3 mail.example.com 995 SSL",
			"smtp mail.example.com 465 SSL", "smtp mail.example.com 587 STARTTLS",
		}},
		{"container with mapped ports", `hostname: mail.example.com
listen:
  submission: {address: ":5587", public_port: 587}
  submissions: {address: ""}
  imap: {address: ":1143", public_port: 143}
  imaps: {address: ":1993", public_port: 993}
  pop3: {address: ""}
  pop3s: {address: ""}
autoconfig:
  address: ":8080"
`, []string{
			"imap mail.example.com 993 SSL", "imap mail.example.com 143 STARTTLS",
			"smtp mail.example.com 587 STARTTLS",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCLI(t, sqliteConfig(t.TempDir())+tt.yaml)
			c.ok("", "domain", "add", "example.com")
			cfg, err := loadConfig(c.configPath, nil)
			if err != nil {
				t.Fatal(err)
			}
			dir := openDir(t, c.configPath)
			h := &autoconfig.Handler{Settings: cfg.autoconfigSettings(), IsLocalDomain: dir.users.IsLocalDomain}
			srv := httptest.NewServer(h)
			defer srv.Close()
			ac := autoconfigClient{t: t, base: srv.URL, hc: srv.Client()}

			doc := ac.thunderbird("example.com", "alice@example.com")
			if doc.Version != "1.1" || doc.Provider.ID != "example.com" || !reflect.DeepEqual(doc.Provider.Domains, []string{"example.com"}) || doc.Provider.Display == "" {
				t.Errorf("emailProvider: %+v", doc.Provider)
			}
			if got := tbServers(doc); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Thunderbird is told\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			r := ac.outlook("Alice@example.com")
			if r.Response.Account.AccountType != "email" || r.Response.Account.Action != "settings" {
				t.Errorf("autodiscover account: %+v", r.Response.Account)
			}
			if got := adServers(r, "alice@example.com"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Outlook is told\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if code, body := ac.do(http.MethodGet, "/mail/config-v1.1.xml?emailaddress=a%40example.net", "autoconfig.example.net", ""); code != http.StatusNotFound {
				t.Errorf("unhosted domain: %d %s, want 404", code, body)
			}
		})
	}
}

// TestAutoconfigConfigProblems: a bad public port or announced host name
// is named by configuration validation.
func TestAutoconfigConfigProblems(t *testing.T) {
	path := t.TempDir() + "/vmaild.yaml"
	yaml := sqliteConfig(t.TempDir()) + "listen:\n  imaps: {address: \":993\", public_port: 70000}\nautoconfig:\n  address: \":80\"\n  hostname: \"mail example\"\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(path, nil)
	if err == nil {
		t.Fatal("configuration accepted")
	}
	for _, want := range []string{"listen.imaps.public_port: 70000", `autoconfig.hostname: "mail example"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// TestServeAutoconfig: `vmaild serve` with autoconfig over TLS answers
// Thunderbird and Outlook with the ports it really listens on, for a
// domain added while it runs, and stops cleanly.
func TestServeAutoconfig(t *testing.T) {
	port := testsrv.FreePort(t)
	d := newDaemon(t, fmt.Sprintf("autoconfig:\n  address: 127.0.0.1:%d\n  tls: true\n", port))
	d.start()
	d.cli("", "domain", "add", "example.com")
	ac := autoconfigClient{t: t, base: "https://127.0.0.1:" + strconv.Itoa(port), hc: &http.Client{
		Timeout: 10 * time.Second,
		// The daemon's self-signed certificate.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}}
	p := func(name string) string { return strconv.Itoa(d.ports[name]) }
	want := []string{
		"imap mx.example.com " + p("imaps") + " SSL", "imap mx.example.com " + p("imap") + " STARTTLS",
		"pop3 mx.example.com " + p("pop3s") + " SSL", "pop3 mx.example.com " + p("pop3") + " STARTTLS",
		"smtp mx.example.com " + p("submissions") + " SSL", "smtp mx.example.com " + p("submission") + " STARTTLS",
	}
	if got := tbServers(ac.thunderbird("example.com", "bob@example.com")); !reflect.DeepEqual(got, want) {
		t.Errorf("Thunderbird is told\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := adServers(ac.outlook("bob@example.com"), "bob@example.com"); !reflect.DeepEqual(got, want) {
		t.Errorf("Outlook is told\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	code, body := ac.do(http.MethodGet, "/apple/mobileconfig?emailaddress=bob%40example.com", "example.com", "")
	if code != http.StatusOK || !strings.Contains(string(body), "<string>com.apple.mail.managed</string>") {
		t.Errorf("mobileconfig: %d %s", code, body)
	}
	if code, _ := ac.do(http.MethodGet, "/mail/config-v1.1.xml", "autoconfig.example.org", ""); code != http.StatusNotFound {
		t.Errorf("unhosted domain: %d, want 404", code)
	}
	d.stop()
}

// TestReadmeSRVRecords: the SRV records the README shows are the ones
// autoconfig.SRVRecords gives for the README's production listeners.
func TestReadmeSRVRecords(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var shown []string
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "_") && strings.Contains(line, " SRV ") {
			shown = append(shown, strings.Join(strings.Fields(line), " "))
		}
	}
	cfg := Config{Hostname: "mail.example.com", Listen: Listeners{
		SMTP: Listener{Address: ":25"}, Submission: Listener{Address: ":587"}, Submissions: Listener{Address: ":465"},
		IMAP: Listener{Address: ":143"}, IMAPS: Listener{Address: ":993"}, POP3: Listener{Address: ":110"}, POP3S: Listener{Address: ":995"},
	}}
	var want []string
	for _, r := range autoconfig.SRVRecords(cfg.autoconfigSettings()) {
		want = append(want, r.Record("example.com"))
	}
	if !reflect.DeepEqual(shown, want) {
		t.Errorf("README shows\n%s\nSRVRecords gives\n%s", strings.Join(shown, "\n"), strings.Join(want, "\n"))
	}
}
