package imap

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/vmaild/vmaild/userdb"
)

func appendMsg(t testing.TB, c *imapclient.Client, mailbox, body string, opts *goimap.AppendOptions) (*goimap.AppendData, error) {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(body)), opts)
	io.WriteString(cmd, body)
	cmd.Close()
	return cmd.Wait()
}

func TestCopyMove(t *testing.T) {
	e := newEnv(t)
	c := e.login(t, nil)
	old := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	for i := 0; i < 3; i++ {
		if _, err := appendMsg(t, c, "INBOX", fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i), &goimap.AppendOptions{Time: old}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	cd, err := c.Copy(goimap.SeqSetNum(1, 2), "Trash").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if cd.UIDValidity == 0 || cd.SourceUIDs.String() != "1:2" || cd.DestUIDs.String() != "1:2" {
		t.Errorf("COPYUID %+v", cd)
	}
	if _, err := c.Copy(goimap.SeqSetNum(1), "Nope").Wait(); imapCode(err) != goimap.ResponseCodeTryCreate {
		t.Errorf("copy to missing folder: %v", err)
	}
	md, err := c.Move(goimap.UIDSetNum(2, 3), "Archive").Wait()
	if imapCode(err) != goimap.ResponseCodeTryCreate {
		t.Errorf("move to missing folder: %v %v", md, err)
	}
	if err := c.Create("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	md, err = c.Move(goimap.UIDSetNum(2, 3), "Archive").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if md.SourceUIDs.String() != "2:3" || md.DestUIDs.String() != "1:2" {
		t.Errorf("MOVE COPYUID %+v", md)
	}
	if n := c.Mailbox().NumMessages; n != 1 {
		t.Errorf("INBOX after MOVE: %d", n)
	}
	st, err := c.Status("Archive", &goimap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 2 {
		t.Errorf("Archive: %v %v", st, err)
	}
	// Internal dates survive COPY and MOVE.
	if _, err := c.Select("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(goimap.SeqSetNum(1), &goimap.FetchOptions{InternalDate: true}).Collect()
	if err != nil || !msgs[0].InternalDate.Equal(old) {
		t.Errorf("internal date after MOVE: %v %v", msgs, err)
	}
}

func TestQuota(t *testing.T) {
	e := newEnv(t)
	e.dir.setLimit(testUser, userdb.Limit{Bytes: 4096, Messages: 3})
	c := e.login(t, nil)

	body := strings.Repeat("x", 1000)
	if _, err := appendMsg(t, c, "INBOX", body, nil); err != nil {
		t.Fatal(err)
	}
	roots, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0].Root != "" {
		t.Fatalf("GETQUOTAROOT: %+v", roots)
	}
	res := roots[0].Resources
	if res[goimap.QuotaResourceStorage] != (imapclient.QuotaResourceData{Usage: 1, Limit: 4}) ||
		res[goimap.QuotaResourceMessage] != (imapclient.QuotaResourceData{Usage: 1, Limit: 3}) {
		t.Errorf("GETQUOTAROOT resources: %+v", res)
	}
	q, err := c.GetQuota("").Wait()
	if err != nil || q.Resources[goimap.QuotaResourceStorage].Usage != 1 {
		t.Errorf("GETQUOTA: %+v %v", q, err)
	}
	if _, err := c.GetQuota("other").Wait(); imapCode(err) != goimap.ResponseCodeNonExistent {
		t.Errorf("GETQUOTA other: %v", err)
	}
	if _, err := c.GetQuotaRoot("Nope").Wait(); imapCode(err) != goimap.ResponseCodeNonExistent {
		t.Errorf("GETQUOTAROOT Nope: %v", err)
	}
	if _, err := c.GetQuotaRoot("Sent").Wait(); err != nil {
		t.Errorf("GETQUOTAROOT Sent: %v", err)
	}

	// 1000 + 4000 > 4096.
	if _, err := appendMsg(t, c, "INBOX", strings.Repeat("y", 4000), nil); imapCode(err) != goimap.ResponseCodeOverQuota {
		t.Fatalf("APPEND over quota: %v", err)
	}
	if _, err := appendMsg(t, c, "INBOX", body, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// 2000 used; copying both needs 2000 more.
	if _, err := c.Copy(goimap.SeqSetNum(1, 2), "Trash").Wait(); imapCode(err) != goimap.ResponseCodeOverQuota {
		t.Fatalf("COPY over quota: %v", err)
	}
	// MOVE changes no usage, so it works at any fill level.
	if _, err := c.Move(goimap.SeqSetNum(1, 2), "Trash").Wait(); err != nil {
		t.Fatalf("MOVE at quota: %v", err)
	}
	if u, _ := e.quotas.Usage(t.Context(), testUser); u != (userdb.Usage{Bytes: 2000, Messages: 2}) {
		t.Errorf("usage after MOVE: %+v", u)
	}
	// Expunge credits.
	if _, err := c.Select("Trash", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(goimap.SeqSetNum(1), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.quotas.Usage(t.Context(), testUser); u != (userdb.Usage{Bytes: 1000, Messages: 1}) {
		t.Errorf("usage after EXPUNGE: %+v", u)
	}
	// A limit lowered meanwhile applies at once.
	e.dir.setLimit(testUser, userdb.Limit{Messages: 1})
	if _, err := appendMsg(t, c, "INBOX", "x", nil); imapCode(err) != goimap.ResponseCodeOverQuota {
		t.Errorf("APPEND after the limit was lowered: %v", err)
	}
	// Unlimited accounts have no quota root.
	e.dir.setLimit(testUser, userdb.Limit{})
	roots, err = c.GetQuotaRoot("INBOX").Wait()
	if err != nil || len(roots) != 0 {
		t.Errorf("unlimited GETQUOTAROOT: %+v %v", roots, err)
	}
	// The directory being down is "try later".
	e.dir.setLimit(testUser, userdb.Limit{Messages: 100})
	e.dir.setDown(true)
	if _, err := appendMsg(t, c, "INBOX", "x", nil); imapCode(err) != goimap.ResponseCodeUnavailable {
		t.Errorf("APPEND with the directory down: %v", err)
	}
	if _, err := c.GetQuotaRoot("INBOX").Wait(); imapCode(err) != goimap.ResponseCodeUnavailable {
		t.Errorf("GETQUOTAROOT with the directory down: %v", err)
	}
}

// TestTwoSessions checks that two sessions on one folder keep their own
// consistent sequence numbers and hear of each other's changes only at
// allowed times, and that IDLE pushes deliveries, expunges and flag
// changes.
func TestTwoSessions(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var expunged []uint32
	var exists []uint32
	var flags []string
	got := make(chan struct{}, 100)
	idler := e.login(t, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) {
			mu.Lock()
			expunged = append(expunged, seq)
			mu.Unlock()
			got <- struct{}{}
		},
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				mu.Lock()
				exists = append(exists, *d.NumMessages)
				mu.Unlock()
				got <- struct{}{}
			}
		},
		Fetch: func(m *imapclient.FetchMessageData) {
			b, _ := m.Collect()
			mu.Lock()
			flags = append(flags, fmt.Sprintf("%d:%v", b.SeqNum, b.Flags))
			mu.Unlock()
			got <- struct{}{}
		},
	}})
	other := e.login(t, nil)
	for i := 1; i <= 3; i++ {
		e.deliver(t, "", fmt.Sprintf("Subject: %d\r\n\r\n%d\r\n", i, i))
	}
	if _, err := idler.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			select {
			case <-got:
			case <-deadline:
				t.Fatalf("IDLE: no %s (expunged %v exists %v flags %v)", what, expunged, exists, flags)
			}
		}
	}

	idle, err := idler.Idle()
	if err != nil {
		t.Fatal(err)
	}
	// A delivery through the MDA's path.
	e.deliver(t, "", "Subject: 4\r\n\r\n4\r\n")
	wait("EXISTS 4", func() bool { return slices.Contains(exists, 4) })
	// A flag change by the other session.
	if err := other.Store(goimap.SeqSetNum(2), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	wait("FETCH FLAGS", func() bool { return len(flags) > 0 })
	if !strings.HasPrefix(flags[0], "2:") || !strings.Contains(flags[0], `\Flagged`) {
		t.Errorf("flag update %q", flags[0])
	}
	// An expunge by the other session.
	if err := other.Store(goimap.SeqSetNum(1), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := other.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	wait("EXPUNGE 1", func() bool { return slices.Contains(expunged, 1) })
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}

	// Outside IDLE: an expunge by the other session is not reported after
	// FETCH (sequence numbers stay what the client knows), only after NOOP.
	if err := other.Store(goimap.SeqSetNum(1), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := other.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	before := len(expunged)
	mu.Unlock()
	msgs, err := idler.Fetch(goimap.SeqSetNum(1, 2, 3), &goimap.FetchOptions{UID: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var uids []goimap.UID
	for _, m := range msgs {
		uids = append(uids, m.UID)
	}
	if !slices.Equal(uids, []goimap.UID{2, 3, 4}) {
		t.Errorf("FETCH after a foreign expunge: UIDs %v, want the unchanged view 2 3 4", uids)
	}
	mu.Lock()
	if len(expunged) != before {
		t.Errorf("EXPUNGE sent during FETCH")
	}
	mu.Unlock()
	if err := idler.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(expunged) != before+1 || expunged[len(expunged)-1] != 1 {
		t.Errorf("after NOOP: expunged %v", expunged)
	}
	mu.Unlock()
	if n := idler.Mailbox().NumMessages; n != 2 {
		t.Errorf("idler sees %d messages, want 2", n)
	}
	if n := other.Mailbox().NumMessages; n != 2 {
		t.Errorf("other sees %d messages, want 2", n)
	}
}

func TestSearch(t *testing.T) {
	e := newEnv(t)
	c := e.login(t, nil)
	day := func(s string) time.Time { d, _ := time.Parse("2006-01-02", s); return d.Add(12 * time.Hour) }
	msgs := []struct {
		body  string
		flags []goimap.Flag
		date  time.Time
	}{
		{"From: bob@example.net\r\nSubject: Report\r\nDate: Mon, 01 Jun 2020 10:00:00 +0000\r\n\r\nquarterly numbers\r\n", []goimap.Flag{goimap.FlagSeen}, day("2020-06-01")},
		{"From: carol@example.com\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nDate: Tue, 02 Jun 2020 10:00:00 +0000\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nSch=F6ne Gr=FC=DFe\r\n", []goimap.Flag{goimap.FlagFlagged, "$Work"}, day("2020-06-02")},
		{"From: bob@example.net\r\nSubject: big\r\n\r\n" + strings.Repeat("z", 5000) + "\r\n", nil, day("2020-06-03")},
	}
	for _, m := range msgs {
		if _, err := appendMsg(t, c, "INBOX", m.body, &goimap.AppendOptions{Flags: m.flags, Time: m.date}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		c    goimap.SearchCriteria
		want []uint32
	}{
		{"all", goimap.SearchCriteria{}, []uint32{1, 2, 3}},
		{"seen", goimap.SearchCriteria{Flag: []goimap.Flag{goimap.FlagSeen}}, []uint32{1}},
		{"unseen", goimap.SearchCriteria{NotFlag: []goimap.Flag{goimap.FlagSeen}}, []uint32{2, 3}},
		{"keyword", goimap.SearchCriteria{Flag: []goimap.Flag{"$work"}}, []uint32{2}},
		{"unknown keyword", goimap.SearchCriteria{Flag: []goimap.Flag{"$nope"}}, nil},
		{"larger", goimap.SearchCriteria{Larger: 1000}, []uint32{3}},
		{"smaller", goimap.SearchCriteria{Smaller: 1000}, []uint32{1, 2}},
		{"since", goimap.SearchCriteria{Since: day("2020-06-02")}, []uint32{2, 3}},
		{"before", goimap.SearchCriteria{Before: day("2020-06-02")}, []uint32{1}},
		{"sentsince", goimap.SearchCriteria{SentSince: day("2020-06-02")}, []uint32{2}},
		{"from", goimap.SearchCriteria{Header: []goimap.SearchCriteriaHeaderField{{Key: "From", Value: "BOB"}}}, []uint32{1, 3}},
		{"encoded subject", goimap.SearchCriteria{Header: []goimap.SearchCriteriaHeaderField{{Key: "Subject", Value: "grüße"}}}, []uint32{2}},
		{"body decoded", goimap.SearchCriteria{Body: []string{"schöne"}}, []uint32{2}},
		{"text", goimap.SearchCriteria{Text: []string{"carol"}}, []uint32{2}},
		{"uid", goimap.SearchCriteria{UID: []goimap.UIDSet{goimap.UIDSetNum(2, 3)}}, []uint32{2, 3}},
		{"seq star", goimap.SearchCriteria{SeqNum: []goimap.SeqSet{{{Start: 2, Stop: 0}}}}, []uint32{2, 3}},
		{"not", goimap.SearchCriteria{Not: []goimap.SearchCriteria{{Flag: []goimap.Flag{goimap.FlagFlagged}}}}, []uint32{1, 3}},
		{"or", goimap.SearchCriteria{Or: [][2]goimap.SearchCriteria{{{Flag: []goimap.Flag{goimap.FlagSeen}}, {Larger: 1000}}}}, []uint32{1, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, uid := range []bool{false, true} {
				var d *goimap.SearchData
				var err error
				if uid {
					d, err = c.UIDSearch(&tc.c, nil).Wait()
				} else {
					d, err = c.Search(&tc.c, nil).Wait()
				}
				if err != nil {
					t.Fatal(err)
				}
				got := d.AllSeqNums()
				if uid {
					got = nil
					for _, u := range d.AllUIDs() {
						got = append(got, uint32(u))
					}
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("uid=%v: %v, want %v", uid, got, tc.want)
				}
			}
		})
	}
}
