package wire

import (
	"math/rand/v2"
	"reflect"
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
			mustEqual(t, "STORE", cmd.Args, &Store{NumSet: set, Flags: *sf, Options: *so})
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
