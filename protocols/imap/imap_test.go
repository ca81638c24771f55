package imap

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

const msg1 = "From: Bob <bob@example.net>\r\n" +
	"To: Alice <alice@example.org>\r\n" +
	"Subject: Hello there\r\n" +
	"Date: Mon, 02 Jan 2006 15:04:05 +0000\r\n" +
	"Message-ID: <1@example.net>\r\n" +
	"\r\n" +
	"First line\r\n" +
	".a line starting with a dot\r\n" +
	"..two dots\r\n" +
	".\r\n" +
	"Grüße aus Köln – 8-bit UTF-8 body ✓\r\n"

func imapCode(err error) goimap.ResponseCode {
	var ie *goimap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

func TestCapabilities(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, nil)
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has(goimap.CapIMAP4rev1) || !caps.Has(goimap.CapIMAP4rev2) || caps.Has(goimap.CapQuota) {
		t.Errorf("before login: %v", caps)
	}
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatal(err)
	}
	caps, err = c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []goimap.Cap{goimap.CapQuota, "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", goimap.CapIdle,
		goimap.CapUIDPlus, goimap.CapMove, goimap.CapNamespace, goimap.CapStatusSize, goimap.CapSpecialUse,
		goimap.CapListExtended, goimap.CapLiteralPlus, "APPENDLIMIT=67108864"} {
		if !caps.Has(want) {
			t.Errorf("after login: no %s in %v", want, caps)
		}
	}
}

func TestLoginReplies(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name     string
		user     string
		pass     string
		down     bool
		wantCode goimap.ResponseCode
	}{
		{"ok", testUser, testPass, false, ""},
		{"ok mixed case", "Alice@Example.ORG", testPass, false, ""},
		{"bad password", testUser, "wrong", false, goimap.ResponseCodeAuthenticationFailed},
		{"unknown user", "nobody@example.org", "x", false, goimap.ResponseCodeAuthenticationFailed},
		{"directory down", testUser, testPass, true, goimap.ResponseCodeUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.dir.setDown(tc.down)
			defer e.dir.setDown(false)
			c := e.dial(t, nil)
			err := c.Login(tc.user, tc.pass).Wait()
			if got := imapCode(err); got != tc.wantCode || (tc.wantCode == "") != (err == nil) {
				t.Fatalf("login: err %v, code %q, want %q", err, got, tc.wantCode)
			}
		})
	}
}

