package queue

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

var (
	err451 = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	err550 = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
)

// TestMXPreference: the lowest preference is tried first, and a
// connection failure or a 4xx for the whole transaction falls through to
// the next MX.
func TestMXPreference(t *testing.T) {
	tests := []struct {
		name     string
		primary  string // "up", "down", "451"
		wantHost int    // which sink gets the message: 1 or 2
	}{
		{"primary up", "up", 1},
		{"primary refuses connections", "down", 2},
		{"primary answers 451", "451", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := queuetest.NewDNS(t)
			// Listed backup first: the order must come from preference.
			d.MX("a.test", 20, "mx2.a.test")
			d.MX("a.test", 10, "mx1.a.test")
			d.A("mx1.a.test", "192.0.2.1")
			d.A("mx2.a.test", "192.0.2.2")
			var opts1 queuetest.SinkOptions
			if tc.primary == "451" {
				opts1.Data = func(queuetest.Message) error { return err451 }
			}
			sink1 := queuetest.NewSink(t, opts1)
			sink2 := queuetest.NewSink(t, queuetest.SinkOptions{})
			r := &queuetest.Router{}
			if tc.primary != "down" {
				r.Route("192.0.2.1:25", sink1.Addr)
			}
			r.Route("192.0.2.2:25", sink2.Addr)

			cfg, _ := testConfig(t, d)
			cfg.Dial = r.Dial
			cfg.Retry = []time.Duration{time.Hour}
			q := startQueue(t, cfg)
			if _, err := q.EnqueueBytes(context.Background(), "alice@local.test", []string{"bob@a.test"}, testMessage("pref", 100)); err != nil {
				t.Fatal(err)
			}
			want, other := sink1, sink2
			if tc.wantHost == 2 {
				want, other = sink2, sink1
			}
			msgs := want.Wait(t, 1)
			waitEmpty(t, q)
			if got := len(other.Messages()); got != 0 {
				t.Errorf("other MX got %d messages", got)
			}
			if msgs[0].From != "alice@local.test" || len(msgs[0].Rcpts) != 1 || msgs[0].Rcpts[0] != "bob@a.test" {
				t.Errorf("envelope = %q %q", msgs[0].From, msgs[0].Rcpts)
			}
			if msgs[0].Helo != "out.vmaild.test" {
				t.Errorf("HELO = %q", msgs[0].Helo)
			}
			if dials := r.Dials(); dials[0] != "192.0.2.1:25" {
				t.Errorf("first dial %v, want the preference 10 host", dials)
			}
		})
	}
}

// TestImplicitMX: a domain without MX is delivered to its own A record,
// over a real loopback connection on the configured port.
func TestImplicitMX(t *testing.T) {
	d := queuetest.NewDNS(t)
	d.A("plain.test", "127.0.0.1")
	sink := queuetest.NewSink(t, queuetest.SinkOptions{})
	cfg, _ := testConfig(t, d)
	cfg.Port = sink.Port
	q := startQueue(t, cfg)
	msg := testMessage("implicit", 2000)
	if _, err := q.EnqueueBytes(context.Background(), "alice@local.test", []string{"Bob@Plain.test"}, msg); err != nil {
		t.Fatal(err)
	}
	got := sink.Wait(t, 1)
	waitEmpty(t, q)
	if !bytes.Equal(got[0].Data, msg) {
		t.Errorf("message changed in transit:\n%q\nwant\n%q", got[0].Data, msg)
	}
	if got[0].Rcpts[0] != "Bob@Plain.test" {
		t.Errorf("recipient %q: the local part's case must be kept", got[0].Rcpts[0])
	}
}

