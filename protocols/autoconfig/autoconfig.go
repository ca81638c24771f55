// Package autoconfig tells mail clients how to reach this server, so that a
// user types an address and a password and nothing else. One HTTP handler
// serves the three formats clients ask for:
//
//   - Thunderbird's autoconfig (config-v1.1.xml), at
//     http://autoconfig.DOMAIN/mail/config-v1.1.xml and
//     https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml;
//   - Outlook's "plain old XML" autodiscover, POSTed to
//     /autodiscover/autodiscover.xml (on autodiscover.DOMAIN);
//   - an Apple configuration profile (.mobileconfig) at /apple/mobileconfig.
//
// Every answer is derived from one Settings value (the public host name
// and the enabled IMAP, POP3 and submission services), and only for the
// domains the directory hosts; any other domain is 404. RFC 6186 SRV
// records for the same services come from SRVRecords.
package autoconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vmaild/vmaild/userdb"
)

// Limits on what a client may send and how long it may take. Real requests
// are a few hundred bytes and arrive at once.
const (
	// MaxBodyBytes bounds an autodiscover POST body.
	MaxBodyBytes = 16 << 10
	// maxHeaderBytes bounds the request line (query string included) and
	// the headers.
	maxHeaderBytes = 16 << 10
	// lookupTimeout bounds the directory question per request.
	lookupTimeout = 10 * time.Second
)

// Service is one way into the server that clients are told about.
type Service struct {
	// Protocol is "imap", "pop3" or "smtp" (submission).
	Protocol string
	// Port is the TCP port clients connect to.
	Port int
	// ImplicitTLS is TLS from the first byte (993, 995, 465); otherwise
	// the client is told to use STARTTLS, which every vmaild listener
	// offers.
	ImplicitTLS bool
}

// Settings is what every format announces.
type Settings struct {
	// Hostname is the name clients connect to; it should be the name in
	// the server's certificate.
	Hostname string
	// Services are the enabled client services in any order; the handler
	// announces them in the order of preference (see Incoming, Outgoing).
	Services []Service
}

// Incoming are the mail access services, best first: IMAP before POP3
// (folders, several devices), and implicit TLS before STARTTLS (RFC 8314
// section 3).
func (s Settings) Incoming() []Service {
	var out []Service
	for _, proto := range []string{"imap", "pop3"} {
		out = append(out, s.ordered(proto)...)
	}
	return out
}

// Outgoing are the submission services, implicit TLS (465) first.
func (s Settings) Outgoing() []Service { return s.ordered("smtp") }

func (s Settings) ordered(proto string) []Service {
	var out []Service
	for _, implicit := range []bool{true, false} {
		for _, sv := range s.Services {
			if sv.Protocol == proto && sv.ImplicitTLS == implicit {
				out = append(out, sv)
			}
		}
	}
	return out
}

// Handler serves the autoconfiguration formats. Its zero value is not
// usable: IsLocalDomain is required.
type Handler struct {
	Settings Settings
	// IsLocalDomain says whether a domain is hosted here; an error is the
	// directory being unavailable (503, the client tries again).
	IsLocalDomain func(ctx context.Context, domain string) (bool, error)
	Logger        *slog.Logger
}

