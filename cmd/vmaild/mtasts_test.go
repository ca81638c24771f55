package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/mtasts"
	"github.com/vmaild/vmaild/internal/testsrv"
)

// TestServeMTASTS: `vmaild serve` with mta_sts over TLS serves the
// configured policy for a hosted domain, chosen by the TLS server name,
// and 404 for others; the policy reads back with the senders' parser.
func TestServeMTASTS(t *testing.T) {
	port := testsrv.FreePort(t)
	d := newDaemon(t, fmt.Sprintf("mta_sts:\n  address: 127.0.0.1:%d\n  mode: enforce\n  mx: [mx1.example.com, \"*.mx.example.com\"]\n  max_age: 24h\n", port))
	d.start()
	d.cli("", "domain", "add", "example.com")
	get := func(sni, host string) (int, string, string) {
		t.Helper()
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			// The daemon's self-signed certificate; the name senders
			// send as SNI is what picks the domain.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: sni},
		}}
		req, err := http.NewRequest(http.MethodGet, "https://127.0.0.1:"+strconv.Itoa(port)+mtasts.WellKnownPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	code, ct, body := get("mta-sts.example.com", "mta-sts.example.com")
	if code != http.StatusOK || !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("policy: %d %q %s", code, ct, body)
	}
	p, err := mtasts.ParsePolicy([]byte(body))
	if err != nil || p.Mode != mtasts.Enforce || p.MaxAge != 24*time.Hour || !p.Match("mx1.example.com") || !p.Match("a.mx.example.com") || p.Match("mx2.example.com") {
		t.Fatalf("policy %q: %+v, %v", body, p, err)
	}
	if code, _, _ := get("mta-sts.example.org", "mta-sts.example.org"); code != http.StatusNotFound {
		t.Errorf("unhosted domain: %d, want 404", code)
	}
	// SNI wins over a Host header naming a hosted domain.
	if code, _, _ := get("mta-sts.example.org", "mta-sts.example.com"); code != http.StatusNotFound {
		t.Errorf("SNI of an unhosted domain: %d, want 404", code)
	}

	// curl, a real client, asks as a sender would: the name resolved to
	// the listener, so SNI and Host are mta-sts.example.com.
	curl := needCurl(t)
	url := "https://mta-sts.example.com:" + strconv.Itoa(port) + mtasts.WellKnownPath
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sS", "--fail", "-k", "--max-redirs", "0",
		"--resolve", "mta-sts.example.com:"+strconv.Itoa(port)+":127.0.0.1", url).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", url, err)
	}
	if string(out) != body {
		t.Errorf("curl got %q, want %q", out, body)
	}
	d.stop()
}

func needCurl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is required in CI")
		}
		t.Skip("curl not installed")
	}
	return p
}

// TestTLSPolicyConfigProblems: a bad table entry and a policy we would
// not accept from others are named when the configuration is read.
func TestTLSPolicyConfigProblems(t *testing.T) {
	path := t.TempDir() + "/vmaild.yaml"
	yaml := sqliteConfig(t.TempDir()) + `queue:
  tls:
    policy: ["example.com verify", "bad.test secure"]
mta_sts:
  address: "127.0.0.1:0"
  mode: strict
  mx: ["mx..example.com"]
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(path, nil)
	if err == nil {
		t.Fatal("configuration accepted")
	}
	for _, want := range []string{`queue.tls.policy: tls policy entry 2: level "secure"`, `mta_sts: mta-sts: policy mode "strict"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}
