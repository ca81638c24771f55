package mtasts

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// WellKnownPath is where a policy is served (RFC 8461 section 3.3).
const WellKnownPath = "/.well-known/mta-sts.txt"

// Handler serves one policy for every hosted domain D, at
// https://mta-sts.D/.well-known/mta-sts.txt. The name asked for is the
// TLS server name (SNI) when there is one, else the Host header; names of
// domains not hosted are 404.
type Handler struct {
	Policy Policy
	// IsHosted says whether the directory hosts a domain.
	IsHosted func(ctx context.Context, domain string) (bool, error)
	// Logger receives directory failures; nil discards.
	Logger *slog.Logger
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != WellKnownPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := r.Host
	if r.TLS != nil && r.TLS.ServerName != "" {
		name = r.TLS.ServerName
	}
	if host, _, err := net.SplitHostPort(name); err == nil {
		name = host
	}
	domain, ok := strings.CutPrefix(strings.ToLower(strings.TrimSuffix(name, ".")), "mta-sts.")
	if !ok || domain == "" {
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	hosted, err := h.IsHosted(ctx, domain)
	if err != nil {
		if h.Logger != nil {
			h.Logger.Warn("mta-sts: directory lookup failed", "domain", domain, "err", err)
		}
		http.Error(w, "directory unavailable", http.StatusServiceUnavailable)
		return
	}
	if !hosted {
		http.NotFound(w, r)
		return
	}
	body := h.Policy.Format()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	// A cache in front may keep it a little, never for the policy's
	// max_age: a changed policy is announced by the TXT record's id.
	w.Header().Set("Cache-Control", "max-age=300")
	w.Write(body)
}
