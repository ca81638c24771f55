package smtp

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/inbound"
)

// withChecks runs the given checks with their default step policy.
func withChecks(steps ...inbound.Step) serverOpt {
	return func(s *Server) { s.Checks = &inbound.Pipeline{Steps: steps, Logger: s.Logger} }
}

// sendRaw sends one message over DATA and returns the final reply.
func sendRaw(t *testing.T, addr, msg string) reply {
	t.Helper()
	c := dialRaw(t, addr)
	c.must("EHLO client.test", "250 ")
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("DATA", "354 ")
	return c.cmd(msg + ".")
}

func TestChecksActions(t *testing.T) {
	const spoofed = "Authentication-Results: mx.example.org; dkim=pass\r\n"
	tests := []struct {
		name      string
		check     func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error
		step      func(*inbound.Step)
		want      string // reply prefix
		delivered bool
		fields    []string // wanted in the delivered header
		absent    []string // not wanted in it
		junk      bool
	}{
		{name: "accept", check: func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error { return nil },
			want: "250 ", delivered: true, fields: []string{spoofed}},
		{name: "reject", check: func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
			v.Reject(554, "5.7.1", "Virus found: Eicar-Test-Signature")
			return nil
		}, want: "554 5.7.1 Virus found: Eicar-Test-Signature"},
		{name: "reject defaults", check: func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
			v.Reject(0, "", "")
			return nil
		}, want: "550 5.7.1 Message refused"},
		{name: "tempfail", check: func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
			v.Tempfail(0, "", "")
			return nil
		}, want: "451 4.7.1 "},
		{name: "discard", check: func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
			v.Set(inbound.Discard, 0, "", "")
			return nil
		}, want: "250 "},
		{name: "junk and fields", check: func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
			v.Set(inbound.Junk, 0, "", "")
			v.Spam = delivery.Spam{Checked: true, Scanner: "test", Score: 9, Threshold: 5, Flag: true}
			v.Add("X-Spam-Flag", "YES")
			v.Add("X-Spam-Report", "line one\nline two\r\nNot-A-Field: injected")
			v.Remove("Authentication-Results", 1)
			return nil
		}, want: "250 ", delivered: true, junk: true,
			fields: []string{"X-Spam-Flag: YES\r\nX-Spam-Report: line one\r\n\tline two\r\n\tNot-A-Field: injected\r\nReceived: "},
			absent: []string{spoofed}},
		{name: "error fails closed", check: func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
			return errors.New("connection refused")
		}, want: "451 4.7.1 "},
		{name: "error fails open", check: func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
			return errors.New("connection refused")
		}, step: func(s *inbound.Step) { s.OnFailure = inbound.FailAccept },
			want: "250 ", delivered: true, fields: []string{"X-Vmaild-Unchecked: test: error\r\n"}},
		{name: "hung check times out", check: func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
			<-ctx.Done()
			return ctx.Err()
		}, step: func(s *inbound.Step) { s.Timeout = 100 * time.Millisecond }, want: "451 4.7.1 "},
		{name: "oversize skipped", check: func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
			v.Reject(0, "", "")
			return nil
		}, step: func(s *inbound.Step) { s.MaxSize = 10 },
			want: "250 ", delivered: true, fields: []string{"X-Vmaild-Unchecked: test: too large\r\n"}},
		{name: "oversize refused", check: func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error { return nil },
			step: func(s *inbound.Step) { s.MaxSize = 10; s.OversizeReject = true }, want: "552 5.3.4 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			step := inbound.Step{Check: inbound.CheckFunc("test", tt.check)}
			if tt.step != nil {
				tt.step(&step)
			}
			e := startServer(t, RoleMTA, false, withChecks(step))
			r := sendRaw(t, e.addr, spoofed+testMessage("someone@remote.test", "alice@example.org", "hi", "Hello."))
			if !strings.HasPrefix(r.String(), tt.want) {
				t.Fatalf("reply %q, want %q", r.String(), tt.want)
			}
			got := e.agent.all()
			if len(got) != map[bool]int{false: 0, true: 1}[tt.delivered] {
				t.Fatalf("%d deliveries, want delivered=%v", len(got), tt.delivered)
			}
			if !tt.delivered {
				return
			}
			head, _, _ := strings.Cut(got[0].data, "\r\n\r\n")
			head += "\r\n"
			for _, f := range tt.fields {
				if !strings.Contains(head, f) {
					t.Errorf("header lacks %q:\n%s", f, head)
				}
			}
			for _, f := range tt.absent {
				if strings.Contains(head, f) {
					t.Errorf("header has %q:\n%s", f, head)
				}
			}
			v := got[0].env.Verdict
			if v == nil {
				t.Fatal("no verdict in the envelope")
			}
			if v.Junk != tt.junk {
				t.Errorf("junk %v, want %v", v.Junk, tt.junk)
			}
		})
	}
}

