package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// peer is a server made of our Reader and Encoder, answering go-imap's
// client over a net.Pipe: each command the client sends is handed to the
// test, which writes the answer.
type peer struct {
	t    *testing.T
	cmds chan *Command
	errs chan error
	do   chan func(*Command, *Encoder)
	r    *Reader
}

// testCaps is what the peer advertises, so that the client uses what
// the commands under test need.
const testCaps = "IMAP4rev1 LITERAL+ CONDSTORE QRESYNC ESEARCH SORT THREAD=REFERENCES ID ENABLE UIDPLUS MOVE " +
	"LIST-EXTENDED LIST-STATUS SPECIAL-USE CREATE-SPECIAL-USE NAMESPACE QUOTA IDLE UNSELECT BINARY SEARCHRES SASL-IR AUTH=PLAIN"

func newPeer(t *testing.T) (*imapclient.Client, *peer) {
	t.Helper()
	cconn, sconn := net.Pipe()
	p := &peer{t: t, cmds: make(chan *Command), errs: make(chan error, 1), do: make(chan func(*Command, *Encoder))}
	bw := bufio.NewWriter(sconn)
	enc := NewEncoder(bw)
	p.r = NewReader(bufio.NewReader(sconn), Limits{}, func() error { enc.Continue(""); return enc.Flush() })
	go func() {
		defer sconn.Close()
		enc.Status("*", imap.StatusResponseTypeOK, Code("CAPABILITY "+testCaps), "ready")
		if enc.Flush() != nil {
			return
		}
		for {
			cmd, err := p.r.ReadCommand()
			if err != nil {
				p.errs <- err
				return
			}
			if cmd.Name == "CAPABILITY" {
				enc.raw("* CAPABILITY " + testCaps + "\r\n")
				enc.Status(cmd.Tag, imap.StatusResponseTypeOK, "", "done")
				enc.Flush()
				continue
			}
			p.cmds <- cmd
			f, ok := <-p.do
			if !ok {
				return
			}
			f(cmd, enc)
			if enc.Flush() != nil {
				return
			}
		}
	}()
	c := imapclient.New(cconn, &imapclient.Options{DebugWriter: debugW(t)})
	t.Cleanup(func() { c.Close(); close(p.do) })
	if err := c.WaitGreeting(); err != nil {
		t.Fatal(err)
	}
	return c, p
}

// serve takes the next command, checks its name, and answers it with f.
func (p *peer) serve(name string, f func(*Command, *Encoder)) *Command {
	p.t.Helper()
	select {
	case cmd := <-p.cmds:
		if cmd.Name != name {
			p.t.Fatalf("command %s, want %s", cmd.Name, name)
		}
		p.do <- f
		return cmd
	case err := <-p.errs:
		p.t.Fatalf("server: %v", err)
	case <-time.After(10 * time.Second):
		p.t.Fatalf("no %s command", name)
	}
	return nil
}

func ok(cmd *Command, enc *Encoder) { enc.Status(cmd.Tag, imap.StatusResponseTypeOK, "", "done") }

func u32(n uint32) *uint32 { return &n }

func mustEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s\n got %#v\nwant %#v", what, got, want)
	}
}

