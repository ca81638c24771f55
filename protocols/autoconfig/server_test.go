package autoconfig

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServerBounds: through NewServer on a real socket, an oversized
// request line is 431, and an oversized body is 413 whether announced by
// Content-Length or streamed chunked; the server keeps answering.
func TestServerBounds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := NewServer(newHandler(production), slog.New(slog.DiscardHandler))
	go hs.Serve(ln)
	defer hs.Close()
	base := "http://" + ln.Addr().String()
	hc := &http.Client{Timeout: 30 * time.Second}

	do := func(method, target string, body io.Reader, contentLength int64) int {
		t.Helper()
		req, err := http.NewRequest(method, base+target, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "example.com"
		req.ContentLength = contentLength
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %.60s: %v", method, target, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	big := strings.Repeat("a", 2*MaxBodyBytes)
	tests := []struct {
		name   string
		method string
		target string
		body   io.Reader
		length int64
		want   int
	}{
		{"request line over the header limit", "GET", "/mail/config-v1.1.xml?x=" + strings.Repeat("a", 2*maxHeaderBytes), nil, 0, http.StatusRequestHeaderFieldsTooLarge},
		{"body over the limit, announced", "POST", "/autodiscover/autodiscover.xml", strings.NewReader(big), int64(len(big)), http.StatusRequestEntityTooLarge},
		{"body over the limit, chunked", "POST", "/autodiscover/autodiscover.xml", io.MultiReader(strings.NewReader("<Autodiscover><Request><EMailAddress>"), strings.NewReader(big)), -1, http.StatusRequestEntityTooLarge},
		{"still serving", "GET", "/mail/config-v1.1.xml?emailaddress=a%40example.com", nil, 0, http.StatusOK},
	}
	for _, tt := range tests {
		if got := do(tt.method, tt.target, tt.body, tt.length); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}
