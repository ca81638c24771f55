package autoconfig

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// outlookResponse is the autodiscover answer as Outlook reads it: each
// element in the namespace it must be in.
type outlookResponse struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		User struct {
			DisplayName string `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a DisplayName"`
		} `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a User"`
		Account struct {
			AccountType string            `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a AccountType"`
			Action      string            `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Action"`
			Protocols   []outlookProtocol `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Protocol"`
		} `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Account"`
	} `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
}

type outlookProtocol struct {
	Type           string `xml:"Type"`
	Server         string `xml:"Server"`
	Port           int    `xml:"Port"`
	LoginName      string `xml:"LoginName"`
	DomainRequired string `xml:"DomainRequired"`
	SPA            string `xml:"SPA"`
	SSL            string `xml:"SSL"`
	Encryption     string `xml:"Encryption"`
	AuthRequired   string `xml:"AuthRequired"`
	UsePOPAuth     string `xml:"UsePOPAuth"`
}

// decodeOutlook reads a response as Outlook does; the fuzz target uses it
// too, since every response must be readable.
func decodeOutlook(t testing.TB, body []byte) outlookResponse {
	t.Helper()
	var r outlookResponse
	if err := xml.Unmarshal(body, &r); err != nil {
		t.Fatalf("autodiscover response does not parse: %v\n%s", err, body)
	}
	return r
}

// TestAutodiscover: the POX answer, in Outlook's namespaces, names the
// address as login and every service with its encryption; the address is
// canonical whatever case Outlook sent.
func TestAutodiscover(t *testing.T) {
	rec := get(t, newHandler(production), http.MethodPost, "/Autodiscover/Autodiscover.xml", "autodiscover.example.com",
		autodiscoverRequest(" Alice@Example.COM "))
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	r := decodeOutlook(t, rec.Body.Bytes())
	if r.Response.User.DisplayName != "alice@example.com" || r.Response.Account.AccountType != "email" || r.Response.Account.Action != "settings" {
		t.Errorf("account %+v", r.Response)
	}
	p := func(typ string, port int, enc, popAuth string) outlookProtocol {
		return outlookProtocol{typ, "mail.example.com", port, "alice@example.com", "off", "off", "on", enc, "on", popAuth}
	}
	want := []outlookProtocol{p("IMAP", 993, "SSL", ""), p("POP3", 995, "SSL", ""), p("SMTP", 465, "SSL", "on"), p("SMTP", 587, "TLS", "on")}
	if !reflect.DeepEqual(r.Response.Account.Protocols, want) {
		t.Errorf("protocols\n%+v\nwant\n%+v", r.Response.Account.Protocols, want)
	}
}

// plistlib reads a property list with python3's plistlib, a real peer, and
// returns it as JSON-decoded Go values.
func plistlib(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 not installed: the profile cannot be checked")
		}
		t.Skip("python3 not installed")
	}
	cmd := exec.Command(py, "-c", "import json, plistlib, sys; json.dump(plistlib.load(sys.stdin.buffer, fmt=plistlib.FMT_XML), sys.stdout)")
	cmd.Stdin = strings.NewReader(string(doc))
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("plistlib refuses the profile: %v %s\n%s", err, stderr, doc)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMobileconfigPlistlib: python3's plistlib reads the profile, whose
// mail payload names the best IMAP and submission services, the address
// as login, and stable identifiers; text that needs escaping survives.
func TestMobileconfigPlistlib(t *testing.T) {
	rec := get(t, newHandler(production), http.MethodGet, "/apple/mobileconfig?emailaddress=O%27Brien%26Co%40Example.com", "example.com", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/x-apple-aspen-config" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := rec.Header().Get("Content-Disposition"); cd != `attachment; filename="example.com.mobileconfig"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	v := plistlib(t, rec.Body.Bytes())
	const addr = "o'brien&co@example.com"
	content, _ := v["PayloadContent"].([]any)
	if len(content) != 1 {
		t.Fatalf("PayloadContent %v", v["PayloadContent"])
	}
	mail := content[0].(map[string]any)
	wantMail := map[string]any{
		"EmailAccountDescription": addr, "EmailAccountName": addr, "EmailAccountType": "EmailTypeIMAP", "EmailAddress": addr,
		"IncomingMailServerAuthentication": "EmailAuthPassword", "IncomingMailServerHostName": "mail.example.com",
		"IncomingMailServerPortNumber": 993.0, "IncomingMailServerUseSSL": true, "IncomingMailServerUsername": addr,
		"OutgoingMailServerAuthentication": "EmailAuthPassword", "OutgoingMailServerHostName": "mail.example.com",
		"OutgoingMailServerPortNumber": 465.0, "OutgoingMailServerUseSSL": true, "OutgoingMailServerUsername": addr,
		"OutgoingPasswordSameAsIncomingPassword": true,
		"PayloadDescription":                     "Mail account " + addr, "PayloadDisplayName": addr,
		"PayloadIdentifier": "com.example.mail.vmaild." + addr + ".mail", "PayloadType": "com.apple.mail.managed",
		"PayloadUUID": mail["PayloadUUID"], "PayloadVersion": 1.0,
	}
	if !reflect.DeepEqual(mail, wantMail) {
		t.Errorf("mail payload\n%v\nwant\n%v", mail, wantMail)
	}
	delete(v, "PayloadContent")
	wantTop := map[string]any{
		"PayloadDescription": "Mail settings for " + addr + " on mail.example.com", "PayloadDisplayName": "Mail (example.com)",
		"PayloadIdentifier": "com.example.mail.vmaild." + addr, "PayloadRemovalDisallowed": false,
		"PayloadType": "Configuration", "PayloadUUID": v["PayloadUUID"], "PayloadVersion": 1.0,
	}
	if !reflect.DeepEqual(v, wantTop) {
		t.Errorf("profile\n%v\nwant\n%v", v, wantTop)
	}
	uuid, _ := v["PayloadUUID"].(string)
	if len(uuid) != 36 || uuid == mail["PayloadUUID"] || uuid != profileUUID("com.example.mail.vmaild."+addr) {
		t.Errorf("PayloadUUID %q (mail payload %q): want distinct stable UUIDs", uuid, mail["PayloadUUID"])
	}

	// A server with POP3 only makes a POP account on STARTTLS ports.
	pop := Settings{Hostname: "mail.example.com", Services: []Service{{Protocol: "pop3", Port: 110}, {Protocol: "smtp", Port: 587}}}
	doc, err := Mobileconfig(pop, "a@example.com", "example.com")
	if err != nil {
		t.Fatal(err)
	}
	mail = plistlib(t, doc)["PayloadContent"].([]any)[0].(map[string]any)
	if mail["EmailAccountType"] != "EmailTypePOP" || mail["IncomingMailServerPortNumber"] != 110.0 || mail["OutgoingMailServerPortNumber"] != 587.0 {
		t.Errorf("POP3-only profile: %v", mail)
	}
}

