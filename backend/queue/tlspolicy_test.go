package queue

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/mtasts"
	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

func TestParseTLSPolicyTable(t *testing.T) {
	tests := []struct {
		name    string
		lines   []string
		want    TLSPolicyTable
		wantErr string
	}{
		{name: "empty", lines: nil, want: nil},
		{name: "entries, comments, case", lines: []string{
			"# partners",
			"example.com verify",
			"  .Example.NET.   ENCRYPT  # every subdomain",
			"",
			"legacy.test none",
			"b.test may", "c.test dane",
		}, want: TLSPolicyTable{
			{"example.com", TLSVerify}, {".example.net", TLSEncrypt}, {"legacy.test", TLSNone}, {"b.test", TLSMay}, {"c.test", TLSDANE},
		}},
		{name: "unknown level", lines: []string{"example.com secure"}, wantErr: "level"},
		{name: "missing level", lines: []string{"example.com"}, wantErr: "DESTINATION LEVEL"},
		{name: "extra field", lines: []string{"example.com verify match=x"}, wantErr: "DESTINATION LEVEL"},
		{name: "not a domain", lines: []string{"exa_mple..com verify"}, wantErr: "not a domain"},
		{name: "brackets", lines: []string{"[mx.example.com] verify"}, wantErr: "not a domain"},
		{name: "twice", lines: []string{"a.test may", "A.test. verify"}, wantErr: "twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTLSPolicyTable(tc.lines)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("entry %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestTLSPolicyTableLookup(t *testing.T) {
	table, err := ParseTLSPolicyTable([]string{"example.com verify", ".example.com encrypt", ".mx.example.com none", "other.test may"})
	if err != nil {
		t.Fatal(err)
	}
	for domain, want := range map[string]TLSLevel{
		"example.com":        TLSVerify,
		"EXAMPLE.com":        TLSVerify,
		"a.example.com":      TLSEncrypt,
		"a.b.example.com":    TLSEncrypt,
		"x.mx.example.com":   TLSNone, // the closest parent wins
		"other.test":         TLSMay,
		"sub.other.test":     "",
		"notexample.com":     "",
		"example.com.evil.x": "",
	} {
		got, ok := table.lookup(domain)
		if got != want || ok != (want != "") {
			t.Errorf("lookup(%q) = %q, %v; want %q", domain, got, ok, want)
		}
	}
}

// tlsRemote is the remote end of the TLS tests: remote.test with MX
// mx.remote.test (192.0.2.10) served by sink, routed through router.
type tlsRemote struct {
	dns    *queuetest.DNS
	router *queuetest.Router
	ca     *queuetest.CA
}

const tlsMXAddr = "192.0.2.10"

func newTLSRemote(t *testing.T) *tlsRemote {
	r := &tlsRemote{dns: queuetest.NewDNS(t), router: &queuetest.Router{}, ca: queuetest.NewCA(t)}
	r.dns.MX("remote.test", 10, "mx.remote.test")
	r.dns.A("mx.remote.test", tlsMXAddr)
	return r
}

// sink starts the MX with a server configuration and routes port 25 to it.
func (r *tlsRemote) sink(t *testing.T, opts queuetest.SinkOptions) *queuetest.Sink {
	s := queuetest.NewSink(t, opts)
	r.router.Route(tlsMXAddr+":25", s.Addr)
	return s
}

// mtaSTS publishes a policy for remote.test: the TXT record and an HTTPS
// server at mta-sts.remote.test with a certificate from the test's CA.
func (r *tlsRemote) mtaSTS(t *testing.T, policy string) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != mtasts.WellKnownPath || req.Host != "mta-sts.remote.test" {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(policy))
	}))
	srv.TLS = r.ca.ServerTLS(t, "mta-sts.remote.test")
	srv.StartTLS()
	t.Cleanup(srv.Close)
	r.dns.TXT("_mta-sts.remote.test", "v=STSv1; id=20261203;")
	r.dns.A("mta-sts.remote.test", "192.0.2.80")
	r.router.Route("192.0.2.80:443", srv.Listener.Addr().String())
}

// queue starts a queue that trusts the test's CA only.
func (r *tlsRemote) queue(t *testing.T, edit func(*Config)) (*Queue, *logBuf) {
	cfg, lb := testConfig(t, r.dns)
	cfg.Dial = r.router.Dial
	cfg.TLSConfig = &tls.Config{RootCAs: r.ca.Pool()}
	cfg.Retry = []time.Duration{time.Hour}
	if edit != nil {
		edit(&cfg)
	}
	return startQueue(t, cfg), lb
}

