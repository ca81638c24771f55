package wire

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// gen makes random typed commands for the round-trip property.
type gen struct{ r *rand.Rand }

var genStrings = []string{"a", "hello world", `q"uo\te`, "caf\u00e9", "x]y", "NIL", "{5}", "tab\there", "*%", "1:2"}
var genFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft, "$Junk", "$Forwarded", "custom"}

func (g gen) str() string { return genStrings[g.r.IntN(len(genStrings))] }

func (g gen) seqSet() imap.SeqSet {
	var s imap.SeqSet
	for n := 1 + g.r.IntN(4); n > 0; n-- {
		a := uint32(1 + g.r.IntN(1000))
		switch g.r.IntN(3) {
		case 0:
			s.AddNum(a)
		case 1:
			s.AddRange(a, a+uint32(g.r.IntN(50)))
		default:
			s.AddRange(a, 0)
		}
	}
	return s
}

func (g gen) uidSet() imap.UIDSet {
	var s imap.UIDSet
	for _, r := range g.seqSet() {
		s.AddRange(imap.UID(r.Start), imap.UID(r.Stop))
	}
	return s
}

func (g gen) date() imap.SearchCriteria {
	d := day(1990+g.r.IntN(40), time.Month(1+g.r.IntN(12)), 1+g.r.IntN(28))
	var c imap.SearchCriteria
	switch g.r.IntN(6) {
	case 0:
		c.Since = d
	case 1:
		c.Before = d
	case 2:
		c.SentSince = d
	case 3:
		c.SentBefore = d
	case 4:
		c.Since, c.Before = d, d.AddDate(0, 0, 1)
	default:
		c.SentSince, c.SentBefore = d, d.AddDate(0, 0, 1)
	}
	return c
}

// criteria returns random criteria that go-imap's client writes and
// that read back to the same value (one date key per level, as And
// would merge several).
func (g gen) criteria(depth int) imap.SearchCriteria {
	var c imap.SearchCriteria
	for n := 1 + g.r.IntN(3); n > 0; n-- {
		switch k := g.r.IntN(12); {
		case k == 0:
			c.SeqNum = append(c.SeqNum, g.seqSet())
		case k == 1:
			c.UID = append(c.UID, g.uidSet())
		case k == 2 && c.Since.IsZero() && c.Before.IsZero() && c.SentSince.IsZero() && c.SentBefore.IsZero():
			d := g.date()
			c.And(&d)
		case k == 3:
			keys := []string{"From", "To", "Cc", "Bcc", "Subject", "X-Custom"}
			c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: keys[g.r.IntN(len(keys))], Value: g.str()})
		case k == 4:
			c.Body = append(c.Body, g.str())
		case k == 5:
			c.Text = append(c.Text, g.str())
		case k == 6:
			c.Flag = append(c.Flag, genFlags[g.r.IntN(len(genFlags))])
		case k == 7:
			c.NotFlag = append(c.NotFlag, genFlags[g.r.IntN(len(genFlags))])
		case k == 8 && c.Larger == 0:
			c.Larger = 1 + g.r.Int64N(1<<40)
		case k == 9 && c.Smaller == 0:
			c.Smaller = 1 + g.r.Int64N(1<<40)
		case k == 10 && depth > 0:
			if g.r.IntN(2) == 0 {
				c.Not = append(c.Not, g.criteria(depth-1))
			} else {
				c.Or = append(c.Or, [2]imap.SearchCriteria{g.criteria(depth - 1), g.criteria(depth - 1)})
			}
		case k == 11 && c.ModSeq == nil:
			c.ModSeq = &imap.SearchCriteriaModSeq{ModSeq: 1 + g.r.Uint64N(1<<62)}
			if g.r.IntN(2) == 0 {
				c.ModSeq.MetadataName = "/flags/\\seen"
				c.ModSeq.MetadataType = imap.SearchCriteriaMetadataPrivate
			}
		}
	}
	return c
}

func (g gen) part() []int {
	var p []int
	for n := g.r.IntN(3); n > 0; n-- {
		p = append(p, 1+g.r.IntN(9))
	}
	return p
}