// TestChecksSeeEnvelope shows what a check is told, and that the roles a
// step names decide where it runs.
func TestChecksSeeEnvelope(t *testing.T) {
	var seen *inbound.Message
	var subject string
	check := inbound.CheckFunc("seen", func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
		seen, subject = m, m.Header().Get("Subject")
		return nil
	})
	e := startServer(t, RoleMTA, false, withChecks(inbound.Step{Check: check}))
	if r := sendRaw(t, e.addr, testMessage("someone@remote.test", "alice@example.org", "hi", "Hello.")); r.code != 250 {
		t.Fatal(r)
	}
	if seen == nil {
		t.Fatal("the check did not run")
	}
	if seen.From != "someone@remote.test" || seen.Helo != "client.test" || seen.ClientIP.String() != "127.0.0.1" ||
		len(seen.Recipients) != 1 || seen.Recipients[0] != "alice@example.org" || seen.Role != "mta" ||
		seen.Hostname != "mx.example.org" {
		t.Errorf("message facts %+v", seen)
	}
	if subject != "hi" {
		t.Errorf("Subject %q", subject)
	}

	// A step for the MTA only does not run on LMTP.
	seen = nil
	e = startServer(t, RoleLMTP, false, withChecks(inbound.Step{Check: check}))
	c := dialRaw(t, e.addr)
	c.must("LHLO client.test", "250 ")
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("DATA", "354 ")
	c.must(testMessage("someone@remote.test", "alice@example.org", "hi", "Hello.")+".", "250 ")
	if seen != nil {
		t.Error("an MTA check ran on LMTP")
	}
	if v := e.agent.all()[0].env.Verdict; v != nil {
		t.Errorf("verdict %+v without checks", v)
	}
}

// TestChecksLMTP: on LMTP a refusal is every recipient's reply.
func TestChecksLMTP(t *testing.T) {
	reject := inbound.CheckFunc("virus", func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
		v.Reject(554, "5.7.1", "Virus found: Eicar-Test-Signature")
		return nil
	})
	e := startServer(t, RoleLMTP, false, withChecks(inbound.Step{Check: reject, Roles: []string{delivery.RoleLMTP}}))
	c := dialRaw(t, e.addr)
	c.must("LHLO client.test", "250 ")
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("RCPT TO:<bob@example.org>", "250 ")
	c.must("DATA", "354 ")
	c.must(testMessage("someone@remote.test", "alice@example.org", "hi", "Hello.")+".", "554 5.7.1 <alice@example.org> Virus found")
	c.expect("554 5.7.1 <bob@example.org> Virus found")
	if got := e.agent.all(); len(got) != 0 {
		t.Errorf("%d deliveries of a refused message", len(got))
	}
}

// TestChecksRewriteSpooledToDisk: a message over MemorySpoolBytes (in the
// spool file) loses the fields a check removes and keeps its body whole.
func TestChecksRewriteSpooledToDisk(t *testing.T) {
	check := inbound.CheckFunc("strip", func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
		v.Remove("X-Spam-Flag", 1)
		v.Add("X-Spam-Flag", "YES")
		return nil
	})
	e := startServer(t, RoleMTA, false, withChecks(inbound.Step{Check: check}), func(s *Server) { s.MemorySpoolBytes = 1024 })
	body := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 2000)
	msg := "X-Spam-Flag: NO\r\n" + testMessage("someone@remote.test", "alice@example.org", "big", body)
	if r := sendRaw(t, e.addr, msg); r.code != 250 {
		t.Fatal(r)
	}
	got := e.agent.all()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	head, gotBody, _ := strings.Cut(got[0].data, "\r\n\r\n")
	if !strings.HasPrefix(head, "X-Spam-Flag: YES\r\nReceived: ") || strings.Contains(head, "X-Spam-Flag: NO") {
		t.Errorf("header:\n%s", head)
	}
	if gotBody != body+"\r\n" {
		t.Errorf("body of %d bytes, want %d", len(gotBody), len(body)+2)
	}
}

// TestChecksRefuseMalformedHeader: a header line that is neither a field
// nor a continuation would end the header the checks read, hiding what
// follows (a From for DMARC, a forged Authentication-Results) from them
// while a lenient mail client still shows it. Such a message is refused
// before any check runs, and nothing is delivered.
func TestChecksRefuseMalformedHeader(t *testing.T) {
	ran := false
	check := inbound.CheckFunc("seen", func(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
		ran = true
		return nil
	})
	e := startServer(t, RoleMTA, false, withChecks(inbound.Step{Check: check}))
	for _, msg := range []string{
		"Subject: hi\r\nnot a header line\r\nAuthentication-Results: mx.example.org; dmarc=pass\r\nFrom: <ceo@bank.test>\r\n\r\nbody\r\n",
		"Subject: hi\r\nFrom <ceo@bank.test>\r\n\r\nbody\r\n",
	} {
		if r := sendRaw(t, e.addr, msg); r.code != 554 || !strings.Contains(r.String(), "5.6.0") {
			t.Errorf("%q: %v, want 554 5.6.0", msg, r)
		}
	}
	if ran {
		t.Error("a check ran on a malformed header")
	}
	if r := sendRaw(t, e.addr, testMessage("someone@remote.test", "alice@example.org", "hi", "Hello.")); r.code != 250 || !ran {
		t.Errorf("a good message after them: %v (check ran %v)", r, ran)
	}
}