func send(t *testing.T, q *Queue, ctx context.Context, subject string) string {
	t.Helper()
	id, err := q.EnqueueBytes(ctx, "alice@local.test", []string{"bob@remote.test"}, testMessage(subject, 100))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// waitAttempt waits for the item's first attempt and returns its
// recipient.
func waitAttempt(t *testing.T, q *Queue, id string) Recipient {
	t.Helper()
	var rc Recipient
	waitFor(t, "an attempt", func() bool {
		it, err := q.Get(context.Background(), id)
		if err != nil {
			return false
		}
		rc = it.Recipients[0]
		return rc.Attempts > 0
	})
	return rc
}

func waitLog(t *testing.T, lb *logBuf, want ...string) {
	t.Helper()
	waitFor(t, "log lines "+strings.Join(want, ", "), func() bool {
		s := lb.String()
		for _, w := range want {
			if !strings.Contains(s, w) {
				return false
			}
		}
		return true
	})
}

// TestMTASTS: a policy in enforce mode, served over HTTPS by the remote,
// makes an MX with an untrusted certificate unusable (deferred, logged)
// and one with a trusted certificate fine; testing mode delivers to the
// untrusted one and reports; enforce skips an MX not in the policy.
func TestMTASTS(t *testing.T) {
	const enforce = "version: STSv1\nmode: enforce\nmx: mx.remote.test\nmax_age: 86400\n"
	const testing_ = "version: STSv1\nmode: testing\nmx: mx.remote.test\nmax_age: 86400\n"
	ctx := context.Background()

	t.Run("enforce, untrusted certificate", func(t *testing.T) {
		r := newTLSRemote(t)
		r.mtaSTS(t, enforce)
		untrusted, _ := queuetest.SelfSigned(t, "mx.remote.test")
		sink := r.sink(t, queuetest.SinkOptions{TLS: untrusted})
		q, lb := r.queue(t, nil)
		id := send(t, q, ctx, "enforce untrusted")
		rc := waitAttempt(t, q, id)
		if rc.State != Pending || rc.Status != "4.7.5" || rc.TLSPolicy != "mta-sts enforce" {
			t.Fatalf("recipient %+v, want pending 4.7.5 under mta-sts enforce", rc)
		}
		waitLog(t, lb, "deferred=1", `tls_policy="mta-sts enforce"`, "certificate signed by unknown authority")
		if n := len(sink.Messages()); n != 0 {
			t.Fatalf("sink got %d messages", n)
		}
	})
	t.Run("enforce, trusted certificate", func(t *testing.T) {
		r := newTLSRemote(t)
		r.mtaSTS(t, enforce)
		sink := r.sink(t, queuetest.SinkOptions{TLS: r.ca.ServerTLS(t, "mx.remote.test")})
		q, lb := r.queue(t, nil)
		send(t, q, ctx, "enforce trusted")
		m := sink.Wait(t, 1)
		waitEmpty(t, q)
		if !m[0].TLS {
			t.Fatal("delivered without TLS")
		}
		waitLog(t, lb, "delivered=1", "tls=verified", `tls_policy="mta-sts enforce"`)
	})
	t.Run("enforce, MX not in policy", func(t *testing.T) {
		r := newTLSRemote(t)
		r.mtaSTS(t, "version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 86400\n")
		sink := r.sink(t, queuetest.SinkOptions{TLS: r.ca.ServerTLS(t, "mx.remote.test")})
		q, lb := r.queue(t, nil)
		id := send(t, q, ctx, "enforce mismatch")
		rc := waitAttempt(t, q, id)
		if rc.State != Pending || rc.Status != "4.7.5" || !strings.Contains(rc.LastReply, "not in the MTA-STS policy") {
			t.Fatalf("recipient %+v", rc)
		}
		waitLog(t, lb, "TLS policy rules out host")
		if sink.Sessions() != 0 {
			t.Fatal("the MX not in the policy was contacted")
		}
	})
	t.Run("testing, untrusted certificate", func(t *testing.T) {
		r := newTLSRemote(t)
		r.mtaSTS(t, testing_)
		untrusted, _ := queuetest.SelfSigned(t, "mx.remote.test")
		sink := r.sink(t, queuetest.SinkOptions{TLS: untrusted})
		q, lb := r.queue(t, nil)
		send(t, q, ctx, "testing untrusted")
		sink.Wait(t, 1)
		waitEmpty(t, q)
		waitLog(t, lb, "TLS policy report", `tls_policy="mta-sts testing"`, "certificate not verified", "delivered without enforcing the policy")
	})
	t.Run("table entry replaces the policy", func(t *testing.T) {
		r := newTLSRemote(t)
		r.mtaSTS(t, enforce)
		untrusted, _ := queuetest.SelfSigned(t, "mx.remote.test")
		sink := r.sink(t, queuetest.SinkOptions{TLS: untrusted})
		table, err := ParseTLSPolicyTable([]string{"remote.test encrypt"})
		if err != nil {
			t.Fatal(err)
		}
		q, lb := r.queue(t, func(c *Config) { c.TLSPolicy = table })
		send(t, q, ctx, "table")
		sink.Wait(t, 1)
		waitEmpty(t, q)
		waitLog(t, lb, `tls_policy="table encrypt"`, "tls=unverified")
	})
}

// TestTLSPolicyTable: verify refuses an untrusted certificate, encrypt
// refuses a server without STARTTLS, none sends in plaintext although
// STARTTLS is offered, dane without TLSA records is may.
func TestTLSPolicyTable(t *testing.T) {
	ctx := context.Background()
	untrusted, _ := queuetest.SelfSigned(t, "mx.remote.test")
	tests := []struct {
		level     TLSLevel
		serverTLS *tls.Config
		delivered bool
		wantTLS   bool
	}{
		{TLSVerify, untrusted, false, false},
		{TLSVerify, nil, false, false},
		{TLSEncrypt, nil, false, false},
		{TLSEncrypt, untrusted, true, true},
		{TLSMay, untrusted, true, true},
		{TLSNone, untrusted, true, false},
		{TLSDANE, untrusted, true, true},
	}
	for _, tc := range tests {
		name := string(tc.level)
		if tc.serverTLS == nil {
			name += " without STARTTLS"
		}
		t.Run(name, func(t *testing.T) {
			r := newTLSRemote(t)
			sink := r.sink(t, queuetest.SinkOptions{TLS: tc.serverTLS})
			q, lb := r.queue(t, func(c *Config) { c.TLSPolicy = TLSPolicyTable{{"remote.test", tc.level}} })
			id := send(t, q, ctx, "table "+name)
			if !tc.delivered {
				rc := waitAttempt(t, q, id)
				if rc.State != Pending || rc.TLSPolicy != "table "+string(tc.level) {
					t.Fatalf("recipient %+v", rc)
				}
				if len(sink.Messages()) != 0 {
					t.Fatal("delivered")
				}
				return
			}
			m := sink.Wait(t, 1)
			waitEmpty(t, q)
			if m[0].TLS != tc.wantTLS {
				t.Fatalf("TLS = %v, want %v", m[0].TLS, tc.wantTLS)
			}
			want := "table " + string(tc.level)
			if tc.level == TLSDANE {
				want = "table dane (no TLSA: may)"
			}
			waitLog(t, lb, "tls_policy="+quoteLog(want))
		})
	}
}

// TestDANE: TLSA records authenticate the MX's certificate only when the
// resolver's answers carry the AD bit; an answer without it is ignored.
func TestDANE(t *testing.T) {
	ctx := context.Background()
	const tlsaName = "_25._tcp.mx.remote.test"
	type setup struct {
		r    *tlsRemote
		self *tls.Config // a self-signed certificate for mx.remote.test
	}
	sha := func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
	tests := []struct {
		name string
		// serve picks the MX's certificate and publishes records.
		serve       func(t *testing.T, s setup) *tls.Config
		insecureA   bool // the MX host's address records lack the AD bit
		secureMX    bool
		secureTLSA  bool
		delivered   bool
		wantPolicy  string
		wantTLS     string
		wantStatus  string
		wantInReply string
	}{
		{name: "DANE-EE SPKI SHA-256 (3 1 1)", secureMX: true, secureTLSA: true, delivered: true, wantPolicy: "dane", wantTLS: "verified",
			serve: func(t *testing.T, s setup) *tls.Config {
				s.r.dns.TLSA(tlsaName, 3, 1, 1, opensslTLSA(t, s.self.Certificates[0].Leaf.Raw, "3 1 1"))
				return s.self
			}},
		{name: "DANE-EE full certificate SHA-512 (3 0 2)", secureMX: true, secureTLSA: true, delivered: true, wantPolicy: "dane", wantTLS: "verified",
			serve: func(t *testing.T, s setup) *tls.Config {
				s.r.dns.TLSA(tlsaName, 3, 0, 2, opensslTLSA(t, s.self.Certificates[0].Leaf.Raw, "3 0 2"))
				return s.self
			}},
		{name: "DANE-TA full CA certificate (2 0 1)", secureMX: true, secureTLSA: true, delivered: true, wantPolicy: "dane", wantTLS: "verified",
			serve: func(t *testing.T, s setup) *tls.Config {
				s.r.dns.TLSA(tlsaName, 2, 0, 1, sha(s.r.ca.Cert.Raw))
				return s.r.ca.ServerTLS(t, "mx.remote.test")
			}},
		{name: "DANE-TA, leaf for another name", secureMX: true, secureTLSA: true, wantPolicy: "dane", wantStatus: "4.7.5", wantInReply: "mx.remote.test",
			serve: func(t *testing.T, s setup) *tls.Config {
				s.r.dns.TLSA(tlsaName, 2, 1, 1, sha(s.r.ca.Cert.RawSubjectPublicKeyInfo))
				return s.r.ca.ServerTLS(t, "other.test")
			}},
		{name: "DANE-EE, another key", secureMX: true, secureTLSA: true, wantPolicy: "dane", wantStatus: "4.7.5", wantInReply: "matches no TLSA record",
			serve: func(t *testing.T, s setup) *tls.Config {
				s.r.dns.TLSA(tlsaName, 3, 1, 1, sha([]byte("some other key")))
				return s.self
			}},
		{name: "TLSA answer without AD bit is ignored", secureMX: true, secureTLSA: false, delivered: true, wantPolicy: "may", wantTLS: "unverified",
			serve: func(t *testing.T, s setup) *tls.Config {
				s.r.dns.TLSA(tlsaName, 3, 1, 1, sha([]byte("some other key")))
				return s.self
			}},
		{name: "address answer without AD bit: no DANE", secureMX: true, secureTLSA: true, insecureA: true, delivered: true, wantPolicy: "may", wantTLS: "unverified",
			serve: func(t *testing.T, s setup) *tls.Config {
				s.r.dns.TLSA(tlsaName, 3, 1, 1, sha([]byte("some other key")))
				return s.self
			}},
		{name: "MX answer without AD bit: no DANE", secureMX: false, secureTLSA: true, delivered: true, wantPolicy: "may", wantTLS: "unverified",
			serve: func(t *testing.T, s setup) *tls.Config {
				s.r.dns.TLSA(tlsaName, 3, 1, 1, sha([]byte("some other key")))
				return s.self
			}},
		{name: "only unusable records: TLS without authentication", secureMX: true, secureTLSA: true, delivered: true, wantPolicy: "dane (no usable TLSA: encrypt)", wantTLS: "unverified",
			serve: func(t *testing.T, s setup) *tls.Config {
				s.r.dns.TLSA(tlsaName, 1, 1, 1, sha(s.self.Certificates[0].Leaf.RawSubjectPublicKeyInfo)) // PKIX-EE
				return s.self
			}},
		{name: "only unusable records and no STARTTLS", secureMX: true, secureTLSA: true, wantPolicy: "dane (no usable TLSA: encrypt)", wantStatus: "4.7.5", wantInReply: "STARTTLS",
			serve: func(t *testing.T, s setup) *tls.Config {
				s.r.dns.TLSA(tlsaName, 0, 1, 1, sha([]byte("x")))
				return nil
			}},
		{name: "TLSA lookup fails", secureMX: true, secureTLSA: true, wantPolicy: "dane", wantStatus: "4.7.5", wantInReply: "TLSA lookup failed",
			serve: func(t *testing.T, s setup) *tls.Config {
				s.r.dns.TLSA(tlsaName, 3, 1, 1, sha(s.self.Certificates[0].Leaf.RawSubjectPublicKeyInfo))
				s.r.dns.ServFail(tlsaName, true)
				return s.self
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTLSRemote(t)
			self, _ := queuetest.SelfSigned(t, "mx.remote.test")
			serverTLS := tc.serve(t, setup{r: r, self: self})
			r.dns.Secure("remote.test", tc.secureMX)
			r.dns.Secure("mx.remote.test", !tc.insecureA)
			r.dns.Secure(tlsaName, tc.secureTLSA)
			sink := r.sink(t, queuetest.SinkOptions{TLS: serverTLS})
			q, lb := r.queue(t, nil)
			id := send(t, q, ctx, "dane")
			if !tc.delivered {
				rc := waitAttempt(t, q, id)
				if rc.State != Pending || rc.Status != tc.wantStatus || rc.TLSPolicy != tc.wantPolicy || !strings.Contains(rc.LastReply, tc.wantInReply) {
					t.Fatalf("recipient %+v; want pending %s under %q, reply with %q", rc, tc.wantStatus, tc.wantPolicy, tc.wantInReply)
				}
				if len(sink.Messages()) != 0 {
					t.Fatal("delivered")
				}
				return
			}
			sink.Wait(t, 1)
			waitEmpty(t, q)
			waitLog(t, lb, "delivered=1", "tls="+tc.wantTLS, "tls_policy="+quoteLog(tc.wantPolicy))
		})
	}
}

// opensslTLSA computes a TLSA record's data the way admins do, with the
// openssl command line: the independent check of our matching.
func opensslTLSA(t *testing.T, certDER []byte, kind string) []byte {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is required in CI")
		}
		t.Skip("openssl not installed")
	}
	pemFile := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	var script string
	var size int
	switch kind {
	case "3 1 1": // SHA-256 of the SubjectPublicKeyInfo
		script, size = `"$0" x509 -in "$1" -noout -pubkey | "$0" pkey -pubin -outform DER | "$0" dgst -sha256 -binary`, 32
	case "3 0 2": // SHA-512 of the whole certificate
		script, size = `"$0" x509 -in "$1" -outform DER | "$0" dgst -sha512 -binary`, 64
	default:
		t.Fatalf("opensslTLSA: %s", kind)
	}
	// A failure early in the pipe shows as a digest of nothing, which
	// matches no certificate: the test then fails on delivery.
	out, err := exec.Command("sh", "-c", script, openssl, pemFile).Output()
	if err != nil || len(out) != size {
		t.Fatalf("openssl for TLSA %s: %v (%d bytes)", kind, err, len(out))
	}
	return out
}