// TestRetryAfter4xx: a 451 defers; the retry succeeds.
func TestRetryAfter4xx(t *testing.T) {
	tests := []struct {
		name string
		opts func(n *atomic.Int32) queuetest.SinkOptions
	}{
		{"451 at DATA", func(n *atomic.Int32) queuetest.SinkOptions {
			return queuetest.SinkOptions{Data: func(queuetest.Message) error {
				if n.Add(1) == 1 {
					return err451
				}
				return nil
			}}
		}},
		{"451 at RCPT", func(n *atomic.Int32) queuetest.SinkOptions {
			return queuetest.SinkOptions{Rcpt: func(string) error {
				if n.Add(1) == 1 {
					return err451
				}
				return nil
			}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := queuetest.NewDNS(t)
			d.A("retry.test", "127.0.0.1")
			var n atomic.Int32
			sink := queuetest.NewSink(t, tc.opts(&n))
			cfg, lb := testConfig(t, d)
			cfg.Port = sink.Port
			q := startQueue(t, cfg)
			if _, err := q.EnqueueBytes(context.Background(), "alice@local.test", []string{"bob@retry.test"}, testMessage("retry", 100)); err != nil {
				t.Fatal(err)
			}
			sink.Wait(t, 1)
			waitEmpty(t, q)
			if s := sink.Sessions(); s != 2 {
				t.Errorf("sessions = %d, want 2 (one deferred, one delivered)", s)
			}
			st := q.Stats()
			if st.Deferred != 1 || st.Delivered != 1 || st.Failed != 0 {
				t.Errorf("stats = %+v", st)
			}
			if !strings.Contains(lb.String(), "451 4.3.0 try again later") {
				t.Errorf("the deferral is not logged")
			}
		})
	}
}

// dsnParts is a parsed delivery status notification.
type dsnParts struct {
	header     mail.Header
	human      string
	perMessage textproto.MIMEHeader
	perRcpt    []textproto.MIMEHeader
	headers    string
}

func parseDSN(t *testing.T, raw []byte) dsnParts {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("DSN is not a message: %v\n%s", err, raw)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN Content-Type = %q (%v)", m.Header.Get("Content-Type"), err)
	}
	out := dsnParts{header: m.Header}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("DSN part: %v", err)
		}
		body, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		types = append(types, ct)
		switch ct {
		case "text/plain":
			out.human = string(body)
		case "message/delivery-status":
			tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
			if out.perMessage, err = tr.ReadMIMEHeader(); err != nil {
				t.Fatalf("per-message fields: %v", err)
			}
			for {
				h, err := tr.ReadMIMEHeader()
				if len(h) > 0 {
					out.perRcpt = append(out.perRcpt, h)
				}
				if err != nil {
					break
				}
			}
		case "text/rfc822-headers":
			out.headers = string(body)
		}
	}
	if strings.Join(types, ",") != "text/plain,message/delivery-status,text/rfc822-headers" {
		t.Errorf("DSN parts = %v", types)
	}
	return out
}

// TestBounceAfter5xx: a 550 fails that recipient at once and the sender
// gets one DSN; the other recipient of the same transaction is delivered.
func TestBounceAfter5xx(t *testing.T) {
	d := queuetest.NewDNS(t)
	d.MX("b.test", 10, "mx.b.test")
	d.A("mx.b.test", "127.0.0.1")
	sink := queuetest.NewSink(t, queuetest.SinkOptions{Rcpt: func(rcpt string) error {
		if strings.HasPrefix(rcpt, "nobody") {
			return err550
		}
		return nil
	}})
	cfg, _ := testConfig(t, d)
	cfg.Port = sink.Port
	var local localSink
	local.install(&cfg, "local.test")
	q := startQueue(t, cfg)
	id, err := q.EnqueueBytes(context.Background(), "alice@local.test", []string{"ok@b.test", "nobody@b.test", "nobody2@b.test"}, testMessage("bounce me", 100))
	if err != nil {
		t.Fatal(err)
	}
	got := sink.Wait(t, 1)
	waitFor(t, "the DSN", func() bool { return len(local.messages()) == 1 })
	waitEmpty(t, q)
	if len(got[0].Rcpts) != 1 || got[0].Rcpts[0] != "ok@b.test" {
		t.Errorf("delivered to %v", got[0].Rcpts)
	}
	b := local.messages()[0]
	if b.From != "" || len(b.Rcpts) != 1 || b.Rcpts[0] != "alice@local.test" {
		t.Fatalf("DSN envelope = <%s> %v, want <> to alice", b.From, b.Rcpts)
	}
	dsn := parseDSN(t, b.Data)
	if got := dsn.header.Get("Auto-Submitted"); got != "auto-replied" {
		t.Errorf("Auto-Submitted = %q", got)
	}
	if got := dsn.perMessage.Get("Reporting-MTA"); got != "dns; out.vmaild.test" {
		t.Errorf("Reporting-MTA = %q", got)
	}
	if got := dsn.perMessage.Get("X-Vmaild-Queue-Id"); got != id {
		t.Errorf("queue id in DSN = %q, want %q", got, id)
	}
	if len(dsn.perRcpt) != 2 {
		t.Fatalf("DSN lists %d recipients, want 2 (one DSN for both failures)", len(dsn.perRcpt))
	}
	for i, want := range []string{"nobody@b.test", "nobody2@b.test"} {
		r := dsn.perRcpt[i]
		checks := map[string]string{
			"Final-Recipient": "rfc822; " + want,
			"Action":          "failed",
			"Status":          "5.1.1",
			"Remote-Mta":      "dns; mx.b.test",
			"Diagnostic-Code": "smtp; 550 5.1.1 no such user",
		}
		for k, v := range checks {
			if got := r.Get(k); got != v {
				t.Errorf("recipient %d %s = %q, want %q", i, k, got, v)
			}
		}
		if r.Get("Last-Attempt-Date") == "" {
			t.Errorf("recipient %d has no Last-Attempt-Date", i)
		}
	}
	if !strings.Contains(dsn.headers, "Subject: bounce me\r\n") || strings.Contains(dsn.headers, "xxxx") {
		t.Errorf("returned headers wrong:\n%s", dsn.headers)
	}
	if !strings.Contains(dsn.human, "<nobody@b.test>: 550 5.1.1 no such user") {
		t.Errorf("human part:\n%s", dsn.human)
	}
}

