package managesieve

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/backend/sieve"
	"github.com/vmaild/vmaild/protocols/login/logintest"
)

const spamScript = "require \"fileinto\";\nif header :contains \"subject\" \"spam\" { fileinto \"Junk\"; }\n"

// TestSession walks every command of RFC 5804 through one session, with
// the response codes a client acts on.
func TestSession(t *testing.T) {
	b := newMemBackend()
	addr := startServer(t, &Server{Backend: b, AllowInsecureAuth: true, MaxRedirects: 4})
	c := dial(t, addr)
	steps := []struct{ send, want string }{
		{"CAPABILITY", "\"IMPLEMENTATION\" \"vmaild\"\n\"SASL\" \"PLAIN LOGIN\"\n\"SIEVE\" \"" + strings.Join(sieve.Extensions(), " ") + "\"\n\"MAXREDIRECTS\" \"4\"\n\"UNAUTHENTICATE\"\n\"VERSION\" \"1.0\"\nOK"},
		{"LISTSCRIPTS", `NO "authenticate first"`},
		{`AUTHENTICATE "PLAIN" "` + b64("\x00me@example.com\x00wrong") + `"`, `NO "authentication failed"`},
		{`AUTHENTICATE "PLAIN" "` + b64("\x00me@example.com\x00secret") + `"`, `OK "Logged in"`},
		{`AUTHENTICATE "PLAIN" "x"`, `NO "already authenticated"`},
		{"LISTSCRIPTS", `OK "Listscripts completed"`},
		{`HAVESPACE "spam" 100`, `OK "Putscript would succeed"`},
		{`HAVESPACE "spam" 1000`, `NO (QUOTA/MAXSIZE) "script too large"`},
		{`PUTSCRIPT "spam" ` + literal(spamScript), `OK "Putscript completed"`},
		{`PUTSCRIPT "bad" {27}` + "\r\nkeep;\nif true {\nfrobnicate;", `NO "sieve: line 3: expected a command or '}' but found end of script"`},
		{`CHECKSCRIPT "keep;"`, `OK "Script is valid"`},
		{`CHECKSCRIPT "fileinto \"x\";"`, `NO "sieve: line 1: fileinto needs require \"fileinto\""`},
		{`PUTSCRIPT "two" "keep;"`, `OK "Putscript completed"`},
		{`PUTSCRIPT "three" "discard;"`, `OK "Putscript completed"`},
		{`PUTSCRIPT "four" "keep;"`, `NO (QUOTA/MAXSCRIPTS) "too many scripts"`},
		{`GETSCRIPT "spam"`, "{" + itoa(len(spamScript)) + "}" + spamScript + "\nOK \"Getscript completed\""},
		{`GETSCRIPT "nope"`, `NO (NONEXISTENT) "no such script"`},
		{`SETACTIVE "nope"`, `NO (NONEXISTENT) "no such script"`},
		{`SETACTIVE "spam"`, `OK "Setactive completed"`},
		{"LISTSCRIPTS", "\"spam\" ACTIVE\n\"three\"\n\"two\"\nOK \"Listscripts completed\""},
		{`DELETESCRIPT "spam"`, `NO (ACTIVE) "the active script cannot be deleted"`},
		{`RENAMESCRIPT "two" "three"`, `NO (ALREADYEXISTS) "script already exists"`},
		{`RENAMESCRIPT "spam" "junk"`, `OK "Renamescript completed"`},
		{`DELETESCRIPT "two"`, `OK "Deletescript completed"`},
		{`SETACTIVE ""`, `OK "Setactive completed"`},
		{"LISTSCRIPTS", "\"junk\"\n\"three\"\nOK \"Listscripts completed\""},
		{`NOOP "tag1"`, `OK (TAG "tag1") "Done"`},
		{"noop", `OK "Done"`},
		{"CAPABILITY", "\"OWNER\" \"me@example.com\""},
		{"UNAUTHENTICATE", "OK"},
		{"LISTSCRIPTS", `NO "authenticate first"`},
		{"LOGOUT", `OK "Logout completed"`},
	}
	for _, st := range steps {
		got := c.cmd(st.send)
		if st.send == "CAPABILITY" && strings.HasPrefix(st.want, `"OWNER"`) {
			if !strings.Contains(got, st.want) {
				t.Errorf("%q: %q lacks %q", st.send, got, st.want)
			}
			continue
		}
		if got != st.want {
			t.Errorf("%q:\n got  %q\n want %q", st.send, got, st.want)
		}
	}
	if b.closes != 1 {
		t.Errorf("%d sessions closed, want 1", b.closes)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func itoa(n int) string { return strconv.Itoa(n) }

// TestAuthenticateContinuation: PLAIN without an initial response gets an
// empty challenge and takes the response as a quoted string or a
// literal; "*" cancels; LOGIN works too.
func TestAuthenticateContinuation(t *testing.T) {
	addr := startServer(t, &Server{AllowInsecureAuth: true})
	cred := b64("\x00me@example.com\x00secret")
	for _, tc := range []struct{ name, exchange, want string }{
		{"quoted", `"` + cred + `"`, `OK "Logged in"`},
		{"literal", literal(cred), `OK "Logged in"`},
		{"sync literal", "{" + itoa(len(cred)) + "}\r\n" + cred, `OK "Logged in"`},
		{"cancel", `"*"`, `NO "authentication cancelled"`},
		{"bad base64", `"!!"`, `NO "invalid base64 in the SASL response"`},
		{"two strings", `"a" "b"`, `NO "a SASL response is one string"`},
	} {
		c := dial(t, addr)
		c.send("AUTHENTICATE \"PLAIN\"\r\n")
		line, err := c.r.ReadString('\n')
		if err != nil || line != "\"\"\r\n" {
			t.Fatalf("%s: challenge %q, %v", tc.name, line, err)
		}
		if got := c.cmd(tc.exchange); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	c := dial(t, addr)
	c.send("AUTHENTICATE \"LOGIN\"\r\n")
	for _, answer := range []string{"me@example.com", "secret"} {
		if line, _ := c.r.ReadString('\n'); !strings.HasPrefix(line, `"`) {
			t.Fatalf("LOGIN challenge %q", line)
		}
		c.send(`"` + b64(answer) + "\"\r\n")
	}
	if got := c.response(); got != `OK "Logged in"` {
		t.Errorf("LOGIN: %q", got)
	}
}

// TestStartTLS: without TLS no mechanism is offered and AUTHENTICATE is
// refused; after STARTTLS the capabilities come again, and logins work.
func TestStartTLS(t *testing.T) {
	srvTLS, cliTLS := testTLS(t)
	addr := startServer(t, &Server{TLSConfig: srvTLS})
	c := dial(t, addr)
	caps := c.cmd("CAPABILITY")
	if !strings.Contains(caps, "\"SASL\" \"\"\n") || !strings.Contains(caps, "\"STARTTLS\"") {
		t.Errorf("plaintext capabilities: %q", caps)
	}
	if got := c.cmd(`AUTHENTICATE "PLAIN" "` + b64("\x00me@example.com\x00secret") + `"`); !strings.HasPrefix(got, "NO (ENCRYPT-NEEDED)") {
		t.Errorf("plaintext AUTHENTICATE: %q", got)
	}
	if got := c.cmd("STARTTLS"); got != `OK "Begin TLS negotiation now"` {
		t.Fatalf("STARTTLS: %q", got)
	}
	tc := tls.Client(c.nc, cliTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.nc, c.r = tc, bufio.NewReader(tc)
	caps = c.response()
	if !strings.Contains(caps, "\"SASL\" \"PLAIN LOGIN\"") || strings.Contains(caps, "STARTTLS") {
		t.Errorf("capabilities after STARTTLS: %q", caps)
	}
	c.login("me@example.com", "secret")
	if got := c.cmd("STARTTLS"); !strings.HasPrefix(got, "NO") {
		t.Errorf("second STARTTLS: %q", got)
	}
}

// TestDirectoryDown: a directory outage is TRYLATER, not a failed login.
func TestDirectoryDown(t *testing.T) {
	b := newMemBackend()
	b.down = true
	c := dial(t, startServer(t, &Server{Backend: b, AllowInsecureAuth: true}))
	if got := c.cmd(`AUTHENTICATE "PLAIN" "` + b64("\x00me@example.com\x00secret") + `"`); !strings.HasPrefix(got, "NO (TRYLATER)") {
		t.Errorf("directory down: %q", got)
	}
}

// TestLoginService: AUTHENTICATE goes through the shared login service; a
// service with no room to verify answers TRYLATER, as IMAP and POP3 do.
func TestLoginService(t *testing.T) {
	c := dial(t, startServer(t, &Server{AllowInsecureAuth: true, Logins: logintest.Saturated(t)}))
	if got := c.cmd(`AUTHENTICATE "PLAIN" "` + b64("\x00me@example.com\x00wrong") + `"`); got != `NO (TRYLATER) "too many logins at once, try again later"` {
		t.Errorf("saturated login service: %q", got)
	}
}