// quoteLog is how slog's text handler writes a value.
func quoteLog(s string) string {
	if strings.ContainsAny(s, " =\"") {
		return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
	}
	return s
}

// TestRequireTLS: a REQUIRETLS item goes only over authenticated TLS to
// a server that advertises REQUIRETLS, with the parameter on MAIL FROM;
// otherwise it bounces with 5.7.30, the bounce naming the policy and
// itself marked REQUIRETLS. The mark survives a restart.
func TestRequireTLS(t *testing.T) {
	rctx := WithRequireTLS(context.Background())
	daneEE := func(t *testing.T, r *tlsRemote) *tls.Config {
		self, _ := queuetest.SelfSigned(t, "mx.remote.test")
		sum := sha256.Sum256(self.Certificates[0].Leaf.RawSubjectPublicKeyInfo)
		r.dns.TLSA("_25._tcp.mx.remote.test", 3, 1, 1, sum[:])
		r.dns.Secure("remote.test", true)
		r.dns.Secure("mx.remote.test", true)
		r.dns.Secure("_25._tcp.mx.remote.test", true)
		return self
	}
	tests := []struct {
		name string
		// serve publishes the remote's records and says how its MX
		// serves TLS and whether it advertises REQUIRETLS.
		serve      func(t *testing.T, r *tlsRemote) (*tls.Config, bool)
		table      TLSPolicyTable
		delivered  bool
		wantPolicy string
		wantReply  string
	}{
		{name: "DANE, server takes REQUIRETLS", delivered: true, wantPolicy: "dane",
			serve: func(t *testing.T, r *tlsRemote) (*tls.Config, bool) { return daneEE(t, r), true }},
		{name: "MTA-STS testing counts as enforce, server takes REQUIRETLS", delivered: true, wantPolicy: "mta-sts testing",
			serve: func(t *testing.T, r *tlsRemote) (*tls.Config, bool) {
				r.mtaSTS(t, "version: STSv1\nmode: testing\nmx: mx.remote.test\nmax_age: 600\n")
				return r.ca.ServerTLS(t, "mx.remote.test"), true
			}},
		{name: "a table entry does not lower it", delivered: true, wantPolicy: "dane", table: TLSPolicyTable{{"remote.test", TLSNone}},
			serve: func(t *testing.T, r *tlsRemote) (*tls.Config, bool) { return daneEE(t, r), true }},
		{name: "DANE, server without REQUIRETLS", wantPolicy: "dane", wantReply: "does not support REQUIRETLS",
			serve: func(t *testing.T, r *tlsRemote) (*tls.Config, bool) { return daneEE(t, r), false }},
		{name: "only unusable TLSA records, no MTA-STS", wantPolicy: "requiretls", wantReply: "neither DNSSEC-validated TLSA records nor an MTA-STS policy",
			serve: func(t *testing.T, r *tlsRemote) (*tls.Config, bool) {
				r.dns.TLSA("_25._tcp.mx.remote.test", 1, 1, 1, make([]byte, 32)) // PKIX-EE: unusable for SMTP
				r.dns.Secure("remote.test", true)
				r.dns.Secure("mx.remote.test", true)
				r.dns.Secure("_25._tcp.mx.remote.test", true)
				return r.ca.ServerTLS(t, "mx.remote.test"), true
			}},
		{name: "no DANE, no MTA-STS", wantPolicy: "requiretls", wantReply: "neither DNSSEC-validated TLSA records nor an MTA-STS policy",
			serve: func(t *testing.T, r *tlsRemote) (*tls.Config, bool) {
				return r.ca.ServerTLS(t, "mx.remote.test"), true
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTLSRemote(t)
			serverTLS, advertise := tc.serve(t, r)
			sink := r.sink(t, queuetest.SinkOptions{TLS: serverTLS, RequireTLS: advertise})
			var local localSink
			q, lb := r.queue(t, func(c *Config) {
				local.install(c, "local.test")
				c.TLSPolicy = tc.table
			})
			id := send(t, q, rctx, "requiretls")
			if it, err := q.Get(context.Background(), id); err != nil || !it.RequireTLS {
				t.Fatalf("item %+v, %v: not marked REQUIRETLS", it, err)
			}
			waitEmpty(t, q)
			if tc.delivered {
				m := sink.Messages()
				if len(m) != 1 || !m[0].RequireTLS || !m[0].TLS {
					t.Fatalf("sink got %+v, want one message with REQUIRETLS over TLS", m)
				}
				waitLog(t, lb, "delivered=1", "tls=verified", "tls_policy="+quoteLog(tc.wantPolicy))
				return
			}
			if len(sink.Messages()) != 0 {
				t.Fatal("delivered")
			}
			bounces := local.messages()
			if len(bounces) != 1 {
				t.Fatalf("%d bounces", len(bounces))
			}
			dsn := string(bounces[0].Data)
			for _, want := range []string{"Status: 5.7.30", tc.wantReply, "X-Vmaild-TLS-Policy: " + tc.wantPolicy} {
				if !strings.Contains(dsn, want) {
					t.Errorf("bounce lacks %q:\n%s", want, dsn)
				}
			}
			// The bounce was queued with the mark too.
			waitLog(t, lb, "bounce=true held=false final=0 requiretls=true")
		})
	}
}