// TestNoBounceForNullSender: a failed bounce is logged and dropped.
func TestNoBounceForNullSender(t *testing.T) {
	d := queuetest.NewDNS(t)
	d.A("b.test", "127.0.0.1")
	sink := queuetest.NewSink(t, queuetest.SinkOptions{Rcpt: func(string) error { return err550 }})
	cfg, lb := testConfig(t, d)
	cfg.Port = sink.Port
	var local localSink
	local.install(&cfg, "local.test")
	q := startQueue(t, cfg)
	if _, err := q.EnqueueBytes(context.Background(), "", []string{"nobody@b.test"}, testMessage("a bounce", 100)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failure", func() bool { return q.Stats().Failed == 1 })
	waitEmpty(t, q)
	if n := q.Stats().Enqueued; n != 1 {
		t.Errorf("%d messages enqueued, want only the original", n)
	}
	if len(local.messages()) != 0 {
		t.Errorf("a DSN was sent for a null sender")
	}
	if !strings.Contains(lb.String(), "no bounce for null sender") {
		t.Errorf("the dropped failure is not logged")
	}
}

// TestDNSFailures: null MX and NXDOMAIN fail at once without connecting;
// SERVFAIL defers.
func TestDNSFailures(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(d *queuetest.DNS)
		status string
		perm   bool
	}{
		{"null MX", func(d *queuetest.DNS) { d.MX("null.test", 0, ".") }, "5.1.10", true},
		{"NXDOMAIN", func(d *queuetest.DNS) {}, "5.1.2", true},
		{"no MX and no address", func(d *queuetest.DNS) { d.TXT("null.test", "v=spf1 -all") }, "5.1.2", true},
		{"SERVFAIL", func(d *queuetest.DNS) { d.MX("null.test", 10, "mx.null.test"); d.ServFail("null.test", true) }, "4.4.3", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := queuetest.NewDNS(t)
			tc.setup(d)
			r := &queuetest.Router{}
			cfg, _ := testConfig(t, d)
			cfg.Dial = r.Dial
			cfg.Retry = []time.Duration{time.Hour}
			var local localSink
			local.install(&cfg, "local.test")
			q := startQueue(t, cfg)
			id, err := q.EnqueueBytes(context.Background(), "alice@local.test", []string{"bob@null.test"}, testMessage("dns", 10))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.perm {
				waitFor(t, "an attempt", func() bool {
					it, err := q.Get(context.Background(), id)
					return err == nil && it.Recipients[0].Attempts == 1
				})
				it, _ := q.Get(context.Background(), id)
				r := it.Recipients[0]
				if r.State != Pending || tc.status != "" && r.Status != tc.status {
					t.Errorf("recipient = %+v, want pending %s", r, tc.status)
				}
				return
			}
			waitFor(t, "the DSN", func() bool { return len(local.messages()) == 1 })
			waitEmpty(t, q)
			dsn := parseDSN(t, local.messages()[0].Data)
			if got := dsn.perRcpt[0].Get("Status"); got != tc.status {
				t.Errorf("Status = %q, want %q", got, tc.status)
			}
			if dials := r.Dials(); len(dials) != 0 {
				t.Errorf("connected to %v for an undeliverable domain", dials)
			}
		})
	}
}

