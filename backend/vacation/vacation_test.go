package vacation

import (
	"bufio"
	"context"
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/sieve"
	"github.com/vmaild/vmaild/userdb"
)

func mailOf(t *testing.T, from, header string, v *delivery.Verdict) *delivery.Mail {
	t.Helper()
	h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(header + "\r\n"))).ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	return &delivery.Mail{
		Envelope:    &delivery.Envelope{From: from, Verdict: v},
		Recipient:   &delivery.Recipient{Address: "alice@example.com"},
		Destination: &delivery.Destination{Destination: userdb.Destination{Address: "alice@example.com", Local: true}},
		Header:      h,
	}
}

func newResponder(t *testing.T, now *time.Time) *Responder {
	maildir := filepath.Join(t.TempDir(), "example.com", "alice", "Maildir")
	return &Responder{
		Maildir:  func(string, string) (string, error) { return maildir, nil },
		Hostname: "mx.example.com",
		Now:      func() time.Time { return *now },
		MaySendAs: func(_ context.Context, account, address string) (bool, error) {
			return address == "alice.smith@example.com", nil
		},
	}
}

// TestSkip: the reply rules of RFC 5230 section 4 and RFC 3834 section 2.
func TestSkip(t *testing.T) {
	const to = "To: Alice <alice@example.com>\r\n"
	spamVerdict := &delivery.Verdict{Spam: delivery.Spam{Checked: true, Score: 12, Threshold: 6}}
	hamVerdict := &delivery.Verdict{Spam: delivery.Spam{Checked: true, Score: 1, Threshold: 6}}
	for _, tc := range []struct {
		name, from, header string
		verdict            *delivery.Verdict
		addresses          []string
		want               string // "" a reply is due; else a word of the reason
	}{
		{"plain", "bob@example.net", to, nil, nil, ""},
		{"cc", "bob@example.net", "To: x@example.net\r\nCc: ALICE@Example.com\r\n", nil, nil, ""},
		{"resent", "bob@example.net", "To: x@example.net\r\nResent-To: alice@example.com\r\n", nil, nil, ""},
		{"bcc alias in :addresses", "bob@example.net", "To: Team <team@example.com>\r\n", nil, []string{"team@example.com"}, ""},
		{"not addressed", "bob@example.net", "To: team@example.com\r\n", nil, nil, "not in To"},
		{"no To at all", "bob@example.net", "Subject: x\r\n", nil, nil, "not in To"},
		{"unparsable To still found", "bob@example.net", "To: alice@example.com, <<broken\r\n", nil, nil, ""},
		{"null sender", "", to, nil, nil, "null sender"},
		{"mailer-daemon", "MAILER-DAEMON@example.net", to, nil, nil, "daemon"},
		{"owner-", "owner-list@example.net", to, nil, nil, "daemon"},
		{"-request", "list-request@example.net", to, nil, nil, "daemon"},
		{"listserv", "LISTSERV@example.net", to, nil, nil, "daemon"},
		{"majordomo", "majordomo@example.net", to, nil, nil, "daemon"},
		{"mailman bounces", "users-bounces@lists.example.net", to, nil, nil, "daemon"},
		{"own address", "alice@example.com", to, nil, nil, "is the recipient"},
		{"list-id", "bob@example.net", to + "List-Id: <users.example.net>\r\n", nil, nil, "List-Id"},
		{"list-unsubscribe", "bob@example.net", to + "List-Unsubscribe: <mailto:u@example.net>\r\n", nil, nil, "List-Unsubscribe"},
		{"precedence bulk", "bob@example.net", to + "Precedence: Bulk\r\n", nil, nil, "Precedence"},
		{"precedence list", "bob@example.net", to + "Precedence: list\r\n", nil, nil, "Precedence"},
		{"precedence junk", "bob@example.net", to + "Precedence: junk\r\n", nil, nil, "Precedence"},
		{"precedence first-class", "bob@example.net", to + "Precedence: first-class\r\n", nil, nil, ""},
		{"auto-submitted", "bob@example.net", to + "Auto-Submitted: auto-generated\r\n", nil, nil, "Auto-Submitted"},
		{"auto-replied", "bob@example.net", to + "Auto-Submitted: auto-replied (vacation)\r\n", nil, nil, "Auto-Submitted"},
		{"auto-submitted no", "bob@example.net", to + "Auto-Submitted: No ; comment\r\n", nil, nil, ""},
		{"x-auto-response-suppress", "bob@example.net", to + "X-Auto-Response-Suppress: DR, OOF\r\n", nil, nil, "X-Auto-Response-Suppress"},
		{"x-auto-response-suppress receipts only", "bob@example.net", to + "X-Auto-Response-Suppress: RN, NRN\r\n", nil, nil, ""},
		{"spam", "bob@example.net", to, spamVerdict, nil, "spam"},
		{"ham", "bob@example.net", to, hamVerdict, nil, ""},
		{"junk", "bob@example.net", to, &delivery.Verdict{Junk: true}, nil, "spam"},
		{"virus", "bob@example.net", to, &delivery.Verdict{Virus: delivery.Virus{Checked: true, Found: "Eicar"}}, nil, "spam"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_800_000_000, 0)
			r := newResponder(t, &now)
			got := r.Skip(context.Background(), mailOf(t, tc.from, tc.header, tc.verdict), &sieve.VacationParams{Addresses: tc.addresses})
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("Skip = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPeriod: :days and :seconds within the configured bounds.
func TestPeriod(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		name     string
		min, max time.Duration
		p        sieve.VacationParams
		want     time.Duration
	}{
		{"default", 0, 0, sieve.VacationParams{Period: 7 * day}, 7 * day},
		{"seconds below the default minimum", 0, 0, sieve.VacationParams{Period: day, Requested: 10 * time.Second, HasPeriod: true}, day},
		{"seconds above a lowered minimum", time.Second, 0, sieve.VacationParams{Period: day, Requested: 10 * time.Second, HasPeriod: true}, 10 * time.Second},
		{"seconds below a lowered minimum", time.Minute, 0, sieve.VacationParams{Period: day, Requested: 10 * time.Second, HasPeriod: true}, time.Minute},
		{"no minimum: every time", -1, 0, sieve.VacationParams{Period: day, HasPeriod: true}, 0},
		{"maximum", 0, 30 * day, sieve.VacationParams{Period: 365 * day, Requested: 365 * day, HasPeriod: true}, 30 * day},
	} {
		r := &Responder{MinPeriod: tc.min, MaxPeriod: tc.max}
		if got := r.Period(&tc.p); got != tc.want {
			t.Errorf("%s: Period = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestReplyOncePerPeriod: one reply per sender and handle per period,
// remembered once queued,
// remembered by a second Responder (a restart); another sender or handle
// gets its own; after the period another is due.
func TestReplyOncePerPeriod(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	r := newResponder(t, &now)
	ctx := context.Background()
	p := &sieve.VacationParams{Reason: "away", Handle: "h1", Period: 24 * time.Hour}
	hdr := "To: alice@example.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <orig-1@example.net>\r\nReferences: <a@x> <b@x>\r\n"
	reply := func(r *Responder, from string, p *sieve.VacationParams) *delivery.Reply {
		t.Helper()
		rp, err := r.Reply(ctx, mailOf(t, from, hdr, nil), p)
		if err != nil {
			t.Fatal(err)
		}
		if rp != nil && rp.Queued != nil {
			rp.Queued()
		}
		return rp
	}
	// A reply that never reached the queue (the delivery failed) is not
	// remembered.
	if rp, err := r.Reply(ctx, mailOf(t, "bob@example.net", hdr, nil), p); rp == nil || err != nil {
		t.Fatalf("not answered: %v", err)
	}
	first := reply(r, "bob@example.net", p)
	if first == nil || first.To != "bob@example.net" {
		t.Fatalf("first message: %+v", first)
	}
	msg := string(first.Message)
	for _, want := range []string{
		"From: alice@example.com\r\n", "To: <bob@example.net>\r\n",
		"Subject: =?utf-8?q?Auto:_caf=C3=A9?=\r\n", "In-Reply-To: <orig-1@example.net>\r\n",
		"References: <a@x> <b@x> <orig-1@example.net>\r\n", "Auto-Submitted: auto-replied (vacation)\r\n",
		"Message-ID: <", "@mx.example.com>\r\n", "Date: ", "\r\n\r\naway\r\n",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("reply lacks %q:\n%s", want, msg)
		}
	}
	restarted := newResponder(t, &now)
	restarted.Maildir = r.Maildir
	if rp := reply(restarted, "Bob@Example.net", p); rp != nil {
		t.Errorf("second message from the same sender answered after a restart")
	}
	if rp := reply(r, "carol@example.net", p); rp == nil {
		t.Errorf("another sender not answered")
	}
	if rp := reply(r, "bob@example.net", &sieve.VacationParams{Reason: "other", Handle: "h2", Period: 24 * time.Hour}); rp == nil {
		t.Errorf("another handle not answered")
	}
	now = now.Add(24*time.Hour + time.Second)
	if rp := reply(r, "bob@example.net", p); rp == nil {
		t.Errorf("no reply after the period")
	}
	home, _ := r.Maildir("", "")
	b, err := os.ReadFile(filepath.Join(filepath.Dir(home), DupesFile))
	if err != nil || strings.Contains(string(b), "bob") {
		t.Errorf("dupes file: %v\n%s", err, b)
	}
}

// TestReplyFrom: :from is used when the account may send as it, else the
// recipient; :subject and :mime as given.
func TestReplyFrom(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		from, want string
	}{
		{"", "From: alice@example.com\r\n"},
		{"Alice Smith <alice.smith@example.com>", "From: \"Alice Smith\" <alice.smith@example.com>\r\n"},
		{"ceo@example.com", "From: alice@example.com\r\n"},
		{"not an address", "From: alice@example.com\r\n"},
	} {
		r := newResponder(t, &now)
		rp, err := r.Reply(context.Background(), mailOf(t, "bob@example.net", "To: alice@example.com\r\n", nil),
			&sieve.VacationParams{From: tc.from, Subject: "Away\r\nBcc: x@y", Mime: true,
				Reason: "Content-Type: text/html\n\n<p>away</p>\n", Period: time.Hour})
		if err != nil || rp == nil {
			t.Fatalf("%q: %v %v", tc.from, rp, err)
		}
		msg := string(rp.Message)
		if !strings.Contains(msg, tc.want) {
			t.Errorf(":from %q: want %q in\n%s", tc.from, tc.want, msg)
		}
		if !strings.Contains(msg, "Subject: Away Bcc: x@y\r\n") || strings.Contains(msg, "\r\nBcc:") {
			t.Errorf("subject:\n%s", msg)
		}
		if !strings.Contains(msg, "MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n<p>away</p>\r\n") {
			t.Errorf(":mime body:\n%s", msg)
		}
	}
}

// TestDupesBounded: the file keeps at most MaxEntries, those expiring
// last, and drops expired ones.
func TestDupesBounded(t *testing.T) {
	home := t.TempDir()
	d := &Dupes{MaxEntries: 3}
	now := time.Unix(1_800_000_000, 0)
	seen := func(key string, at time.Time) bool {
		t.Helper()
		ok, err := d.Seen(home, key, at)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for i := range 5 {
		if err := d.Record(home, string(rune('a'+i)), now, time.Duration(i+1)*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(home, DupesFile))
	if n := strings.Count(string(b), "\n"); n != 3 {
		t.Errorf("%d entries, want 3:\n%s", n, b)
	}
	if !seen("e", now) || !seen("c", now) {
		t.Error("the entries expiring last were dropped")
	}
	if seen("a", now) || seen("b", now) {
		t.Error("the entries expiring first were kept")
	}
	if seen("c", now.Add(3*time.Hour)) || !seen("e", now.Add(3*time.Hour)) {
		t.Error("expiry")
	}
	d.Record(home, "z", now.Add(10*time.Hour), time.Hour)
	b, _ = os.ReadFile(filepath.Join(home, DupesFile))
	if n := strings.Count(string(b), "\n"); n != 1 {
		t.Errorf("expired entries kept:\n%s", b)
	}
}

// FuzzDupesFile: whatever the file holds, Seen and Record neither fail
// nor panic, and the file Record writes reads back with the new entry.
func FuzzDupesFile(f *testing.F) {
	f.Add([]byte("1800003600 " + strings.Repeat("ab", 32) + "\n"))
	f.Add([]byte("garbage\n\n-1 x\n99999999999999999999 " + strings.Repeat("0", 64) + "\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, content []byte) {
		home := t.TempDir()
		os.WriteFile(filepath.Join(home, DupesFile), content, 0o600)
		d := &Dupes{MaxEntries: 1 << 30} // the bound is TestDupesBounded's
		now := time.Unix(1_800_000_000, 0)
		if _, err := d.Seen(home, "k", now); err != nil {
			t.Fatal(err)
		}
		if err := d.Record(home, "k", now, time.Hour); err != nil {
			t.Fatal(err)
		}
		if ok, err := d.Seen(home, "k", now); !ok || err != nil {
			t.Fatalf("recorded key not seen: %v", err)
		}
	})
}

// TestReplyHeaderBounds: a huge subject, thousands of References and a
// garbled Message-ID give a reply whose header lines stay short.
func TestReplyHeaderBounds(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var refs []string
	for i := range 3000 {
		refs = append(refs, fmt.Sprintf("<r%d@example.net>", i))
	}
	for _, tc := range []struct {
		name, header string
		want, not    []string
	}{
		{"long", "Subject: " + strings.Repeat("é", 5000) + "\r\nMessage-ID: <m@example.net>\r\nReferences: " + strings.Join(refs, " ") + "\r\n",
			[]string{"<r0@example.net>", "<r2999@example.net>", "\r\nIn-Reply-To: <m@example.net>\r\n"}, []string{"<r1@example.net>"}},
		{"garbled id", "Subject: x\r\nMessage-ID: no brackets at all\r\n", nil, []string{"In-Reply-To", "References"}},
	} {
		r := newResponder(t, &now)
		rp, err := r.Reply(context.Background(), mailOf(t, "bob@example.net", "To: alice@example.com\r\n"+tc.header, nil),
			&sieve.VacationParams{Reason: "away", Period: time.Hour})
		if err != nil || rp == nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		msg := string(rp.Message)
		head, _, _ := strings.Cut(msg, "\r\n\r\n")
		for _, line := range strings.Split(head, "\r\n") {
			if len(line) > 100 {
				t.Errorf("%s: header line of %d octets: %.80q", tc.name, len(line), line)
			}
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: no %q", tc.name, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(msg, w) {
				t.Errorf("%s: %q in\n%s", tc.name, w, head)
			}
		}
	}
}
