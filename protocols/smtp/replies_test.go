package smtp

import "testing"

// TestCommandReplyClasses: RFC 5321 4.2.4 and 4.3.2 separate a command the
// server does not know (500), one it knows but does not implement (502) and
// a known command with bad arguments (501), and RFC 3463 gives them the
// enhanced codes 5.5.1 (invalid command) and 5.5.2/5.5.4 (syntax, bad
// arguments). Every case answers the same before and after STARTTLS, and
// the connection lives on.
//
// go-smtp (v0.25.1, v0.26.0) writes these replies itself, before any
// Session method runs, and offers no hook to change them; above TLS only
// go-smtp sees the commands, so no wrapper of ours can either. Two of its
// answers differ from the RFCs and are pinned here so that a go-smtp
// upgrade that fixes them shows up: a verb that is not four letters long
// (XYZZY) fails its parseCmd and gets 501 5.5.2 instead of 500 5.5.1, and
// an unknown four-letter verb gets 500 with 5.5.2 instead of 5.5.1.
func TestCommandReplyClasses(t *testing.T) {
	tests := []struct {
		name, line, want string
		rfc              string // what RFC 5321 and RFC 3463 ask, when want differs
	}{
		// Unknown commands.
		{name: "unknown four-letter verb", line: "XYZW", want: "500 5.5.2", rfc: "500 5.5.1"},
		{name: "unknown five-letter verb", line: "XYZZY", want: "501 5.5.2", rfc: "500 5.5.1"},
		{name: "unknown verb with an argument", line: "FOOBAR baz", want: "501 5.5.2", rfc: "500 5.5.1"},
		{name: "unknown short verb", line: "HI", want: "501 5.5.2", rfc: "500 5.5.1"},
		{name: "verb run into its argument", line: "MAILFROM:<a@remote.test>", want: "501 5.5.2", rfc: "500 5.5.1"},
		{name: "empty line", line: "", want: "500 5.5.2"},
		// Known, not implemented (RFC 5321 lists them; 3.5.3 allows
		// refusing EXPN, 4.1.1.8 makes HELP optional, TURN is obsolete).
		{name: "EXPN", line: "EXPN staff", want: "502 5.5.1"},
		{name: "HELP", line: "HELP", want: "502 5.5.1"},
		{name: "TURN", line: "TURN", want: "502 5.5.1"},
		{name: "SEND", line: "SEND FROM:<a@remote.test>", want: "502 5.5.1"},
		{name: "SOML", line: "SOML FROM:<a@remote.test>", want: "502 5.5.1"},
		{name: "SAML", line: "SAML FROM:<a@remote.test>", want: "502 5.5.1"},
		// Known and implemented, bad arguments.
		{name: "HELO without a domain", line: "HELO", want: "501 5.5.2"},
		{name: "MAIL without FROM:", line: "MAIL TO:<a@remote.test>", want: "501 5.5.2"},
		{name: "MAIL with a malformed SIZE", line: "MAIL FROM:<a@remote.test> SIZE=abc", want: "501 5.5.4"},
		{name: "DATA with an argument", line: "DATA now", want: "501 5.5.4"},
		{name: "BDAT with a non-numeric size", line: "BDAT abc LAST", want: "501 5.5.4"},
		// Known, answered.
		{name: "VRFY", line: "VRFY alice", want: "252 2.5.0"},
		{name: "NOOP with an argument", line: "NOOP hello", want: "250 2.0.0"},
	}
	e := startServer(t, RoleMTA, false)
	for _, tls := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name
			if tls {
				name = "STARTTLS/" + name
			}
			t.Run(name, func(t *testing.T) {
				c := dialRaw(t, e.addr)
				c.must("EHLO client.test", "250 ")
				if tls {
					c.startTLS(e.tls)
					c.must("EHLO client.test", "250 ")
				}
				c.must(tt.line, tt.want+" ")
				if tt.rfc != "" {
					t.Logf("%q: %s from go-smtp, RFC: %s", tt.line, tt.want, tt.rfc)
				}
				c.must("NOOP", "250 ")
			})
		}
	}
}