// TestRequireTLSSpooled: the mark is in the spool, so a restart keeps it.
func TestRequireTLSSpooled(t *testing.T) {
	r := newTLSRemote(t)
	cfg, _ := testConfig(t, r.dns)
	q, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := send(t, q, WithRequireTLS(context.Background()), "spooled")
	plain := send(t, q, context.Background(), "plain")
	q.Shutdown(context.Background())
	q, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Shutdown(context.Background())
	for want, id := range map[bool]string{true: id, false: plain} {
		it, err := q.Get(context.Background(), id)
		if err != nil || it.RequireTLS != want {
			t.Errorf("after restart: item %s RequireTLS=%v (%v), want %v", id, it.RequireTLS, err, want)
		}
	}
}

// TestRequireTLSSmarthost: through a smarthost whose certificate is
// verified and that takes REQUIRETLS the item goes with it; a smarthost
// taken without verification bounces it with 5.7.30.
func TestRequireTLSSmarthost(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(map[bool]string{false: "verified", true: "insecure_skip_verify"}[skip], func(t *testing.T) {
			ca := queuetest.NewCA(t)
			sink := queuetest.NewSink(t, queuetest.SinkOptions{TLS: ca.ServerTLS(t, "relay.test"), RequireTLS: true})
			d := queuetest.NewDNS(t)
			cfg, _ := testConfig(t, d)
			var local localSink
			local.install(&cfg, "local.test")
			sh := &Smarthost{Addr: sink.Addr, InsecureSkipVerify: skip}
			if !skip {
				sh.RootCAs = ca.Pool()
			}
			cfg.Smarthost = sh
			q := startQueue(t, cfg)
			send(t, q, WithRequireTLS(context.Background()), "smarthost")
			waitEmpty(t, q)
			if skip {
				if b := local.messages(); len(b) != 1 || !strings.Contains(string(b[0].Data), "Status: 5.7.30") || len(sink.Messages()) != 0 {
					t.Fatalf("bounces %d, sink %d", len(b), len(sink.Messages()))
				}
				return
			}
			if m := sink.Messages(); len(m) != 1 || !m[0].RequireTLS {
				t.Fatalf("sink got %+v", m)
			}
		})
	}
}