// TestSTARTTLS: opportunistic TLS is used when offered, with a trusted
// certificate or not; a receiver whose TLS cannot be negotiated (only
// TLS 1.1 here) still gets its mail, in plaintext.
func TestSTARTTLS(t *testing.T) {
	tests := []struct {
		name    string
		trusted bool
		oldTLS  bool
		wantTLS bool
		log     string
	}{
		{"trusted certificate", true, false, true, "tls=verified"},
		{"self-signed certificate", false, false, true, "tls=unverified"},
		{"TLS 1.1 only", false, true, false, "STARTTLS failed, retrying without TLS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := queuetest.NewDNS(t)
			d.MX("tls.test", 10, "mx.tls.test")
			d.A("mx.tls.test", "127.0.0.1")
			srvTLS, pool := queuetest.SelfSigned(t, "mx.tls.test")
			if tc.oldTLS {
				srvTLS.MinVersion, srvTLS.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
			}
			sink := queuetest.NewSink(t, queuetest.SinkOptions{TLS: srvTLS})
			cfg, lb := testConfig(t, d)
			cfg.Port = sink.Port
			if tc.trusted {
				cfg.TLSConfig = tlsWithRoots(pool)
			}
			q := startQueue(t, cfg)
			if _, err := q.EnqueueBytes(context.Background(), "alice@local.test", []string{"bob@tls.test"}, testMessage("tls", 100)); err != nil {
				t.Fatal(err)
			}
			got := sink.Wait(t, 1)
			waitEmpty(t, q)
			if got[0].TLS != tc.wantTLS {
				t.Errorf("TLS = %v, want %v", got[0].TLS, tc.wantTLS)
			}
			if got[0].Helo != "out.vmaild.test" {
				t.Errorf("HELO = %q", got[0].Helo)
			}
			if !strings.Contains(lb.String(), tc.log) {
				t.Errorf("log does not say %q", tc.log)
			}
		})
	}
}