// TestClientDifferential runs go-imap's client against our reader and
// encoder: each command it sends must parse to what it was asked, and
// each answer we write must decode to what we meant.
func TestClientDifferential(t *testing.T) {
	c, p := newPeer(t)

	// LOGIN with a password that needs quoting and one that needs a literal.
	for _, pass := range []string{`p "a\ss`, "p\u00e4ss"} {
		w := c.Login("joe", pass)
		cmd := p.serve("LOGIN", ok)
		mustEqual(t, "LOGIN", cmd.Args, &Login{"joe", pass})
		if err := w.Wait(); err != nil {
			t.Fatal(err)
		}
	}

	// ENABLE, ID.
	en := c.Enable(imap.CapUTF8Accept)
	cmd := p.serve("ENABLE", func(cmd *Command, enc *Encoder) {
		enc.Enabled(cmd.Args.(*Enable).Caps)
		ok(cmd, enc)
	})
	mustEqual(t, "ENABLE", cmd.Args, &Enable{Caps: []imap.Cap{"UTF8=ACCEPT"}})
	ed, err := en.Wait()
	if err != nil || !ed.Caps.Has(imap.CapUTF8Accept) {
		t.Fatalf("ENABLED %v %v", ed, err)
	}
	idc := c.ID(&imap.IDData{Name: "client", Version: "1.0"})
	cmd = p.serve("ID", func(cmd *Command, enc *Encoder) {
		enc.ID([]IDField{{"name", str("vmaild")}, {"vendor", str("v \"q\" \\")}})
		ok(cmd, enc)
	})
	if got := cmd.Args.(*ID); len(got.Fields) != 2 || got.Fields[0].Key != "name" || *got.Fields[0].Value != "client" || *got.Fields[1].Value != "1.0" {
		t.Fatalf("ID %+v", got)
	}
	idd, err := idc.Wait()
	if err != nil || idd.Name != "vmaild" || idd.Vendor != `v "q" \` {
		t.Fatalf("ID answer %+v %v", idd, err)
	}

	// SELECT (CONDSTORE).
	sel := c.Select("INBOX", &imap.SelectOptions{CondStore: true})
	cmd = p.serve("SELECT", func(cmd *Command, enc *Encoder) {
		enc.Flags([]imap.Flag{imap.FlagSeen, imap.FlagDeleted, "$Junk"})
		enc.Exists(172)
		enc.Recent(1)
		enc.Status("*", imap.StatusResponseTypeOK, CodeUIDValidity(3857529045), "UIDs valid")
		enc.Status("*", imap.StatusResponseTypeOK, CodeUIDNext(4392), "Predicted next UID")
		enc.Status("*", imap.StatusResponseTypeOK, CodeHighestModSeq(715194045007), "Highest")
		enc.Status("*", imap.StatusResponseTypeOK, CodePermanentFlags([]imap.Flag{imap.FlagSeen, imap.FlagWildcard}), "Limited")
		enc.Status(cmd.Tag, imap.StatusResponseTypeOK, "READ-WRITE", "SELECT completed")
	})
	mustEqual(t, "SELECT", cmd.Args, &Select{Mailbox: "INBOX", Options: imap.SelectOptions{CondStore: true}})
	sd, err := sel.Wait()
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "SELECT answer", sd, &imap.SelectData{Flags: []imap.Flag{imap.FlagSeen, imap.FlagDeleted, "$Junk"},
		// go-imap's client reads RECENT but does not keep it.
		PermanentFlags: []imap.Flag{imap.FlagSeen, imap.FlagWildcard}, NumMessages: 172, UIDNext: 4392,
		UIDValidity: 3857529045, HighestModSeq: 715194045007})

	// LIST-EXTENDED with LIST-STATUS; a name needing a literal.
	lo := &imap.ListOptions{SelectSubscribed: true, ReturnChildren: true, ReturnStatus: &imap.StatusOptions{NumMessages: true, UIDNext: true}}
	lc := c.List("", "%", lo)
	cmd = p.serve("LIST", func(cmd *Command, enc *Encoder) {
		enc.List(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrHasNoChildren, imap.MailboxAttrSubscribed}, Delim: '/', Mailbox: "INBOX"}, false)
		enc.StatusData(&imap.StatusData{Mailbox: "INBOX", NumMessages: u32(17), UIDNext: 18})
		enc.List(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNonExistent}, Delim: '/', Mailbox: "a\"b\\c", ChildInfo: &imap.ListDataChildInfo{Subscribed: true}}, false)
		ok(cmd, enc)
	})
	mustEqual(t, "LIST", cmd.Args, &List{Extended: true, Patterns: []string{"%"}, Options: *lo})
	ld, err := lc.Collect()
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "LIST answer", ld, []*imap.ListData{
		{Attrs: []imap.MailboxAttr{imap.MailboxAttrHasNoChildren, imap.MailboxAttrSubscribed}, Delim: '/', Mailbox: "INBOX",
			Status: &imap.StatusData{Mailbox: "INBOX", NumMessages: u32(17), UIDNext: 18}},
		{Attrs: []imap.MailboxAttr{imap.MailboxAttrNonExistent}, Delim: '/', Mailbox: "a\"b\\c", ChildInfo: &imap.ListDataChildInfo{Subscribed: true}},
	})

	// STATUS.
	so := &imap.StatusOptions{NumMessages: true, UIDValidity: true, NumUnseen: true, HighestModSeq: true, Size: true, NumDeleted: true}
	stc := c.Status("Sent Items", so)
	cmd = p.serve("STATUS", func(cmd *Command, enc *Encoder) {
		enc.StatusData(&imap.StatusData{Mailbox: "Sent Items", NumMessages: u32(3), UIDValidity: 9, NumUnseen: u32(0), HighestModSeq: 1 << 40,
			Size: ptr64(12345), NumDeleted: u32(1)})
		ok(cmd, enc)
	})
	mustEqual(t, "STATUS", cmd.Args, &Status{Mailbox: "Sent Items", Options: *so})
	std, err := stc.Wait()
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "STATUS answer", std, &imap.StatusData{Mailbox: "Sent Items", NumMessages: u32(3), UIDValidity: 9, NumUnseen: u32(0),
		HighestModSeq: 1 << 40, Size: ptr64(12345), NumDeleted: u32(1)})

	// UID FETCH with every kind of item, and CHANGEDSINCE.
	fo := &imap.FetchOptions{Flags: true, Envelope: true, InternalDate: true, RFC822Size: true, UID: true, ModSeq: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection: []*imap.FetchItemBodySection{{}, {Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "Subject"}, Peek: true},
			{Part: []int{1}, Partial: &imap.SectionPartial{Offset: 2, Size: 3}}},
		BinarySection:     []*imap.FetchItemBinarySection{{Part: []int{1}, Peek: true}},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{1}}},
		ChangedSince:      42}
	date := time.Date(2024, 3, 5, 10, 11, 12, 0, time.FixedZone("", 3600))
	body := "From: a@b\r\nSubject: hi\r\n\r\nhello\r\n"
	bs := &imap.BodyStructureMultiPart{Subtype: "mixed", Children: []imap.BodyStructure{
		&imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Params: map[string]string{"charset": "utf-8"}, Encoding: "quoted-printable", Size: 7,
			Text: &imap.BodyStructureText{NumLines: 1}, Extended: &imap.BodyStructureSinglePartExt{Language: []string{"en"}}},
		&imap.BodyStructureSinglePart{Type: "application", Subtype: "pdf", Params: map[string]string{"name": "x \"y\".pdf"}, ID: "<id@x>", Encoding: "base64", Size: 100,
			Extended: &imap.BodyStructureSinglePartExt{Disposition: &imap.BodyStructureDisposition{Value: "attachment", Params: map[string]string{"filename": "x.pdf"}}, Location: "http://x"}},
	}, Extended: &imap.BodyStructureMultiPartExt{Params: map[string]string{"boundary": "b"}}}
	fc := c.Fetch(imap.UIDSetNum(1, 3, 4, 5), fo)
	cmd = p.serve("UID FETCH", func(cmd *Command, enc *Encoder) {
		w := enc.Fetch(1)
		w.UID(5)
		w.Flags([]imap.Flag{imap.FlagSeen, "$Forwarded"})
		w.ModSeq(12121231000)
		w.InternalDate(date)
		w.RFC822Size(int64(len(body)))
		w.Envelope(&Envelope{Date: str("Tue, 5 Mar 2024 10:11:12 +0100"), Subject: str("hi \"there\""),
			From: []Address{{Name: "Al \u00e9", Mailbox: "a", Host: "b"}}, Sender: []Address{{Mailbox: "a", Host: "b"}},
			ReplyTo: []Address{{Mailbox: "a", Host: "b"}}, To: []Address{{Mailbox: "group"}, {Adl: "@route", Mailbox: "c", Host: "d"}, {}},
			InReplyTo: str("<p@q>"), MessageID: str("<m@n>")})
		w.BodyStructure(bs, true)
		w.Section(SectionName(&imap.FetchItemBodySection{}), int64(len(body)), strings.NewReader(body), false)
		w.Section(SectionName(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "Subject"}}), 25, strings.NewReader(body), false)
		w.Section(SectionName(&imap.FetchItemBodySection{Part: []int{1}, Partial: &imap.SectionPartial{Offset: 2, Size: 3}}), 3, strings.NewReader("llo"), false)
		w.Section("BINARY[1]", 3, strings.NewReader("a\x00b"), true)
		w.BinarySize([]int{1}, 3)
		w.End()
		ok(cmd, enc)
	})
	wantFO := *fo
	mustEqual(t, "UID FETCH", cmd.Args, &Fetch{UID: true, NumSet: imap.UIDSetNum(1, 3, 4, 5), Options: wantFO})
	msgs, err := fc.Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if m.UID != 5 || m.ModSeq != 12121231000 || !m.InternalDate.Equal(date) || m.RFC822Size != int64(len(body)) ||
		!reflect.DeepEqual(m.Flags, []imap.Flag{imap.FlagSeen, "$Forwarded"}) {
		t.Fatalf("FETCH answer %+v", m)
	}
	env := m.Envelope
	if env.Subject != `hi "there"` || env.From[0].Name != "Al \u00e9" || env.MessageID != "m@n" || !reflect.DeepEqual(env.InReplyTo, []string{"p@q"}) ||
		len(env.To) != 3 || !env.To[0].IsGroupStart() || env.To[1].Addr() != "c@d" || !env.Date.Equal(date) {
		t.Fatalf("ENVELOPE %+v", env)
	}
	mustEqual(t, "BODYSTRUCTURE", m.BodyStructure, imap.BodyStructure(bs))
	if len(m.BodySection) != 3 || string(m.BodySection[0].Bytes) != body || string(m.BodySection[1].Bytes) != body[:25] || string(m.BodySection[2].Bytes) != "llo" {
		t.Fatalf("BODY sections %+v", m.BodySection)
	}
	if len(m.BinarySection) != 1 || string(m.BinarySection[0].Bytes) != "a\x00b" || len(m.BinarySectionSize) != 1 || m.BinarySectionSize[0].Size != 3 {
		t.Fatalf("BINARY %+v %+v", m.BinarySection, m.BinarySectionSize)
	}

	// STORE with UNCHANGEDSINCE.
	stoc := c.Store(imap.SeqSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Label1"}}, &imap.StoreOptions{UnchangedSince: 99})
	cmd = p.serve("STORE", func(cmd *Command, enc *Encoder) {
		w := enc.Fetch(1)
		w.Flags([]imap.Flag{imap.FlagFlagged, "$Label1"})
		w.ModSeq(100)
		w.End()
		enc.Status(cmd.Tag, imap.StatusResponseTypeOK, CodeModified(imap.SeqSetNum(2)), "Conditional STORE failed")
	})
	mustEqual(t, "STORE", cmd.Args, &Store{NumSet: imap.SeqSetNum(1, 2), Flags: imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Label1"}},
		Options: imap.StoreOptions{UnchangedSince: 99}, Conditional: true})
	if _, err := stoc.Collect(); err != nil {
		t.Fatal(err)
	}

	// SEARCH: every key go-imap's client can write.
	crit := &imap.SearchCriteria{
		SeqNum: []imap.SeqSet{imap.SeqSetNum(1, 2, 3, 9)}, UID: []imap.UIDSet{imap.UIDSetNum(7)},
		Since: day(2020, 1, 2), Before: day(2021, 5, 6), SentSince: day(2019, 3, 4), SentBefore: day(2019, 3, 5),
		Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "user-from@domain.org"}, {Key: "X-Spam", Value: "yes no"}},
		Body:   []string{"body"}, Text: []string{"t\u00e9xt"},
		Flag: []imap.Flag{imap.FlagSeen, "$Junk"}, NotFlag: []imap.Flag{imap.FlagDeleted, "foo"},
		Larger: 10, Smaller: 1000,
		Not:    []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagDraft}}},
		Or:     [][2]imap.SearchCriteria{{{Body: []string{"a"}}, {Text: []string{"b"}}}},
		ModSeq: &imap.SearchCriteriaModSeq{ModSeq: 5},
	}
	sc := c.Search(crit, nil)
	cmd = p.serve("SEARCH", func(cmd *Command, enc *Encoder) {
		enc.Search([]uint32{2, 84, 882}, 917162500)
		ok(cmd, enc)
	})
	if got := cmd.Args.(*Search); got.Return != nil || !reflect.DeepEqual(got.Criteria, *crit) {
		t.Fatalf("SEARCH\n got %#v\nwant %#v", got, crit)
	}
	sdata, err := sc.Wait()
	if err != nil || !reflect.DeepEqual(sdata.AllSeqNums(), []uint32{2, 84, 882}) || sdata.ModSeq != 917162500 {
		t.Fatalf("SEARCH answer %+v %v", sdata, err)
	}

	// UID SEARCH RETURN (ESEARCH).
	usc := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true, ReturnAll: true})
	cmd = p.serve("UID SEARCH", func(cmd *Command, enc *Encoder) {
		enc.ESearch(cmd.Tag, true, &imap.SearchData{Min: 3, Max: 9, Count: 4, All: imap.UIDSetNum(3, 4, 5, 9)}, true)
		ok(cmd, enc)
	})
	mustEqual(t, "UID SEARCH", cmd.Args, &Search{UID: true, Return: &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true, ReturnAll: true},
		Criteria: imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}})
	usd, err := usc.Wait()
	if err != nil || usd.Min != 3 || usd.Max != 9 || usd.Count != 4 || usd.All.String() != "3:5,9" {
		t.Fatalf("ESEARCH answer %+v %v", usd, err)
	}

	// SORT and THREAD.
	soc := c.Sort(&imapclient.SortOptions{SearchCriteria: &imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}},
		SortCriteria: []imapclient.SortCriterion{{Key: imapclient.SortKeyDate, Reverse: true}, {Key: imapclient.SortKeySubject}}})
	cmd = p.serve("SORT", func(cmd *Command, enc *Encoder) {
		enc.Sort([]uint32{5, 3, 4}, 0)
		ok(cmd, enc)
	})
	mustEqual(t, "SORT", cmd.Args, &Sort{Keys: []SortCriterion{{SortDate, true}, {SortSubject, false}}, Charset: "UTF-8", Criteria: imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}})
	sorted, err := soc.Wait()
	if err != nil || !reflect.DeepEqual(sorted, []uint32{5, 3, 4}) {
		t.Fatalf("SORT answer %v %v", sorted, err)
	}
	thc := c.Thread(&imapclient.ThreadOptions{Algorithm: imap.ThreadReferences, SearchCriteria: &imap.SearchCriteria{}})
	cmd = p.serve("THREAD", func(cmd *Command, enc *Encoder) {
		enc.Thread([]ThreadNode{{Chain: []uint32{2}}, {Chain: []uint32{3, 6}, SubThreads: []ThreadNode{{Chain: []uint32{4, 23}}, {Chain: []uint32{44, 7, 96}}}}})
		ok(cmd, enc)
	})
	mustEqual(t, "THREAD", cmd.Args, &Thread{Algorithm: imap.ThreadReferences, Charset: "UTF-8"})
	threads, err := thc.Wait()
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "THREAD answer", threads, []imapclient.ThreadData{{Chain: []uint32{2}},
		{Chain: []uint32{3, 6}, SubThreads: []imapclient.ThreadData{{Chain: []uint32{4, 23}}, {Chain: []uint32{44, 7, 96}}}}})

	// APPEND with flags and date.
	msg := "Subject: x\r\n\r\nbody\r\n"
	ac := c.Append("Drafts", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}, Time: date})
	if _, err := io.WriteString(ac, msg); err != nil {
		t.Fatal(err)
	}
	if err := ac.Close(); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	cmd = p.serve("APPEND", func(cmd *Command, enc *Encoder) {
		a := cmd.Args.(*Append)
		m, err := a.Next()
		if err != nil || m == nil {
			enc.Status(cmd.Tag, imap.StatusResponseTypeBad, "", "no message")
			return
		}
		if !m.Options.Time.Equal(date) || !reflect.DeepEqual(m.Options.Flags, []imap.Flag{imap.FlagDraft}) {
			enc.Status(cmd.Tag, imap.StatusResponseTypeBad, "", "options")
			return
		}
		io.Copy(&got, m.Body)
		if m, err := a.Next(); m != nil || err != nil {
			enc.Status(cmd.Tag, imap.StatusResponseTypeBad, "", "more")
			return
		}
		enc.Status(cmd.Tag, imap.StatusResponseTypeOK, CodeAppendUID(38505, 3955), "APPEND completed")
	})
	ad, err := ac.Wait()
	if err != nil || ad.UID != 3955 || ad.UIDValidity != 38505 || got.String() != msg {
		t.Fatalf("APPEND %+v %v %q", ad, err, got.String())
	}

	// COPY, MOVE, UID EXPUNGE.
	cc := c.Copy(imap.UIDSetNum(4, 5), "Trash")
	cmd = p.serve("UID COPY", func(cmd *Command, enc *Encoder) {
		enc.Status(cmd.Tag, imap.StatusResponseTypeOK, CodeCopyUID(38505, imap.UIDSetNum(4, 5), imap.UIDSetNum(10, 11)), "done")
	})
	mustEqual(t, "UID COPY", cmd.Args, &Copy{UID: true, NumSet: imap.UIDSetNum(4, 5), Mailbox: "Trash"})
	cd, err := cc.Wait()
	if err != nil || cd.DestUIDs.String() != "10:11" {
		t.Fatalf("COPY %+v %v", cd, err)
	}
	mc := c.Move(imap.SeqSetNum(2), "Archive")
	cmd = p.serve("MOVE", func(cmd *Command, enc *Encoder) {
		enc.Expunge(2)
		ok(cmd, enc)
	})
	mustEqual(t, "MOVE", cmd.Args, &Copy{Move: true, NumSet: imap.SeqSetNum(2), Mailbox: "Archive"})
	if _, err := mc.Wait(); err != nil {
		t.Fatal(err)
	}
	ec := c.UIDExpunge(imap.UIDSetNum(3, 4))
	cmd = p.serve("UID EXPUNGE", func(cmd *Command, enc *Encoder) {
		enc.Expunge(3)
		enc.Expunge(3)
		ok(cmd, enc)
	})
	mustEqual(t, "UID EXPUNGE", cmd.Args, &UIDExpunge{UIDs: imap.UIDSetNum(3, 4)})
	if seqs, err := ec.Collect(); err != nil || !reflect.DeepEqual(seqs, []uint32{3, 3}) {
		t.Fatalf("EXPUNGE %v %v", seqs, err)
	}

	// CREATE (USE), NAMESPACE, quotas.
	crc := c.Create("Spam", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrJunk}})
	cmd = p.serve("CREATE", ok)
	mustEqual(t, "CREATE", cmd.Args, &Create{Mailbox: "Spam", Options: imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrJunk}}})
	if err := crc.Wait(); err != nil {
		t.Fatal(err)
	}
	nc := c.Namespace()
	p.serve("NAMESPACE", func(cmd *Command, enc *Encoder) {
		enc.Namespace(&imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: '/'}}, Shared: []imap.NamespaceDescriptor{{Prefix: "Shared/", Delim: '/'}}})
		ok(cmd, enc)
	})
	nd, err := nc.Wait()
	if err != nil || len(nd.Personal) != 1 || nd.Personal[0].Delim != '/' || nd.Other != nil || nd.Shared[0].Prefix != "Shared/" {
		t.Fatalf("NAMESPACE %+v %v", nd, err)
	}
	qc := c.GetQuotaRoot("INBOX")
	cmd = p.serve("GETQUOTAROOT", func(cmd *Command, enc *Encoder) {
		enc.QuotaRoot("INBOX", []string{""})
		enc.Quota("", []QuotaResource{{imap.QuotaResourceStorage, 10, 512}, {imap.QuotaResourceMessage, 1, 100}})
		ok(cmd, enc)
	})
	mustEqual(t, "GETQUOTAROOT", cmd.Args, &MailboxArg{"INBOX"})
	qd, err := qc.Wait()
	if err != nil || len(qd) != 1 || qd[0].Resources[imap.QuotaResourceStorage].Limit != 512 || qd[0].Resources[imap.QuotaResourceMessage].Usage != 1 {
		t.Fatalf("QUOTAROOT %+v %v", qd, err)
	}

	// IDLE ... DONE.
	type idleResult struct {
		cmd *imapclient.IdleCommand
		err error
	}
	idleCh := make(chan idleResult, 1)
	// Idle returns once the continuation request is read, so it runs
	// beside the server's answer.
	go func() {
		cmd, err := c.Idle()
		idleCh <- idleResult{cmd, err}
	}()
	p.serve("IDLE", func(cmd *Command, enc *Encoder) {
		enc.Continue("idling")
		enc.Flush()
		enc.Exists(173)
		enc.Flush()
		line, err := p.r.ReadLine()
		if err != nil || !strings.EqualFold(line, "DONE") {
			enc.Status(cmd.Tag, imap.StatusResponseTypeBad, "", "expected DONE")
			return
		}
		ok(cmd, enc)
	})
	ir := <-idleCh
	if ir.err != nil {
		t.Fatal(ir.err)
	}
	if err := ir.cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ir.cmd.Wait(); err != nil {
		t.Fatal(err)
	}

	// UNSELECT, LOGOUT.
	uc := c.Unselect()
	p.serve("UNSELECT", ok)
	if err := uc.Wait(); err != nil {
		t.Fatal(err)
	}
	lc2 := c.Logout()
	p.serve("LOGOUT", func(cmd *Command, enc *Encoder) {
		enc.Status("*", imap.StatusResponseTypeBye, "", "bye")
		ok(cmd, enc)
	})
	if err := lc2.Wait(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
}

func ptr64(n int64) *int64 { return &n }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Logf("%q", b); return len(b), nil }

func debugW(t *testing.T) io.Writer {
	if testing.Verbose() {
		return testWriter{t}
	}
	return nil
}

// TestClientCommands checks the rest of the commands go-imap's client
// sends, each answered with a bare OK.
func TestClientCommands(t *testing.T) {
	c, p := newPeer(t)
	waitErr := func(w interface{ Wait() error }) func() error { return w.Wait }
	for _, tc := range []struct {
		send func() func() error
		name string
		want any
	}{
		{func() func() error { return waitErr(c.Noop()) }, "NOOP", nil},
		{func() func() error { return waitErr(c.Delete("Old Stuff")) }, "DELETE", &MailboxArg{"Old Stuff"}},
		{func() func() error { return waitErr(c.Rename("a", "b/c", nil)) }, "RENAME", &Rename{"a", "b/c"}},
		{func() func() error { return waitErr(c.Subscribe("inbox")) }, "SUBSCRIBE", &MailboxArg{"INBOX"}},
		{func() func() error { return waitErr(c.Unsubscribe("x")) }, "UNSUBSCRIBE", &MailboxArg{"x"}},
		{func() func() error {
			return waitErr(c.SetQuota("", map[imap.QuotaResourceType]int64{imap.QuotaResourceStorage: 512}))
		}, "SETQUOTA",
			&SetQuota{Limits: []QuotaLimit{{imap.QuotaResourceStorage, 512}}}},
		{func() func() error { w := c.GetQuota("root"); return func() error { _, err := w.Wait(); return err } }, "GETQUOTA", &QuotaRoot{"root"}},
		{func() func() error {
			w := c.Select("Sent", &imap.SelectOptions{ReadOnly: true})
			return func() error { _, err := w.Wait(); return err }
		}, "EXAMINE", &Select{Mailbox: "Sent", ReadOnly: true, Options: imap.SelectOptions{ReadOnly: true}}},
		{func() func() error { w := c.Expunge(); return w.Close }, "EXPUNGE", nil},
		{func() func() error {
			w := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{Flags: true, RFC822Size: true})
			return w.Close
		}, "FETCH", &Fetch{NumSet: imap.SeqSetNum(1, 2), Options: imap.FetchOptions{Flags: true, RFC822Size: true}}},
		{func() func() error {
			w := c.UIDSort(&imapclient.SortOptions{SearchCriteria: &imap.SearchCriteria{}, SortCriteria: []imapclient.SortCriterion{{Key: imapclient.SortKeyArrival}}})
			return func() error { _, err := w.Wait(); return err }
		}, "UID SORT", &Sort{UID: true, Keys: []SortCriterion{{SortArrival, false}}, Charset: "UTF-8"}},
		{func() func() error {
			w := c.UIDThread(&imapclient.ThreadOptions{Algorithm: imap.ThreadOrderedSubject, SearchCriteria: &imap.SearchCriteria{}})
			return func() error { _, err := w.Wait(); return err }
		}, "UID THREAD", &Thread{UID: true, Algorithm: imap.ThreadOrderedSubject, Charset: "UTF-8"}},
		{func() func() error { return waitErr(c.UnselectAndExpunge()) }, "CLOSE", nil},
	} {
		wait := tc.send()
		cmd := p.serve(tc.name, ok)
		mustEqual(t, tc.name, cmd.Args, tc.want)
		if err := wait(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}

	// AUTHENTICATE PLAIN with SASL-IR: Authenticate returns only at the
	// end, so it runs beside the server's answer.
	done := make(chan error, 1)
	go func() { done <- c.Authenticate(sasl.NewPlainClient("", "joe", "secret")) }()
	cmd := p.serve("AUTHENTICATE", ok)
	mustEqual(t, "AUTHENTICATE", cmd.Args, &Authenticate{Mechanism: "PLAIN", InitialResponse: []byte("\x00joe\x00secret"), HasInitial: true})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
