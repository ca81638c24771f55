package autoconfig

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// The namespaces of Outlook's POX autodiscover ([MS-OXDSCLI]).
const (
	nsAutodiscoverRequest  = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	nsAutodiscoverResponse = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	// NSOutlookResponse is the only response schema served: Outlook's
	// account settings. ActiveSync's mobilesync schema has nothing to say
	// about IMAP.
	NSOutlookResponse = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)

// AutodiscoverRequest is what a POX autodiscover request asks.
type AutodiscoverRequest struct {
	// EMailAddress is the address, canonical (lower case).
	EMailAddress string
	// Domain is its domain.
	Domain string
}

// adRequest is the request document. Element names are matched in any
// namespace: clients differ in how carefully they set it.
type adRequest struct {
	XMLName xml.Name `xml:"Autodiscover"`
	Request []struct {
		EMailAddress             []string `xml:"EMailAddress"`
		AcceptableResponseSchema []string `xml:"AcceptableResponseSchema"`
	} `xml:"Request"`
}

// ParseAutodiscoverRequest reads a POX autodiscover request. Every error
// is a *requestError with its HTTP status (400 malformed or unsupported,
// 413 over MaxBodyBytes when r is an http.MaxBytesReader).
func ParseAutodiscoverRequest(r io.Reader) (AutodiscoverRequest, error) {
	var doc adRequest
	d := xml.NewDecoder(r)
	// Strict, and no entities beyond XML's five: a request names one
	// address and needs nothing else.
	d.Strict = true
	if err := d.Decode(&doc); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return AutodiscoverRequest{}, refuse(http.StatusRequestEntityTooLarge, "request body over %d bytes", tooBig.Limit)
		}
		return AutodiscoverRequest{}, refuse(http.StatusBadRequest, "malformed autodiscover request: %v", err)
	}
	if doc.XMLName.Space != "" && doc.XMLName.Space != nsAutodiscoverRequest {
		return AutodiscoverRequest{}, refuse(http.StatusBadRequest, "autodiscover request in namespace %q, want %s", doc.XMLName.Space, nsAutodiscoverRequest)
	}
	if len(doc.Request) != 1 {
		return AutodiscoverRequest{}, refuse(http.StatusBadRequest, "autodiscover request must have one Request element, has %d", len(doc.Request))
	}
	req := doc.Request[0]
	if len(req.EMailAddress) != 1 {
		return AutodiscoverRequest{}, refuse(http.StatusBadRequest, "autodiscover Request must have one EMailAddress, has %d", len(req.EMailAddress))
	}
	for _, schema := range req.AcceptableResponseSchema {
		if strings.TrimSpace(schema) != NSOutlookResponse {
			return AutodiscoverRequest{}, refuse(http.StatusBadRequest, "response schema %q not served; only %s", truncate(schema, 100), NSOutlookResponse)
		}
	}
	addr, domain, err := ParseAddress(strings.TrimSpace(req.EMailAddress[0]))
	if err != nil {
		return AutodiscoverRequest{}, err
	}
	return AutodiscoverRequest{EMailAddress: addr, Domain: domain}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// The response document.
type adResponse struct {
	XMLName  xml.Name  `xml:"Autodiscover"`
	XMLNS    string    `xml:"xmlns,attr"`
	Response adOutlook `xml:"Response"`
}

type adOutlook struct {
	XMLNS   string    `xml:"xmlns,attr"`
	User    adUser    `xml:"User"`
	Account adAccount `xml:"Account"`
}

type adUser struct {
	DisplayName string `xml:"DisplayName"`
}

type adAccount struct {
	AccountType string       `xml:"AccountType"`
	Action      string       `xml:"Action"`
	Protocols   []adProtocol `xml:"Protocol"`
}

type adProtocol struct {
	Type      string `xml:"Type"`
	Server    string `xml:"Server"`
	Port      int    `xml:"Port"`
	LoginName string `xml:"LoginName"`
	// DomainRequired off: the login is the address, no NT domain.
	DomainRequired string `xml:"DomainRequired"`
	// SPA off: a plain password inside TLS, not NTLM.
	SPA string `xml:"SPA"`
	SSL string `xml:"SSL"`
	// Encryption overrides SSL in Outlook 2010 and later: SSL is implicit
	// TLS, TLS is STARTTLS.
	Encryption   string `xml:"Encryption"`
	AuthRequired string `xml:"AuthRequired"`
	// UsePOPAuth: the SMTP login is the incoming server's.
	UsePOPAuth string `xml:"UsePOPAuth,omitempty"`
}

// Autodiscover is the POX response for one address.
func Autodiscover(s Settings, address string) ([]byte, error) {
	acct := adAccount{AccountType: "email", Action: "settings"}
	for _, sv := range append(s.Incoming(), s.Outgoing()...) {
		p := adProtocol{
			Type: strings.ToUpper(sv.Protocol), Server: s.Hostname, Port: sv.Port, LoginName: address,
			DomainRequired: "off", SPA: "off", SSL: "on", Encryption: "TLS", AuthRequired: "on",
		}
		if sv.ImplicitTLS {
			p.Encryption = "SSL"
		}
		if sv.Protocol == "smtp" {
			p.UsePOPAuth = "on"
		}
		acct.Protocols = append(acct.Protocols, p)
	}
	return marshalXML(adResponse{
		XMLNS: nsAutodiscoverResponse,
		Response: adOutlook{
			XMLNS: NSOutlookResponse, User: adUser{DisplayName: address}, Account: acct,
		},
	})
}

func (h *Handler) serveAutodiscover(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return refuse(http.StatusMethodNotAllowed, "method %s not allowed: POST the autodiscover request", r.Method)
	}
	if r.ContentLength > MaxBodyBytes {
		return refuse(http.StatusRequestEntityTooLarge, "request body of %s bytes, over %d", strconv.FormatInt(r.ContentLength, 10), MaxBodyBytes)
	}
	req, err := ParseAutodiscoverRequest(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return err
	}
	if err := h.hosted(r.Context(), req.Domain); err != nil {
		return err
	}
	if len(h.Settings.Incoming()) == 0 {
		return refuse(http.StatusNotFound, "no IMAP or POP3 listener to announce")
	}
	body, err := Autodiscover(h.Settings, req.EMailAddress)
	if err != nil {
		return fmt.Errorf("autodiscover response: %w", err)
	}
	return writeBody(w, r, contentTypeXML, body)
}
