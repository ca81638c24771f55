package queue

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/userdb"
)

// statusCode is an RFC 3463 status as the Status field may carry it.
var statusCode = regexp.MustCompile(`^[45]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// FuzzDSN builds bounces for a queued message from whatever a remote
// server (or a local error) answered, the way the scheduler records it,
// and parses them back with go-message: a DSN is always a well-formed
// multipart/report of three parts, reports each failed recipient once with
// a valid Status, keeps the original header lines and nothing of the body,
// and has no line over the 998 octets RFC 5322 allows.
//
// Run long with ./fuzz.sh, or
//
//	go test -run '^$' -fuzz '^FuzzDSN$' -parallel 1 ./backend/queue/
func FuzzDSN(f *testing.F) {
	f.Add("Subject: hello\r\nFrom: a@example.org\r\n", "550 5.1.1 <x@remote.test>: Recipient address rejected: User unknown", uint16(550), byte(5), byte(1), byte(1), "mx.remote.test", false)
	f.Add("Subject: "+strings.Repeat("x", 1200)+"\r\n\r\nbody", strings.Repeat("long reply ", 200), uint16(451), byte(4), byte(7), byte(1), "mx\r\n.remote.test", true)
	f.Add("X: y\n folded\nTo: jörg@example.org\n\nbody\n--=_vmaild_\n", "\x00\r\n--=_vmaild_ \xff", uint16(0), byte(0), byte(0), byte(0), "local", false)
	f.Add("\r\n", "", uint16(999), byte(9), byte(99), byte(255), "", true)
	q := fuzzQueue(f)
	f.Fuzz(func(t *testing.T, header, text string, code uint16, c1, c2, c3 byte, host string, expired bool) {
		msg := header + "\r\n\r\nbody that must not come back\r\n"
		it, err := q.spool.write(context.Background(), &envelope{Version: envVersion, From: "sender@example.org", Rcpts: []string{"a@remote.test", "jörg@remote.test"}}, strings.NewReader(msg), -1)
		if err != nil {
			t.Fatal(err)
		}
		defer q.spool.remove(it.ID)
		// What the scheduler keeps of an attempt (finish in schedule.go).
		var res reply
		if code == 0 {
			res = localReply(errors.New(text))
		} else {
			res = smtpReply(&smtp.SMTPError{Code: int(code), EnhancedCode: smtp.EnhancedCode{int(c1), int(c2), int(c3)}, Message: text}, host, "deliver")
		}
		var failed []Recipient
		for _, addr := range []string{"a@remote.test", "jörg@remote.test"} {
			r := Recipient{Addr: addr, State: Failed, LastReply: oneLine(res.String()), ReplyCode: res.Code, Status: res.Status, RemoteMTA: oneLine(res.Host), LastAttempt: time.Now()}
			if expired {
				r.LastReply = "gave up after 120h0m0s in queue: " + r.LastReply
			}
			failed = append(failed, r)
		}
		dsn, err := q.buildDSN(it, it.From, failed)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if t.Failed() {
				t.Logf("DSN:\n%s", dsn)
			}
		}()
		for i, l := range bytes.Split(dsn, []byte("\r\n")) {
			if len(l) > 998 || bytes.ContainsAny(l, "\r\n") {
				t.Fatalf("DSN line %d is %d octets or not CRLF-terminated: %.80q", i+1, len(l), l)
			}
		}
		checkDSN(t, dsn, failed, msg)
	})
}

// checkDSN parses a DSN and checks its structure against the recipients
// it reports and the message it bounces.
func checkDSN(t *testing.T, dsn []byte, failed []Recipient, msg string) {
	t.Helper()
	e, err := message.Read(bytes.NewReader(dsn))
	if err != nil {
		t.Fatalf("DSN does not parse: %v", err)
	}
	if ct, params, _ := e.Header.ContentType(); ct != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN is %s %v", ct, params)
	}
	mr := e.MultipartReader()
	var types []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("DSN part %d: %v", len(types)+1, err)
		}
		ct, _, _ := p.Header.ContentType()
		types = append(types, ct)
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatalf("DSN part %s: %v", ct, err)
		}
		switch ct {
		case "message/delivery-status":
			checkDeliveryStatus(t, body, failed)
		case "text/rfc822-headers":
			if bytes.Contains(body, []byte("body that must not come back")) {
				t.Fatal("the bounce returns the message body")
			}
			// Each returned line starts a line of the message's
			// header, with control characters as spaces.
			var orig []string
			for _, l := range strings.Split(msg, "\n") {
				l = strings.Map(func(r rune) rune {
					if r < 0x20 && r != '\t' || r == 0x7f {
						return ' '
					}
					return r
				}, strings.TrimSuffix(l, "\r"))
				orig = append(orig, l)
			}
			for _, l := range strings.Split(strings.TrimRight(string(body), "\r\n"), "\r\n") {
				if l != "" && !slices.ContainsFunc(orig, func(o string) bool { return strings.HasPrefix(o, l) }) {
					t.Fatalf("returned header line %q is not in the message", l)
				}
			}
		}
	}
	if strings.Join(types, " ") != "text/plain message/delivery-status text/rfc822-headers" {
		t.Fatalf("DSN parts: %v", types)
	}
}

// checkDeliveryStatus reads the per-message fields and one block of
// per-recipient fields for each failed recipient (RFC 3464 2.1).
func checkDeliveryStatus(t *testing.T, body []byte, failed []Recipient) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(body))
	perMessage, err := textproto.ReadHeader(br)
	if err != nil || perMessage.Get("Reporting-MTA") == "" {
		t.Fatalf("per-message fields: %v, %v", perMessage, err)
	}
	for i, r := range failed {
		h, err := textproto.ReadHeader(br)
		if err != nil {
			t.Fatalf("recipient %d fields: %v", i+1, err)
		}
		if got := h.Get("Final-Recipient"); !strings.HasSuffix(got, "; "+r.Addr) {
			t.Fatalf("recipient %d: Final-Recipient %q, want %s", i+1, got, r.Addr)
		}
		if h.Get("Action") != "failed" || !statusCode.MatchString(h.Get("Status")) {
			t.Fatalf("recipient %d: Action %q, Status %q", i+1, h.Get("Action"), h.Get("Status"))
		}
	}
	if rest, _ := io.ReadAll(br); len(bytes.TrimSpace(rest)) > 0 {
		t.Fatalf("delivery-status has more than %d recipients: %q", len(failed), rest)
	}
}

// fuzzQueue is a queue that is never started: its spool is all the
// targets need.
func fuzzQueue(tb testing.TB) *Queue {
	q, err := New(Config{Dir: tb.TempDir(), Hostname: "out.vmaild.test", Resolver: "127.0.0.1:53"})
	if err != nil {
		tb.Fatal(err)
	}
	return q
}

// FuzzSpoolLoad gives the loader a hostile or damaged queue file (the
// envelope footer of a .msg, and a .state): it must refuse it with an
// error, or load an item whose sender and recipients are valid addresses
// and whose size is what the file holds.
func FuzzSpoolLoad(f *testing.F) {
	q := fuzzQueue(f)
	it, err := q.spool.write(context.Background(), &envelope{Version: envVersion, From: "a@example.org", Rcpts: []string{"b@remote.test"}}, strings.NewReader("Subject: x\r\n\r\nhi\r\n"), -1)
	if err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(q.spool.msgPath(it.ID))
	if err != nil {
		f.Fatal(err)
	}
	q.spool.remove(it.ID)
	state := []byte(`{"v":1,"recipients":[{"addr":"b@remote.test","state":"failed","attempts":3,"status":"5.1.1"}]}`)
	// good has no final marks: the format written before they existed.
	f.Add(good, state, true)
	f.Add(good, []byte(`{"v":1,"recipients":[{"addr":"b@remote.test","state":"lost"}]}`), true)
	f.Add(good[:len(good)-3], []byte(nil), false)
	f.Add(append(good[:len(good)-16:len(good)-16], binary.BigEndian.AppendUint64(nil, 1<<62)...), state, true)
	f.Add([]byte(`{"v":1,"id":"`+it.ID+`","from":"a@b@c","rcpts":[],"created":"2024-01-01T00:00:00Z","size":0}`+"\x00\x00\x00\x00\x00\x00\x00\x65VMQUEUE1"), state, false)
	// Recipients marked final (EnqueueRetry), and a mark naming no
	// recipient, which the loader refuses.
	marked := func(final string) []byte {
		js := `{"v":1,"id":"` + it.ID + `","from":"a@example.org","rcpts":["b@remote.test","c+tag@example.org"],"final":` + final + `,"created":"2024-01-01T00:00:00Z","size":3}`
		return append(binary.BigEndian.AppendUint64([]byte("hi\n"+js), uint64(len(js))), footerMagic...)
	}
	f.Add(marked(`["c+tag@example.org"]`), []byte(`{"v":1,"recipients":[{"addr":"b@remote.test","state":"delivered"},{"addr":"c+tag@example.org","state":"pending","attempts":2}]}`), true)
	f.Add(marked(`["x@example.org"]`), []byte(nil), false)
	f.Add(marked(`"c+tag@example.org"`), []byte(nil), false)
	// An admin's hold, and a hold of the wrong type.
	f.Add(good, []byte(`{"v":1,"held":true,"recipients":[{"addr":"b@remote.test","state":"pending"}]}`), true)
	f.Add(good, []byte(`{"v":1,"held":"yes","recipients":[{"addr":"b@remote.test","state":"pending"}]}`), true)
	id := it.ID
	f.Fuzz(func(t *testing.T, msgFile, stateFile []byte, hasState bool) {
		if err := os.WriteFile(q.spool.msgPath(id), msgFile, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Remove(q.spool.statePath(id))
		if hasState {
			if err := os.WriteFile(q.spool.statePath(id), stateFile, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		loaded, err := q.spool.loadItem(id, hasState)
		if err != nil {
			return
		}
		if loaded.ID != id || loaded.Size < 0 || loaded.Size > int64(len(msgFile)) || len(loaded.rcpts) == 0 {
			t.Fatalf("loaded %+v from %d octets", loaded, len(msgFile))
		}
		if loaded.From != "" {
			if _, _, err := userdb.Split(loaded.From); err != nil {
				t.Fatalf("loaded sender %q: %v", loaded.From, err)
			}
		}
		for _, r := range loaded.rcpts {
			if r.Final && !bytes.Contains(msgFile, []byte(r.Addr)) {
				t.Fatalf("recipient %q is marked final by no mark in the file", r.Addr)
			}
			if _, _, err := userdb.Split(r.Addr); err != nil {
				t.Fatalf("loaded recipient %q: %v", r.Addr, err)
			}
			switch r.State {
			case Pending, Delivered, Failed:
			default:
				t.Fatalf("loaded recipient state %q", r.State)
			}
		}
	})
}
