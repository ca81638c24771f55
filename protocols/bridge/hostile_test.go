package bridge

import (
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostile is one bad client: what it sends, whether it then shuts its
// side (false: it never finishes, and the server's timeout must end it),
// and everything the server must answer before it closes.
type hostile struct {
	name   string
	send   string
	finish bool
	want   string
}

// hostileTimeout is the servers' request timeout in these tests: a client
// that never finishes is closed after it.
const hostileTimeout = 300 * time.Millisecond

// runHostile sends each case on its own connection, all at once, and
// checks that every one is answered exactly and closed, that the server
// still serves a good client afterwards (good: a request and its answer),
// and that no goroutine is left behind.
func runHostile(t *testing.T, p Protocol, strip func(string) (string, bool), cases []hostile, good [2]string) {
	t.Helper()
	path := serve(t, p, hostileTimeout)
	before := runtime.NumGoroutine()
	type result struct {
		out string
		err error
	}
	results := make([]chan result, len(cases))
	for i, tc := range cases {
		results[i] = make(chan result, 1)
		go func() {
			c, err := net.Dial("unix", path)
			if err != nil {
				results[i] <- result{err: err}
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(c, tc.send); err != nil {
				results[i] <- result{err: err}
				return
			}
			if tc.finish {
				c.(*net.UnixConn).CloseWrite()
			}
			out, err := io.ReadAll(c) // to the server's close
			results[i] <- result{string(out), err}
		}()
	}
	for i, tc := range cases {
		r := <-results[i]
		got, ok := strip(r.out)
		switch {
		case r.err != nil:
			t.Errorf("%s: %v (got %q)", tc.name, r.err, r.out)
		case !ok:
			t.Errorf("%s: %q lacks the handshake", tc.name, r.out)
		case got != tc.want:
			t.Errorf("%s: answered %q, want %q", tc.name, got, tc.want)
		}
	}
	c := dial(t, path)
	c.send(good[0])
	c.Conn.(*net.UnixConn).CloseWrite()
	out, err := io.ReadAll(c.r)
	if got, _ := strip(string(out)); err != nil || !strings.HasPrefix(got, good[1]) {
		t.Errorf("good client after the hostile ones: %q, %v; want %q", out, err, good[1])
	}
	c.Close()
	checkGoroutines(t, before)
}

func TestDovecotHostile(t *testing.T) {
	f := newFixture(t)
	d := &Dovecot{Answers: f.answers}
	// The handshake differs per connection (CUID, COOKIE): compare what
	// follows it.
	hs := "VERSION\t1\t1\n"
	auth := "AUTH\t1\tPLAIN\tservice=smtp\tresp=" + b64("\x00alice@example.com\x00alice-secret") + "\n"
	var many strings.Builder
	many.WriteString(hs)
	var manyWant strings.Builder
	for i := 1; i <= dovecotMaxPending+1; i++ {
		many.WriteString("AUTH\t" + itoa(i) + "\tLOGIN\tservice=smtp\n")
		if i <= dovecotMaxPending {
			manyWant.WriteString("CONT\t" + itoa(i) + "\t" + b64("Username:") + "\n")
		}
	}
	manyWant.WriteString("FAIL\t17\treason=Too many authentications in progress\n")
	runHostile(t, d, afterHandshake, []hostile{
		{"unknown command", hs + "FOO\tbar\n", true, ""},
		{"command before VERSION", auth, true, ""},
		{"other major version", "VERSION\t2\t0\n" + auth, true, ""},
		{"VERSION without a minor", "VERSION\t1\n", true, ""},
		{"line over 16 KiB", hs + "AUTH\t1\tPLAIN\tresp=" + strings.Repeat("A", 20000) + "\n", true, ""},
		{"NUL in a line", hs + "AUTH\t1\tPL\x00AIN\n", true, ""},
		{"not UTF-8", hs + "AUTH\t1\tPLAIN\tservice=\xff\n", true, ""},
		{"id not a number", hs + "AUTH\tx\tPLAIN\n", true, ""},
		{"id out of range", hs + "AUTH\t99999999999\tPLAIN\n", true, ""},
		{"AUTH without a mechanism", hs + "AUTH\t1\n", true, ""},
		{"id in use", hs + "AUTH\t1\tLOGIN\nAUTH\t1\tLOGIN\n", true, "CONT\t1\t" + b64("Username:") + "\n"},
		{"truncated line", hs + strings.TrimSuffix(auth, "\n"), true, ""},
		{"empty PLAIN response", hs + "AUTH\t1\tPLAIN\tresp=\n", true, "FAIL\t1\treason=Invalid authentication response\n"},
		{"PLAIN with one NUL", hs + "AUTH\t1\tPLAIN\tresp=" + b64("alice\x00pw") + "\n", true, "FAIL\t1\treason=Invalid authentication response\n"},
		{"LOGIN username with a NUL", hs + "AUTH\t1\tLOGIN\nCONT\t1\t" + b64("a\x00b") + "\n", true,
			"CONT\t1\t" + b64("Username:") + "\nFAIL\t1\treason=Invalid authentication response\n"},
		{"too many in flight", many.String(), true, manyWant.String()},
		{"never finishes", hs + "AUTH\t1\tPLAIN\tresp=AGFs", false, ""},
		{"never continues", hs + "AUTH\t1\tLOGIN\n", false, "CONT\t1\t" + b64("Username:") + "\n"},
	}, [2]string{hs + auth, "OK\t1\tuser=alice@example.com\n"})
}

// afterHandshake strips the Dovecot handshake, which differs per
// connection (CUID, COOKIE), from an output.
func afterHandshake(out string) (string, bool) {
	_, rest, ok := strings.Cut(out, "DONE\n")
	return rest, ok
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestSaslauthdHostile(t *testing.T) {
	f := newFixture(t)
	req := saslauthdRequest
	no := func(s string) string { return counted("NO " + s) }
	runHostile(t, &Saslauthd{Answers: f.answers}, noStrip, []hostile{
		{"truncated length", "\x00", true, no("protocol error: truncated request")},
		{"truncated field", "\x00\x10alice", true, no("protocol error: truncated field: 16 octets announced")},
		{"three fields", req("alice@example.com", "alice-secret", "smtp"), true, no("protocol error: truncated request")},
		{"oversized length", "\xff\xff" + strings.Repeat("a", 100), true, no("protocol error: field of 65535 octets, more than 1024")},
		{"oversized password", req("alice@example.com") + "\x04\x01", true, no("protocol error: field of 1025 octets, more than 1024")},
		{"NUL in the login", req("alice\x00@example.com", "alice-secret", "smtp", ""), true, no("authentication failed")},
		{"NUL in the password", req("alice@example.com", "alice\x00secret", "smtp", ""), true, no("authentication failed")},
		{"empty fields", req("", "", "", ""), true, no("authentication failed")},
		{"not UTF-8", req("\xff\xfe@example.com", "x", "", ""), true, no("authentication failed")},
		{"never finishes", "\x00\x05ali", false, ""},
		{"second request ignored", req("alice@example.com", "alice-secret", "", "") + req("x", "y", "", ""), false, counted("OK")},
	}, [2]string{req("alice@example.com", "alice-secret", "smtp", ""), counted("OK")})
}

func noStrip(s string) (string, bool) { return s, true }

func counted(s string) string { return string([]byte{byte(len(s) >> 8), byte(len(s))}) + s }

func TestPolicyHostile(t *testing.T) {
	f := newFixture(t)
	good := policyRequest("RCPT", "alice@example.com")
	runHostile(t, &Policy{Answers: f.answers}, noStrip, []hostile{
		{"line without =", "request=smtpd_access_policy\nhello\n\n", true, ""},
		{"empty name", "request=smtpd_access_policy\n=x\n\n", true, ""},
		{"unknown request", "request=junk\nrecipient=nobody@example.com\n\n", true, ""},
		{"no request", "recipient=nobody@example.com\n\n", true, ""},
		{"line over 8 KiB", "request=smtpd_access_policy\nsender=" + strings.Repeat("a", 9000) + "\n\n", true, ""},
		{"too many attributes", "request=smtpd_access_policy\n" + manyAttrs(policyMaxAttrs+1) + "\n", true, ""},
		{"NUL", "request=smtpd_access_policy\nrecipient=a\x00b@example.com\n\n", true, ""},
		{"truncated", strings.TrimSuffix(policyRequest("RCPT", "nobody@example.com"), "\n"), true, ""},
		{"good then garbage", good + "garbage\n", true, "action=DUNNO\n\n"},
		{"recipient not an address", "request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=<<>>\n\n", true, "action=553 5.1.3 Bad recipient address syntax\n\n"},
		{"never finishes", "request=smtpd_access_policy\nrecipient=", false, ""},
	}, [2]string{good, "action=DUNNO\n\n"})
}

func TestSocketmapHostile(t *testing.T) {
	f := newFixture(t)
	runHostile(t, &Socketmap{Answers: f.answers}, noStrip, []hostile{
		{"not a netstring", "virtual_alias_maps x\n", true, ""},
		{"truncated length", "12", true, ""},
		{"truncated data", "30:virtual_alias_maps a", true, ""},
		{"no comma", netstring("virtual_alias_maps a@b")[:25] + ".", true, ""},
		{"leading zero", "05:abcde,", true, ""},
		{"length over 6 digits", "1000000:", true, ""},
		{"oversized length", "99999:", true, netstring("PERM request of 99999 octets, more than 4096")},
		{"empty", "0:,", true, netstring(`PERM request is not "NAME KEY"`)},
		{"NUL in the key", netstring("virtual_mailbox_maps alice\x00@example.com"), true, netstring("NOTFOUND")},
		{"not UTF-8", netstring("virtual_mailbox_maps \xff@example.com"), true, netstring("NOTFOUND")},
		{"unknown table", netstring("passwd root"), true, netstring(`PERM no such table "passwd"`)},
		{"never finishes", "40:virtual_alias_maps", false, ""},
	}, [2]string{netstring("virtual_mailbox_domains example.com"), netstring("OK example.com")})
}

func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("x" + itoa(i) + "=y\n")
	}
	return b.String()
}
