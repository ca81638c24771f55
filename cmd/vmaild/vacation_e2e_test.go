package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// TestServeVacationAndRedirect runs the daemon with its queue pointed at
// a loopback sink as remote.test's MX and example.com's DKIM key in the
// loopback DNS:
//   - alice's vacation (:days 1) answers bob once however often he writes,
//     and eve, but never <>, a list (List-Id), bulk or auto-submitted
//     mail; the reply reaches the sink from <> with Auto-Submitted:
//     auto-replied, In-Reply-To the original's Message-ID, and a DKIM
//     signature python3-dkim verifies;
//   - carol's :seconds 1, with sieve.vacation_min_period lowered to 1s,
//     answers the same sender again once the second has passed;
//   - dave's redirect leaves through the queue with an SRS sender;
//   - x redirects to y and y back to x: the message ends in y's INBOX,
//     logged as a redirect loop, not a storm.
func TestServeVacationAndRedirect(t *testing.T) {
	dns := queuetest.NewDNS(t)
	sink := queuetest.NewSink(t, queuetest.SinkOptions{})
	dns.MX("remote.test", 10, "mx.remote.test")
	dns.A("mx.remote.test", "127.0.0.1")
	d := newDaemon(t, fmt.Sprintf("queue:\n  resolver: %s\n  port: %d\nsieve:\n  vacation_min_period: 1s\n", dns.Addr, sink.Port))
	publish(t, dns, d.cli("", "dkim", "keygen", "example.com", "--selector", "ed", "--algorithm", "ed25519"))
	d.start()
	d.cli("", "domain", "add", "example.com")
	scripts := map[string]string{
		"alice": `require "vacation"; vacation :days 1 "Alice is away until Monday.";`,
		"carol": `require ["vacation", "vacation-seconds"]; vacation :seconds 1 "Carol is away.";`,
		"dave":  `redirect "friend@remote.test";`,
		"x":     `redirect "y@example.com";`,
		"y":     `redirect "x@example.com";`,
	}
	dir := t.TempDir()
	for user, src := range scripts {
		d.cli(user+"-secret\n", "user", "add", user+"@example.com", "--password-stdin")
		f := filepath.Join(dir, user+".sieve")
		os.WriteFile(f, []byte(src), 0o644)
		d.cli("", "sieve", "put", user+"@example.com", "main", f, "--activate")
	}
	send := func(from, to, extra, id string) {
		t.Helper()
		msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: hello " + id + "\r\nMessage-ID: <" + id + "@remote.test>\r\n" + extra + "\r\nbody\r\n"
		if err := sendMail(t, d.addr("smtp"), nil, from, []string{to}, msg); err != nil {
			t.Fatalf("SMTP %s: %v\n%s", id, err, d.out.String())
		}
	}

	// alice: bob twice, then what must never be answered, then eve.
	send("bob@remote.test", "alice@example.com", "", "m1")
	send("bob@remote.test", "alice@example.com", "", "m2")
	send("", "alice@example.com", "", "null")
	send("list@remote.test", "alice@example.com", "List-Id: <users.remote.test>\r\n", "list")
	send("news@remote.test", "alice@example.com", "Precedence: bulk\r\n", "bulk")
	send("robot@remote.test", "alice@example.com", "Auto-Submitted: auto-generated\r\n", "auto")
	send("eve@remote.test", "alice@example.com", "", "m3")
	got := sink.Wait(t, 2)
	byRcpt := map[string][]queuetest.Message{}
	for _, m := range got {
		byRcpt[strings.Join(m.Rcpts, ",")] = append(byRcpt[strings.Join(m.Rcpts, ",")], m)
	}
	reply := byRcpt["bob@remote.test"]
	if len(reply) != 1 || len(byRcpt["eve@remote.test"]) != 1 {
		t.Fatalf("replies: %+v", got)
	}
	r := reply[0]
	for _, want := range []string{
		"\r\nAuto-Submitted: auto-replied (vacation)\r\n", "\r\nIn-Reply-To: <m1@remote.test>\r\n",
		"\r\nFrom: alice@example.com\r\n", "\r\nTo: <bob@remote.test>\r\n", "\r\nSubject: Auto: hello m1\r\n",
		"Alice is away until Monday.",
	} {
		if !bytes.Contains(r.Data, []byte(want)) {
			t.Errorf("reply lacks %q:\n%s", want, r.Data)
		}
	}
	if r.From != "" {
		t.Errorf("reply sent from <%s>, want <>", r.From)
	}
	if ok, out := dkimVerify(t, dns.Addr, r.Data, 0); !ok || !bytes.Contains(r.Data, []byte("d=example.com")) {
		t.Errorf("the reply's signature does not verify: %s\n%s", out, r.Data)
	}
	logs := d.out.String()
	for _, why := range []string{"already answered within the period", "null sender", "message has List-Id", "message has Precedence", "message has Auto-Submitted"} {
		if !strings.Contains(logs, why) {
			t.Errorf("no %q in the log", why)
		}
	}

	// carol: the second message after her one second is answered again.
	send("bob@remote.test", "carol@example.com", "", "c1")
	sink.Wait(t, 3)
	time.Sleep(1100 * time.Millisecond)
	send("bob@remote.test", "carol@example.com", "", "c2")
	sink.Wait(t, 4)

	// dave: the redirect leaves with an SRS sender.
	send("bob@remote.test", "dave@example.com", "", "r1")
	got = sink.Wait(t, 5)
	var redirected *queuetest.Message
	for i := range got {
		if len(got[i].Rcpts) == 1 && got[i].Rcpts[0] == "friend@remote.test" {
			redirected = &got[i]
		}
	}
	if redirected == nil || !strings.HasPrefix(redirected.From, "SRS0=") || !strings.HasSuffix(redirected.From, "@mx.example.com") ||
		!strings.Contains(redirected.From, "remote.test=bob") {
		t.Fatalf("redirect: %+v", redirected)
	}
	if !bytes.HasPrefix(redirected.Data, []byte("Delivered-To: dave@example.com\r\n")) {
		t.Errorf("the redirected copy does not name dave:\n%s", redirected.Data)
	}

	// x → y → x: kept in y's INBOX.
	send("bob@remote.test", "x@example.com", "", "loop")
	mail := filepath.Join(filepath.Dir(d.config), "data", "mail", "example.com")
	waitFor(t, d, "the looping message in y's INBOX", func() bool {
		files, _ := filepath.Glob(filepath.Join(mail, "y", "Maildir", "new", "*"))
		return len(files) == 1
	})
	waitFor(t, d, "the loop logged", func() bool { return strings.Contains(d.out.String(), "redirect loop: kept instead") })
	d.stop()
	for user, want := range map[string]int{"x": 0, "y": 1} {
		files, _ := filepath.Glob(filepath.Join(mail, user, "Maildir", "new", "*"))
		if len(files) != want {
			t.Errorf("%s has %d messages, want %d", user, len(files), want)
		}
	}
	if n := strings.Count(d.out.String(), "redirect loop: the message was here before"); n != 1 {
		t.Errorf("%d redirect loops logged, want 1", n)
	}
	if n := len(sink.Messages()); n != 5 {
		t.Errorf("the sink got %d messages, want 5 (replies to bob and eve, two to carol's sender, the redirect)", n)
	}
}
