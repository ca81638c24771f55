package bridge

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/scriptconn"
)

// fuzzServe runs p on one scripted connection to its end and returns what
// the server wrote. The login service is left out: its delays would only
// slow the fuzzer, and it sees no wire input.
func fuzzServe(p Protocol, script []byte, chunk int) []byte {
	sc := scriptconn.New(script, chunk)
	c := newConn(sc, time.Minute)
	p.Serve(context.Background(), c)
	c.w.Flush()
	return sc.Output()
}

func fuzzAnswers(f *testing.F) *Answers {
	fx := newFixture(f)
	fx.answers.Logins = nil
	return fx.answers
}

func FuzzDovecot(f *testing.F) {
	p := &Dovecot{Answers: fuzzAnswers(f)}
	for _, s := range []string{
		"VERSION\t1\t1\nCPID\t1\nAUTH\t1\tPLAIN\tservice=smtp\trip=192.0.2.1\tresp=" + b64("\x00alice@example.com\x00alice-secret") + "\n",
		"VERSION\t1\t1\nAUTH\t5\tLOGIN\nCONT\t5\t" + b64("bob@example.com") + "\nCONT\t5\t" + b64("bob-secret") + "\n",
		"VERSION\t1\t1\nAUTH\t1\tPLAIN\nCONT\t1\t!!\nCONT\t2\t\n",
		"VERSION\t2\t0\n",
		"FOO\n",
	} {
		f.Add([]byte(s), 0)
	}
	f.Fuzz(func(t *testing.T, script []byte, chunk int) {
		out := fuzzServe(p, script, chunk%7)
		_, rest, ok := bytes.Cut(out, []byte("DONE\n"))
		if !ok {
			t.Fatalf("no handshake: %q", out)
		}
		for _, l := range strings.Split(string(rest), "\n") {
			cmd, _, _ := strings.Cut(l, "\t")
			switch cmd {
			case "", "OK", "FAIL", "CONT":
			default:
				t.Fatalf("server wrote %q", l)
			}
		}
	})
}

func FuzzSaslauthd(f *testing.F) {
	p := &Saslauthd{Answers: fuzzAnswers(f)}
	f.Add([]byte(saslauthdRequest("alice@example.com", "alice-secret", "smtp", "")), 0)
	f.Add([]byte(saslauthdRequest("alice", "alice-secret", "imap", "example.com")), 1)
	f.Add([]byte("\xff\xff"), 0)
	f.Fuzz(func(t *testing.T, script []byte, chunk int) {
		out := fuzzServe(p, script, chunk%7)
		if len(out) == 0 {
			return
		}
		if len(out) < 2 || int(out[0])<<8|int(out[1]) != len(out)-2 {
			t.Fatalf("answer not one counted string: %q", out)
		}
		if a := string(out[2:]); a != "OK" && !strings.HasPrefix(a, "NO ") {
			t.Fatalf("answer %q", a)
		}
	})
}

func FuzzPolicy(f *testing.F) {
	p := &Policy{Answers: fuzzAnswers(f)}
	f.Add([]byte(policyRequest("RCPT", "alice@example.com")+policyRequest("RCPT", "nobody@example.com")), 0)
	f.Add([]byte(policyRequest("RCPT", "full@example.com")), 3)
	f.Add([]byte("request=smtpd_access_policy\nhello\n\n"), 0)
	f.Fuzz(func(t *testing.T, script []byte, chunk int) {
		out := string(fuzzServe(p, script, chunk%7))
		for len(out) > 0 {
			answer, rest, ok := strings.Cut(out, "\n\n")
			if !ok || !strings.HasPrefix(answer, "action=") || strings.Contains(answer, "\n") {
				t.Fatalf("answer not action=…: %q", out)
			}
			out = rest
		}
	})
}

func FuzzSocketmap(f *testing.F) {
	p := &Socketmap{Answers: fuzzAnswers(f)}
	f.Add([]byte(netstring("virtual_alias_maps sales@example.com")+netstring("virtual_mailbox_domains example.com")), 0)
	f.Add([]byte(netstring("smtpd_sender_login_maps sales@example.com")), 2)
	f.Add([]byte("99999:"), 0)
	f.Fuzz(func(t *testing.T, script []byte, chunk int) {
		out := string(fuzzServe(p, script, chunk%7))
		for len(out) > 0 {
			n, rest, ok := strings.Cut(out, ":")
			size, err := strconv.Atoi(n)
			if !ok || err != nil || len(rest) < size+1 || rest[size] != ',' {
				t.Fatalf("answer not a netstring: %q", out)
			}
			st, _, _ := strings.Cut(rest[:size], " ")
			switch Status(st) {
			case Found, NotFound, TempFail, PermFail:
			default:
				t.Fatalf("answer status %q", st)
			}
			out = rest[size+1:]
		}
	})
}