func TestMailboxCommands(t *testing.T) {
	e := newEnv(t)
	c := e.login(t, nil)

	list := func(opts *goimap.ListOptions, patterns ...string) map[string][]goimap.MailboxAttr {
		t.Helper()
		l, err := c.List("", patterns[0], opts).Collect()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]goimap.MailboxAttr{}
		for _, d := range l {
			out[d.Mailbox] = d.Attrs
		}
		return out
	}
	all := list(nil, "*")
	for name, want := range map[string]goimap.MailboxAttr{
		"INBOX": goimap.MailboxAttrHasNoChildren, "Sent": goimap.MailboxAttrSent, "Drafts": goimap.MailboxAttrDrafts,
		"Trash": goimap.MailboxAttrTrash, "Junk": goimap.MailboxAttrJunk,
	} {
		if !slices.Contains(all[name], want) {
			t.Errorf("LIST %s: attrs %v, want %s", name, all[name], want)
		}
	}

	for _, step := range []struct {
		name string
		err  error
	}{
		{"create", c.Create("Archive/2024", nil).Wait()},
		{"subscribe", c.Subscribe("Archive/2024").Wait()},
		{"create again", nil},
	} {
		if step.err != nil {
			t.Fatalf("%s: %v", step.name, step.err)
		}
	}
	if err := c.Create("Archive/2024", nil).Wait(); imapCode(err) != goimap.ResponseCodeAlreadyExists {
		t.Errorf("create twice: %v", err)
	}
	all = list(nil, "*")
	if !slices.Contains(all["Archive"], goimap.MailboxAttrHasChildren) || !slices.Contains(all["Archive/2024"], goimap.MailboxAttrHasNoChildren) {
		t.Errorf("children attrs: %v", all)
	}
	sub := list(&goimap.ListOptions{SelectSubscribed: true}, "*")
	if !slices.Contains(sub["Archive/2024"], goimap.MailboxAttrSubscribed) {
		t.Errorf("LIST (SUBSCRIBED): %v", sub)
	}
	if _, ok := sub["Archive"]; ok {
		t.Errorf("unsubscribed Archive listed: %v", sub)
	}
	special := list(&goimap.ListOptions{SelectSpecialUse: true}, "*")
	if len(special) != 4 {
		t.Errorf("LIST (SPECIAL-USE): %v", special)
	}
	if err := c.Rename("Archive/2024", "Archive/Old", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sub = list(&goimap.ListOptions{SelectSubscribed: true}, "*")
	if _, ok := sub["Archive/Old"]; !ok {
		t.Errorf("subscription did not follow RENAME: %v", sub)
	}
	if err := c.Unsubscribe("Archive/Old").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("Archive/Old").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("Nope").Wait(); imapCode(err) != goimap.ResponseCodeNonExistent {
		t.Errorf("delete missing: %v", err)
	}
	if err := c.Delete("INBOX").Wait(); err == nil {
		t.Error("deleted INBOX")
	}

	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '/' {
		t.Errorf("namespace: %+v %v", ns, err)
	}

	e.deliver(t, "", msg1)
	e.deliver(t, "", msg1)
	st, err := c.Status("INBOX", &goimap.StatusOptions{NumMessages: true, NumUnseen: true, UIDNext: true, UIDValidity: true, Size: true, NumDeleted: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 2 || *st.NumUnseen != 2 || *st.Size != int64(2*len(msg1)) || st.UIDNext != 3 || st.UIDValidity == 0 || *st.NumDeleted != 0 {
		t.Errorf("status: %+v size %d", st, *st.Size)
	}
}

func TestAppendFetchStoreExpunge(t *testing.T) {
	e := newEnv(t)
	c := e.login(t, nil)
	date := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	cmd := c.Append("INBOX", int64(len(msg1)), &goimap.AppendOptions{Flags: []goimap.Flag{goimap.FlagFlagged}, Time: date})
	io.WriteString(cmd, msg1)
	cmd.Close()
	ad, err := cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if ad.UID != 1 || ad.UIDValidity == 0 {
		t.Errorf("APPENDUID %+v", ad)
	}
	sd, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sd.NumMessages != 1 || sd.UIDValidity != ad.UIDValidity {
		t.Errorf("select %+v", sd)
	}

	msgs, err := c.Fetch(goimap.SeqSetNum(1), &goimap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
		BodyStructure: &goimap.FetchItemBodyStructure{Extended: true},
		BodySection: []*goimap.FetchItemBodySection{
			{Peek: true},
			{Peek: true, Specifier: goimap.PartSpecifierHeader},
			{Peek: true, Specifier: goimap.PartSpecifierText},
			{Peek: true, Partial: &goimap.SectionPartial{Offset: 6, Size: 3}},
			{Peek: true, Specifier: goimap.PartSpecifierHeader, HeaderFields: []string{"Subject"}},
		},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	hdrEnd := strings.Index(msg1, "\r\n\r\n") + 4
	if m.UID != 1 || !slices.Contains(m.Flags, goimap.FlagFlagged) || slices.Contains(m.Flags, goimap.FlagSeen) ||
		!m.InternalDate.Equal(date) || m.RFC822Size != int64(len(msg1)) {
		t.Errorf("fetch: uid %d flags %v date %v size %d", m.UID, m.Flags, m.InternalDate, m.RFC822Size)
	}
	if m.Envelope == nil || m.Envelope.Subject != "Hello there" || m.Envelope.From[0].Host != "example.net" {
		t.Errorf("envelope %+v", m.Envelope)
	}
	if bs, ok := m.BodyStructure.(*goimap.BodyStructureSinglePart); !ok || bs.Type != "text" {
		t.Errorf("bodystructure %#v", m.BodyStructure)
	}
	want := []string{msg1, msg1[:hdrEnd], msg1[hdrEnd:], "Bob", "Subject: Hello there\r\n\r\n"}
	for i, w := range want {
		if got := string(m.BodySection[i].Bytes); got != w {
			t.Errorf("section %d: %q, want %q", i, got, w)
		}
	}

	// BODY[] without PEEK sets \Seen and reports it.
	msgs, err = c.Fetch(goimap.SeqSetNum(1), &goimap.FetchOptions{BodySection: []*goimap.FetchItemBodySection{{}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(msgs[0].Flags, goimap.FlagSeen) || !bytes.Equal(msgs[0].BodySection[0].Bytes, []byte(msg1)) {
		t.Errorf("fetch BODY[]: flags %v", msgs[0].Flags)
	}

	for _, tc := range []struct {
		op    goimap.StoreFlagsOp
		flags []goimap.Flag
		want  []goimap.Flag
	}{
		{goimap.StoreFlagsAdd, []goimap.Flag{goimap.FlagDeleted, "$Label1"}, []goimap.Flag{goimap.FlagSeen, goimap.FlagFlagged, goimap.FlagDeleted, "$Label1"}},
		{goimap.StoreFlagsDel, []goimap.Flag{goimap.FlagFlagged}, []goimap.Flag{goimap.FlagSeen, goimap.FlagDeleted, "$Label1"}},
		{goimap.StoreFlagsSet, []goimap.Flag{goimap.FlagDeleted, goimap.FlagAnswered}, []goimap.Flag{goimap.FlagAnswered, goimap.FlagDeleted}},
	} {
		got, err := c.Store(goimap.UIDSetNum(1), &goimap.StoreFlags{Op: tc.op, Flags: tc.flags}, nil).Collect()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !sameFlags(got[0].Flags, tc.want) {
			t.Errorf("store %v %v: %v, want %v", tc.op, tc.flags, got, tc.want)
		}
	}
	if got, err := c.Store(goimap.SeqSetNum(1), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagDraft}}, nil).Collect(); err != nil || len(got) != 0 {
		t.Errorf("store silent: %v %v", got, err)
	}
	if _, err := c.Fetch(goimap.SeqSetNum(5), &goimap.FetchOptions{Flags: true}).Collect(); err == nil {
		t.Error("fetch of sequence number 5 in a 1-message mailbox succeeded")
	}

	// Second message, then UID EXPUNGE of the first only.
	e.deliver(t, "", "Subject: two\r\n\r\nbody two\r\n")
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if n := c.Mailbox().NumMessages; n != 2 {
		t.Fatalf("after delivery and NOOP: %d messages", n)
	}
	if _, err := c.Store(goimap.SeqSetNum(2), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	exp, err := c.UIDExpunge(goimap.UIDSetNum(1)).Collect()
	if err != nil || !slices.Equal(exp, []uint32{1}) {
		t.Fatalf("uid expunge: %v %v", exp, err)
	}
	exp, err = c.Expunge().Collect()
	if err != nil || !slices.Equal(exp, []uint32{1}) {
		t.Fatalf("expunge: %v %v", exp, err)
	}
	if n := c.Mailbox().NumMessages; n != 0 {
		t.Errorf("after expunge: %d", n)
	}
}

// sameFlags compares flag lists, leaving out \Recent, which an IMAP4rev1
// session is shown on the messages it was the first to see.
func sameFlags(a, b []goimap.Flag) bool {
	a = slices.DeleteFunc(slices.Clone(a), func(f goimap.Flag) bool { return strings.EqualFold(string(f), `\Recent`) })
	if len(a) != len(b) {
		return false
	}
	for _, f := range b {
		if !slices.ContainsFunc(a, func(g goimap.Flag) bool { return strings.EqualFold(string(f), string(g)) }) {
			return false
		}
	}
	return true
}

var _ = imapclient.Options{}