func (g gen) partial() *imap.SectionPartial {
	if g.r.IntN(2) == 0 {
		return nil
	}
	return &imap.SectionPartial{Offset: g.r.Int64N(1000), Size: 1 + g.r.Int64N(1000)}
}

func (g gen) fetchOptions() *imap.FetchOptions {
	b := func() bool { return g.r.IntN(2) == 0 }
	o := &imap.FetchOptions{Envelope: b(), Flags: b(), InternalDate: b(), RFC822Size: b(), UID: b(), ModSeq: b()}
	if b() {
		o.BodyStructure = &imap.FetchItemBodyStructure{Extended: b()}
	}
	for n := g.r.IntN(3); n > 0; n-- {
		s := &imap.FetchItemBodySection{Part: g.part(), Peek: b(), Partial: g.partial()}
		switch g.r.IntN(5) {
		case 1:
			s.Specifier = imap.PartSpecifierHeader
		case 2:
			s.Specifier = imap.PartSpecifierText
		case 3:
			if len(s.Part) > 0 {
				s.Specifier = imap.PartSpecifierMIME
			}
		case 4:
			s.Specifier = imap.PartSpecifierHeader
			if b() {
				s.HeaderFields = []string{"From", "Subject"}
			} else {
				s.HeaderFieldsNot = []string{"Received"}
			}
		}
		o.BodySection = append(o.BodySection, s)
	}
	for n := g.r.IntN(2); n > 0; n-- {
		o.BinarySection = append(o.BinarySection, &imap.FetchItemBinarySection{Part: g.part(), Peek: b(), Partial: g.partial()})
		o.BinarySectionSize = append(o.BinarySectionSize, &imap.FetchItemBinarySectionSize{Part: g.part()})
	}
	if b() {
		o.ChangedSince = 1 + g.r.Uint64N(1<<62)
	}
	if !o.Envelope && !o.Flags && !o.InternalDate && !o.RFC822Size && !o.UID && !o.ModSeq && o.BodyStructure == nil &&
		len(o.BodySection) == 0 && len(o.BinarySection) == 0 {
		o.Flags = true
	}
	return o
}