// TestSmarthost: everything goes to the relay, over TLS with AUTH PLAIN
// (or plaintext to a loopback filter); bad credentials defer instead of
// bouncing.
func TestSmarthost(t *testing.T) {
	tests := []struct {
		name     string
		sh       Smarthost
		sink     func(srv *tls.Config) queuetest.SinkOptions
		deferred bool
		// roots trusting the sink's self-signed certificate go into
		// Config.TLSConfig ("" ), Smarthost.RootCAs ("smarthost", a CA
		// file) or nowhere ("none").
		roots   string
		wantLog string // in the log of the attempt
	}{
		{"STARTTLS and AUTH", Smarthost{Username: "relay-user", Password: "secret"},
			func(srv *tls.Config) queuetest.SinkOptions {
				return queuetest.SinkOptions{TLS: srv, Auth: &[2]string{"relay-user", "secret"}}
			}, false, "", ""},
		{"wrong password", Smarthost{Username: "relay-user", Password: "wrong"},
			func(srv *tls.Config) queuetest.SinkOptions {
				return queuetest.SinkOptions{TLS: srv, Auth: &[2]string{"relay-user", "secret"}}
			}, true, "", ""},
		{"implicit TLS", Smarthost{Username: "relay-user", Password: "secret", ImplicitTLS: true},
			func(srv *tls.Config) queuetest.SinkOptions {
				return queuetest.SinkOptions{TLS: srv, ImplicitTLS: true, Auth: &[2]string{"relay-user", "secret"}}
			}, false, "", ""},
		{"STARTTLS required but not offered", Smarthost{},
			func(*tls.Config) queuetest.SinkOptions { return queuetest.SinkOptions{} }, true, "", "TLS: server does not offer STARTTLS"},
		{"plaintext filter", Smarthost{PlainText: true},
			func(*tls.Config) queuetest.SinkOptions { return queuetest.SinkOptions{} }, false, "", ""},
		{"STARTTLS verified against a CA file", Smarthost{Username: "relay-user", Password: "secret"},
			func(srv *tls.Config) queuetest.SinkOptions {
				return queuetest.SinkOptions{TLS: srv, Auth: &[2]string{"relay-user", "secret"}}
			}, false, "smarthost", `tls=verified`},
		{"implicit TLS verified against a CA file", Smarthost{ImplicitTLS: true},
			func(srv *tls.Config) queuetest.SinkOptions {
				return queuetest.SinkOptions{TLS: srv, ImplicitTLS: true}
			}, false, "smarthost", `tls=verified`},
		{"STARTTLS without verification", Smarthost{InsecureSkipVerify: true},
			func(srv *tls.Config) queuetest.SinkOptions { return queuetest.SinkOptions{TLS: srv} }, false, "none", `tls=unverified`},
		{"untrusted certificate", Smarthost{},
			func(srv *tls.Config) queuetest.SinkOptions { return queuetest.SinkOptions{TLS: srv} }, true, "none", `TLS: TLS handshake failed`},
		{"untrusted certificate, implicit TLS", Smarthost{ImplicitTLS: true},
			func(srv *tls.Config) queuetest.SinkOptions { return queuetest.SinkOptions{TLS: srv, ImplicitTLS: true} }, true, "none", `TLS: TLS handshake failed`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := queuetest.NewDNS(t) // no records: MX lookup would fail
			srvTLS, pool := queuetest.SelfSigned(t, "relay.test")
			sink := queuetest.NewSink(t, tc.sink(srvTLS))
			cfg, logs := testConfig(t, d)
			sh := tc.sh
			switch tc.roots {
			case "":
				cfg.TLSConfig = tlsWithRoots(pool)
			case "smarthost":
				sh.RootCAs = pool
			}
			sh.Addr = sink.Addr
			cfg.Smarthost = &sh
			cfg.Retry = []time.Duration{time.Hour}
			q := startQueue(t, cfg)
			id, err := q.EnqueueBytes(context.Background(), "alice@local.test", []string{"bob@nowhere.test", "carol@elsewhere.test"}, testMessage("relay", 100))
			if err != nil {
				t.Fatal(err)
			}
			if tc.deferred {
				waitFor(t, "attempts", func() bool {
					it, err := q.Get(context.Background(), id)
					return err == nil && it.Recipients[0].Attempts == 1 && it.Recipients[1].Attempts == 1
				})
				it, _ := q.Get(context.Background(), id)
				if r := it.Recipients[0]; r.State != Pending {
					t.Errorf("recipient = %+v, want pending", r)
				}
				if n := len(sink.Messages()); n != 0 {
					t.Errorf("relay got %d messages", n)
				}
				if r := it.Recipients[0]; strings.HasPrefix(tc.wantLog, "TLS") && !strings.HasPrefix(r.Status, "4.") {
					t.Errorf("recipient status %q, want 4.x.x", r.Status)
				}
				if !strings.Contains(logs.String(), tc.wantLog) || strings.Contains(logs.String(), "greeting: ") && tc.wantLog != "" {
					t.Errorf("log lacks %q (or calls it a greeting problem):\n%s", tc.wantLog, logs)
				}
				return
			}
			got := sink.Wait(t, 2)
			waitEmpty(t, q)
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs)
			}
			for _, m := range got {
				if m.TLS == sh.PlainText {
					t.Errorf("TLS = %v with PlainText = %v", m.TLS, sh.PlainText)
				}
			}
			if d.Queries() != 0 {
				t.Errorf("%d DNS queries with a smarthost", d.Queries())
			}
		})
	}
}

// TestEnqueueRefusesOddAddresses: nothing that could smuggle a command or
// a second address reaches the spool.
func TestEnqueueRefusesOddAddresses(t *testing.T) {
	d := queuetest.NewDNS(t)
	cfg, _ := testConfig(t, d)
	q, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Shutdown(context.Background())
	tests := []struct {
		name  string
		from  string
		rcpts []string
	}{
		{"no recipients", "a@b.test", nil},
		{"no at", "a@b.test", []string{"bob"}},
		{"two ats", "a@b.test", []string{"a@b@c.test"}},
		{"angle brackets", "a@b.test", []string{"<bob@c.test>"}},
		{"CRLF injection", "a@b.test", []string{"bob@c.test>\r\nRCPT TO:<x@y.test"}},
		{"NUL", "a@b.test", []string{"bo\x00b@c.test"}},
		{"IP literal", "a@b.test", []string{"bob@[192.0.2.1]"}},
		{"empty domain label", "a@b.test", []string{"bob@c..test"}},
		{"bad sender", "not an address", []string{"bob@c.test"}},
		{"overlong", "a@b.test", []string{strings.Repeat("x", 300) + "@c.test"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := q.EnqueueBytes(context.Background(), tc.from, tc.rcpts, []byte("Subject: x\r\n\r\nx\r\n"))
			if !errors.Is(err, ErrInvalid) || Temporary(err) {
				t.Errorf("err = %v, want permanent ErrInvalid", err)
			}
		})
	}
	if q.Len() != 0 {
		t.Errorf("%d items spooled", q.Len())
	}
}

func tlsWithRoots(pool *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: pool} }