// NewServer is an http.Server for h with bounded reads, writes and
// headers, as every vmaild listener has. Serve or ServeTLS it on a
// listener; Shutdown stops it.
func NewServer(h *Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// The paths are compared in lower case: Outlook spells autodiscover with
// a capital A, others do not, and path case means nothing to us.
const (
	pathAutoconfig      = "/mail/config-v1.1.xml"
	pathWellKnown       = "/.well-known/autoconfig/mail/config-v1.1.xml"
	pathAutodiscover    = "/autodiscover/autodiscover.xml"
	pathMobileconfig    = "/apple/mobileconfig"
	emailAddressParam   = "emailaddress"
	contentTypeXML      = "application/xml; charset=utf-8"
	contentTypeProfile  = "application/x-apple-aspen-config"
	retryAfterSeconds   = "60"
	autoconfigSubdomain = "autoconfig."
)

// requestError is a refusal with its HTTP status.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func refuse(status int, format string, args ...any) error {
	return &requestError{status: status, msg: fmt.Sprintf(format, args...)}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var err error
	switch strings.ToLower(r.URL.Path) {
	case pathAutoconfig, pathWellKnown:
		err = h.serveAutoconfig(w, r)
	case pathAutodiscover:
		err = h.serveAutodiscover(w, r)
	case pathMobileconfig:
		err = h.serveMobileconfig(w, r)
	default:
		err = refuse(http.StatusNotFound, "not found")
	}
	if err == nil {
		return
	}
	var re *requestError
	if !errors.As(err, &re) {
		re = &requestError{status: http.StatusInternalServerError, msg: "internal error"}
		h.logger().Error("autoconfig", "path", r.URL.Path, "err", err)
	}
	switch re.status {
	case http.StatusMethodNotAllowed:
		if strings.EqualFold(r.URL.Path, pathAutodiscover) {
			w.Header().Set("Allow", http.MethodPost)
		} else {
			w.Header().Set("Allow", "GET, HEAD")
		}
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	h.logger().Debug("autoconfig refused", "path", r.URL.Path, "status", re.status, "reason", re.msg,
		"client", r.RemoteAddr)
	http.Error(w, re.msg, re.status)
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Logger
}

// ParseAddress checks an e-mail address a client sent and returns it
// canonical (lower case) with its domain. Internationalised addresses are
// refused: the formats carry them inconsistently and vmaild's logins are
// ASCII; a domain in its xn-- form is ASCII and fine.
func ParseAddress(address string) (canonical, domain string, err error) {
	for i := 0; i < len(address); i++ {
		if c := address[i]; c >= 0x80 || c < 0x20 || c == 0x7f {
			return "", "", refuse(http.StatusBadRequest, "e-mail address must be printable ASCII (an internationalised domain in its xn-- form)")
		}
	}
	local, domain, err := userdb.Split(address)
	if err != nil {
		return "", "", refuse(http.StatusBadRequest, "malformed e-mail address: %v", err)
	}
	return local + "@" + domain, domain, nil
}

// hostDomain is the mail domain a request's Host header names: the host
// without port, trailing dot or the autoconfig. prefix of Thunderbird's
// first URL form.
func hostDomain(host string) (string, error) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	host = strings.TrimPrefix(host, autoconfigSubdomain)
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return "", refuse(http.StatusBadRequest, "host name must be ASCII (its xn-- form)")
		}
	}
	d, err := userdb.CanonicalDomain(host)
	if err != nil {
		return "", refuse(http.StatusBadRequest, "no mail domain in the Host header and no emailaddress parameter")
	}
	return d, nil
}

// hosted refuses a domain the directory does not host.
func (h *Handler) hosted(ctx context.Context, domain string) error {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	ok, err := h.IsLocalDomain(ctx, domain)
	switch {
	case err != nil:
		h.logger().Warn("autoconfig: directory unavailable", "domain", domain, "err", err)
		return refuse(http.StatusServiceUnavailable, "directory unavailable, try again later")
	case !ok:
		return refuse(http.StatusNotFound, "no mail service for %s here", domain)
	}
	return nil
}

// queryAddress is the emailaddress parameter, canonical; "" when absent.
func queryAddress(r *http.Request) (address, domain string, err error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "", "", refuse(http.StatusBadRequest, "malformed query string: %v", err)
	}
	vs := q[emailAddressParam]
	switch {
	case len(vs) == 0 || len(vs) == 1 && vs[0] == "":
		return "", "", nil
	case len(vs) > 1:
		return "", "", refuse(http.StatusBadRequest, "more than one emailaddress parameter")
	}
	return ParseAddress(vs[0])
}

func readOnly(r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return refuse(http.StatusMethodNotAllowed, "method %s not allowed: use GET", r.Method)
	}
	return nil
}