// TestRoundTrip is the round-trip property over random typed commands:
// go-imap's client encodes each to wire form, our Reader parses it, and
// the value must be the one encoded.
func TestRoundTrip(t *testing.T) {
	c, p := newPeer(t)
	g := gen{rand.New(rand.NewPCG(1, 2))}
	for i := 0; i < 300; i++ {
		switch i % 3 {
		case 0:
			crit := g.criteria(3)
			w := c.UIDSearch(&crit, nil)
			cmd := p.serve("UID SEARCH", ok)
			got := cmd.Args.(*Search).Criteria
			if !reflect.DeepEqual(got, crit) {
				t.Fatalf("search %d\n got %#v\nwant %#v", i, got, crit)
			}
			if _, err := w.Wait(); err != nil {
				t.Fatal(err)
			}
		case 1:
			o := g.fetchOptions()
			set := g.uidSet()
			w := c.Fetch(set, o)
			cmd := p.serve("UID FETCH", ok)
			want := *o
			want.UID = true
			mustEqual(t, "UID FETCH", cmd.Args, &Fetch{UID: true, NumSet: set, Options: want})
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		default:
			sf := &imap.StoreFlags{Op: imap.StoreFlagsOp(g.r.IntN(3)), Silent: g.r.IntN(2) == 0, Flags: []imap.Flag{genFlags[g.r.IntN(len(genFlags))]}}
			so := &imap.StoreOptions{}
			if g.r.IntN(2) == 0 {
				so.UnchangedSince = g.r.Uint64N(1 << 62)
			}
			set := g.seqSet()
			w := c.Store(set, sf, so)
			cmd := p.serve("STORE", ok)
			// go-imap's client leaves UNCHANGEDSINCE out when it is 0.
			mustEqual(t, "STORE", cmd.Args, &Store{NumSet: set, Flags: *sf, Options: *so, Conditional: so.UnchangedSince != 0})
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// genText returns a random string of the characters that decide between
// atom, quoted string and literal: quotes, backslashes, CR, LF, 8-bit.
func (g gen) text(n int) string {
	const alphabet = "ab Z09\"\\()[]{}%*\r\n\t.@-"
	var b []byte
	for i := g.r.IntN(n + 1); i > 0; i-- {
		switch g.r.IntN(10) {
		case 0:
			b = append(b, []string{"\u00e9", "\u4e2d"}[g.r.IntN(2)]...)
		default:
			b = append(b, alphabet[g.r.IntN(len(alphabet))])
		}
	}
	return string(b)
}

// TestEncoderDifferential encodes random FETCH, LIST and STATUS answers
// and checks that go-imap's client decodes what was meant.
func TestEncoderDifferential(t *testing.T) {
	c, p := newPeer(t)
	g := gen{rand.New(rand.NewPCG(3, 4))}
	for i := 0; i < 200; i++ {
		subject := g.text(30)
		name := g.text(10)
		body := g.text(200)
		bin := body + "\x00" + g.text(5)
		flags := []imap.Flag{genFlags[g.r.IntN(len(genFlags))]}
		date := time.Date(2000+g.r.IntN(30), time.Month(1+g.r.IntN(12)), 1+g.r.IntN(28), g.r.IntN(24), g.r.IntN(60), g.r.IntN(60), 0, time.FixedZone("", 60*(g.r.IntN(1440)-720)))
		fc := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, Envelope: true, InternalDate: true,
			BodySection: []*imap.FetchItemBodySection{{}}, BinarySection: []*imap.FetchItemBinarySection{{}}})
		p.serve("FETCH", func(cmd *Command, enc *Encoder) {
			w := enc.Fetch(1)
			w.Flags(flags)
			w.InternalDate(date)
			from := []Address{{Name: name, Mailbox: "u", Host: "h"}}
			w.Envelope(&Envelope{Date: str(date.Format(envelopeDateLayout)), Subject: str(subject), From: from, Sender: from, ReplyTo: from})
			w.Section("BODY[]", int64(len(body)), strings.NewReader(body), false)
			w.Section("BINARY[]", int64(len(bin)), strings.NewReader(bin), true)
			w.End()
			ok(cmd, enc)
		})
		msgs, err := fc.Collect()
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		m := msgs[0]
		if !reflect.DeepEqual(m.Flags, flags) || !m.InternalDate.Equal(date) || m.Envelope.Subject != subject ||
			m.Envelope.From[0].Name != name || !m.Envelope.Date.Equal(date) ||
			string(m.BodySection[0].Bytes) != body || string(m.BinarySection[0].Bytes) != bin {
			t.Fatalf("fetch %d: decoded %+v %+v\nsubject %q name %q", i, m, m.Envelope, subject, name)
		}

		// The session sends names in modified UTF-7 unless UTF8=ACCEPT
		// is on, so they are printable ASCII here; "&" would start a
		// UTF-7 run.
		mbox := strings.Map(func(r rune) rune {
			if r >= 0x80 || r == '&' || r < 0x20 {
				return -1
			}
			return r
		}, g.text(20))
		if mbox == "" {
			mbox = "x"
		}
		lc := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}})
		p.serve("LIST", func(cmd *Command, enc *Encoder) {
			enc.List(&imap.ListData{Delim: '/', Mailbox: mbox, Attrs: []imap.MailboxAttr{imap.MailboxAttrHasChildren}}, false)
			enc.StatusData(&imap.StatusData{Mailbox: mbox, NumMessages: u32(uint32(i))})
			ok(cmd, enc)
		})
		ld, err := lc.Collect()
		if err != nil {
			t.Fatalf("list %d %q: %v", i, mbox, err)
		}
		want := &imap.ListData{Delim: '/', Mailbox: mbox, Attrs: []imap.MailboxAttr{imap.MailboxAttrHasChildren},
			Status: &imap.StatusData{Mailbox: mbox, NumMessages: u32(uint32(i))}}
		if strings.EqualFold(mbox, "INBOX") {
			want.Mailbox, want.Status.Mailbox = "INBOX", "INBOX"
		}
		mustEqual(t, "LIST "+mbox, ld, []*imap.ListData{want})
	}
}