// TestTLSRequiredNo: a message with "TLS-Required: No" (RFC 8689 section
// 5) is delivered although the destination's MTA-STS or DANE policy
// would hold it, and the log says the policy was not enforced; the
// admin's table still holds it, and REQUIRETLS outranks the header.
func TestTLSRequiredNo(t *testing.T) {
	const enforce = "version: STSv1\nmode: enforce\nmx: mx.remote.test\nmax_age: 86400\n"
	msg := func(optOut bool) []byte {
		m := testMessage("opt out", 100)
		if optOut {
			m = append([]byte("TLS-Required: No\r\n"), m...)
		}
		return m
	}
	tests := []struct {
		name       string
		setup      func(t *testing.T, r *tlsRemote)
		table      TLSPolicyTable
		optOut     bool
		requireTLS bool
		delivered  bool
		wantPolicy string
	}{
		{name: "MTA-STS enforce, untrusted certificate", optOut: true, delivered: true,
			wantPolicy: "mta-sts enforce (not enforced: TLS-Required: No)",
			setup:      func(t *testing.T, r *tlsRemote) { r.mtaSTS(t, enforce) }},
		{name: "same without the header", wantPolicy: "mta-sts enforce",
			setup: func(t *testing.T, r *tlsRemote) { r.mtaSTS(t, enforce) }},
		{name: "DANE, key does not match", optOut: true, delivered: true,
			wantPolicy: "dane (not enforced: TLS-Required: No)",
			setup: func(t *testing.T, r *tlsRemote) {
				r.dns.TLSA("_25._tcp.mx.remote.test", 3, 1, 1, make([]byte, 32))
				for _, n := range []string{"remote.test", "mx.remote.test", "_25._tcp.mx.remote.test"} {
					r.dns.Secure(n, true)
				}
			}},
		{name: "the table is the admin's", optOut: true, table: TLSPolicyTable{{"remote.test", TLSVerify}},
			wantPolicy: "table verify", setup: func(*testing.T, *tlsRemote) {}},
		{name: "REQUIRETLS outranks the header", optOut: true, requireTLS: true,
			wantPolicy: "mta-sts enforce",
			setup:      func(t *testing.T, r *tlsRemote) { r.mtaSTS(t, enforce) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTLSRemote(t)
			tc.setup(t, r)
			untrusted, _ := queuetest.SelfSigned(t, "mx.remote.test")
			sink := r.sink(t, queuetest.SinkOptions{TLS: untrusted})
			q, lb := r.queue(t, func(c *Config) { c.TLSPolicy = tc.table })
			ctx := context.Background()
			if tc.requireTLS {
				ctx = WithRequireTLS(ctx)
			}
			id, err := q.EnqueueBytes(ctx, "alice@local.test", []string{"bob@remote.test"}, msg(tc.optOut))
			if err != nil {
				t.Fatal(err)
			}
			if tc.delivered {
				sink.Wait(t, 1)
				waitEmpty(t, q)
				waitLog(t, lb, "delivered=1", "tls_policy="+quoteLog(tc.wantPolicy), "without enforcing the policy")
				return
			}
			rc := waitAttempt(t, q, id)
			if rc.State != Pending || rc.TLSPolicy != tc.wantPolicy {
				t.Fatalf("recipient %+v, want pending under %q", rc, tc.wantPolicy)
			}
			if len(sink.Messages()) != 0 {
				t.Fatal("delivered")
			}
		})
	}
}