// TestSRVRecords: RFC 6186 records for the configured services, implicit
// TLS preferred, and "no service" records for the others.
func TestSRVRecords(t *testing.T) {
	var got []string
	for _, r := range SRVRecords(production) {
		got = append(got, r.Record("example.com"))
	}
	want := []string{
		"_submissions._tcp.example.com. 3600 IN SRV 10 1 465 mail.example.com.",
		"_submission._tcp.example.com. 3600 IN SRV 15 1 587 mail.example.com.",
		"_imaps._tcp.example.com. 3600 IN SRV 10 1 993 mail.example.com.",
		"_imap._tcp.example.com. 3600 IN SRV 0 0 0 .",
		"_pop3s._tcp.example.com. 3600 IN SRV 20 1 995 mail.example.com.",
		"_pop3._tcp.example.com. 3600 IN SRV 0 0 0 .",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SRV records\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// FuzzParseAutodiscoverRequest: the parser never panics, refuses with a
// 4xx, and whatever it accepts is an ASCII canonical address whose
// response Outlook can read back with the same login.
//
//	go test -run '^$' -fuzz '^FuzzParseAutodiscoverRequest$' -parallel 1 ./protocols/autoconfig/
func FuzzParseAutodiscoverRequest(f *testing.F) {
	for _, s := range []string{
		autodiscoverRequest("alice@example.com"),
		autodiscoverRequest("Alice@Example.COM"),
		autodiscoverRequest("jörg@example.com"),
		autodiscoverRequest("a&amp;b@example.com"),
		autodiscoverRequest("<![CDATA[x@example.com]]>"),
		`<Autodiscover><Request><EMailAddress>a@example.com</EMailAddress></Request></Autodiscover>`,
		`<Autodiscover><Request><EMailAddress>a@example.com</EMailAddress></Request><Request/></Autodiscover>`,
		`<!DOCTYPE a [<!ENTITY e "x">]><Autodiscover><Request><EMailAddress>&e;@example.com</EMailAddress></Request></Autodiscover>`,
		`<Autodiscover xmlns="urn:x"><Request><EMailAddress>a@example.com</EMailAddress></Request></Autodiscover>`,
		"<Autodiscover><Request><EMailAddress>a@example.com",
		"",
		"\xff\xfe<\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseAutodiscoverRequest(strings.NewReader(string(body)))
		if err != nil {
			re, ok := err.(*requestError)
			if !ok || re.status < 400 || re.status > 499 {
				t.Fatalf("error %T %v is not a 4xx refusal", err, err)
			}
			return
		}
		canon, domain, err := ParseAddress(req.EMailAddress)
		if err != nil || canon != req.EMailAddress || domain != req.Domain {
			t.Fatalf("accepted %q (domain %q), which is not canonical: %v", req.EMailAddress, req.Domain, err)
		}
		doc, err := Autodiscover(production, req.EMailAddress)
		if err != nil {
			t.Fatal(err)
		}
		r := decodeOutlook(t, doc)
		for _, p := range r.Response.Account.Protocols {
			if p.LoginName != req.EMailAddress {
				t.Fatalf("login %q for address %q", p.LoginName, req.EMailAddress)
			}
		}
	})
}
