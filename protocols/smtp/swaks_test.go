package smtp

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runSwaks runs swaks against the server and returns its transcript and
// whether it exited 0.
func runSwaks(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	swaks := requireSwaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, swaks, append([]string{"--helo", "swaks.test", "--timeout", "30"}, args...)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("swaks timed out:\n%s", out)
	}
	return string(out), err == nil
}

func TestSwaks(t *testing.T) {
	mta := startServer(t, RoleMTA, false)
	sub := startServer(t, RoleSubmission, false)
	subTLS := startServer(t, RoleSubmission, true)
	tests := []struct {
		name   string
		e      *env
		args   []string
		ok     bool
		want   []string
		rcpts  []string // delivered recipients, when ok
		header []string // in the delivered message
	}{
		{
			name: "MTA local delivery", e: mta,
			args:  []string{"--from", "someone@remote.test", "--to", "alice@example.org"},
			ok:    true,
			want:  []string{"<-  250 2.0.0 Message accepted"},
			rcpts: []string{"alice@example.org"}, header: []string{"from swaks.test ([127.0.0.1])", "with ESMTP id"},
		},
		{
			name: "MTA pipelining and STARTTLS", e: mta,
			args:  []string{"--from", "someone@remote.test", "--to", "alice@example.org,bob@example.org", "--pipeline", "--tls"},
			ok:    true,
			rcpts: []string{"alice@example.org", "bob@example.org"}, header: []string{"with ESMTPS id", "(using TLSv1."},
		},
		{
			name: "MTA refuses to relay", e: mta,
			args: []string{"--from", "someone@remote.test", "--to", "friend@other.test"},
			want: []string{"* 554 5.7.1 Relay access denied"},
		},
		{
			name: "MTA percent hack", e: mta,
			args: []string{"--from", "someone@remote.test", "--to", "friend%other.test@example.org"},
			want: []string{"* 554 5.7.1 Recipient address rejected: percent-hack"},
		},
		{
			name: "MTA unknown user", e: mta,
			args: []string{"--from", "someone@remote.test", "--to", "nobody@example.org"},
			want: []string{"* 550 5.1.1"},
		},
		{
			name: "submission refuses AUTH without TLS", e: sub,
			args: []string{"--from", "alice@example.org", "--to", "friend@other.test", "--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password", "secret-alice"},
			want: []string{"*** Host did not advertise authentication"},
		},
		{
			name: "submission STARTTLS AUTH PLAIN relays", e: sub,
			args:  []string{"--tls", "--from", "alice@example.org", "--to", "friend@other.test", "--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password", "secret-alice"},
			ok:    true,
			want:  []string{"235 2.0.0"},
			rcpts: []string{"friend@other.test"}, header: []string{"with ESMTPSA id"},
		},
		{
			name: "submission AUTH LOGIN", e: sub,
			args:  []string{"--tls", "--from", "alice@example.org", "--to", "bob@example.org", "--auth", "LOGIN", "--auth-user", "alice@example.org", "--auth-password", "secret-alice"},
			ok:    true,
			rcpts: []string{"bob@example.org"},
		},
		{
			name: "submission wrong password", e: sub,
			args: []string{"--tls", "--from", "alice@example.org", "--to", "bob@example.org", "--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password", "nope"},
			want: []string{"* 535 5.7.8"},
		},
		{
			name: "submission sender not owned", e: sub,
			args: []string{"--tls", "--from", "bob@example.org", "--to", "friend@other.test", "--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password", "secret-alice"},
			want: []string{"* 553 5.7.1"},
		},
		{
			name: "submission without AUTH", e: sub,
			args: []string{"--tls", "--from", "alice@example.org", "--to", "bob@example.org"},
			want: []string{"* 530 5.7.0"},
		},
		{
			name: "submission implicit TLS", e: subTLS,
			args:  []string{"--tlsc", "--from", "bob@example.org", "--to", "friend@other.test", "--auth", "PLAIN", "--auth-user", "bob@example.org", "--auth-password", "secret-bob"},
			ok:    true,
			rcpts: []string{"friend@other.test"}, header: []string{"with ESMTPSA id", "\r\nDate: ", "\r\nTo: friend@other.test"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(tt.e.agent.all())
			out, ok := runSwaks(t, append([]string{"--server", tt.e.addr}, tt.args...)...)
			if ok != tt.ok {
				t.Fatalf("swaks success %v, want %v:\n%s", ok, tt.ok, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("transcript lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "secret-") && !strings.Contains(strings.Join(tt.args, " "), "secret-") {
				t.Error("password echoed")
			}
			got := tt.e.agent.all()[before:]
			if !tt.ok {
				if len(got) != 0 {
					t.Errorf("delivered %+v", got)
				}
				return
			}
			if len(got) != 1 || strings.Join(got[0].rcpts, ",") != strings.Join(tt.rcpts, ",") {
				t.Fatalf("deliveries %+v, want to %v", got, tt.rcpts)
			}
			for _, h := range tt.header {
				if !strings.Contains(got[0].data, h) {
					t.Errorf("message lacks %q:\n%s", h, got[0].data)
				}
			}
		})
	}
}

func TestSwaksLMTP(t *testing.T) {
	e, path := startLMTP(t)
	out, ok := runSwaks(t, "--protocol", "LMTP", "--socket", path, "--from", "someone@remote.test", "--to", "alice@example.org,bob@example.org")
	if !ok {
		t.Fatalf("swaks failed:\n%s", out)
	}
	for _, w := range []string{"250 2.0.0 <alice@example.org> Delivered", "250 2.0.0 <bob@example.org> Delivered"} {
		if !strings.Contains(out, w) {
			t.Errorf("transcript lacks %q:\n%s", w, out)
		}
	}
	if n := len(e.agent.all()); n != 1 {
		t.Errorf("%d deliveries", n)
	}
}
