package rspamd

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/inbound"
	"github.com/vmaild/vmaild/internal/testscan"
	"github.com/vmaild/vmaild/internal/testsrv"
)

var scanners testscan.Pool

func TestMain(m *testing.M) {
	code := m.Run()
	scanners.Close()
	os.Exit(code)
}

// GTUBE is SpamAssassin's and rspamd's spam test string; rspamd rejects
// it, and its "YJS" variant gets "add header".
const (
	gtube     = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
	gtubeJunk = "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
)

type bytesMessage struct{ *bytes.Reader }

func (m bytesMessage) Size() int64 { return m.Reader.Size() }

func message(body string) *inbound.Message {
	data := "Received: from client.test ([192.0.2.1]) by mx.example.org; Thu, 3 Dec 2026 15:00:00 +0000\r\n" +
		"From: <someone@remote.test>\r\nTo: <alice@example.org>\r\nSubject: test\r\n" +
		"X-Spam-Flag: NO\r\nDate: Thu, 3 Dec 2026 15:00:00 +0000\r\nMessage-ID: <t@remote.test>\r\n\r\n" + body + "\r\n"
	return &inbound.Message{ID: "t.1", ClientIP: netip.MustParseAddr("192.0.2.1"), Helo: "client.test",
		From: "someone@remote.test", Recipients: []string{"alice@example.org"}, Role: delivery.RoleMTA,
		Hostname: "mx.example.org", Data: bytesMessage{bytes.NewReader([]byte(data))}}
}

// TestRealRspamd: the verdicts of a real rspamd.
func TestRealRspamd(t *testing.T) {
	r := scanners.Rspamd(t)
	tests := []struct {
		name   string
		check  Check
		body   string
		action inbound.Action
		flag   bool
		text   string
	}{
		{"clean", Check{}, "Hello Alice, see you tomorrow.", inbound.Accept, false, ""},
		{"GTUBE rejected", Check{}, gtube, inbound.Reject, true, "Gtube pattern"},
		{"GTUBE filed into Junk", Check{RejectAsJunk: true}, gtube, inbound.Junk, true, ""},
		{"add header is junk", Check{}, gtubeJunk, inbound.Junk, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.check
			c.URL = r.URL
			m := message(tt.body)
			v := &inbound.Verdict{}
			if err := c.Check(context.Background(), m, v); err != nil {
				t.Fatal(err)
			}
			if v.Action != tt.action || v.Spam.Flag != tt.flag || !v.Spam.Checked || v.Spam.Scanner != "rspamd" {
				t.Errorf("verdict %+v, want %v flag=%v", v, tt.action, tt.flag)
			}
			if tt.text != "" && v.Text != tt.text {
				t.Errorf("reply text %q, want %q", v.Text, tt.text)
			}
			if code, enh, _, _ := v.Reply(); tt.action == inbound.Reject && (code != 554 || enh != "5.7.1") {
				t.Errorf("reply %d %s", code, enh)
			}
			fields := map[string]string{}
			for _, f := range v.AddHeader {
				fields[f.Name] = f.Value
			}
			if want := map[bool]string{true: "YES", false: "NO"}[tt.flag]; fields["X-Spam-Flag"] != want {
				t.Errorf("X-Spam-Flag %q, want %q (fields %v)", fields["X-Spam-Flag"], want, fields)
			}
			if tt.flag && !strings.Contains(fields["X-Spam-Status"], "GTUBE") {
				t.Errorf("X-Spam-Status %q does not name GTUBE", fields["X-Spam-Status"])
			}
			// The sender's own X-Spam-Flag is removed.
			if len(v.RemoveHeader) != 1 || v.RemoveHeader[0] != (inbound.HeaderRef{Name: "X-Spam-Flag", Index: 1}) {
				t.Errorf("removes %v", v.RemoveHeader)
			}
		})
	}
}

// TestRspamdDown: a stopped or hung rspamd is the check's error within
// its timeout, so the step's failure mode applies.
func TestRspamdDown(t *testing.T) {
	r := scanners.Rspamd(t)
	closed := "http://127.0.0.1:" + strconv.Itoa(testsrv.FreePort(t))
	for _, tt := range []struct {
		name string
		url  string
		hang bool
	}{
		{"nothing listening", closed, false},
		{"hung", r.URL, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.hang {
				r.Pause(t)
				defer r.Resume()
			}
			p := &inbound.Pipeline{Steps: []inbound.Step{{Check: &Check{URL: tt.url}, Timeout: time.Second}}}
			start := time.Now()
			v := p.Run(context.Background(), message(gtube))
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v with a 1s timeout", d)
			}
			if code, _, _, _ := v.Reply(); v.Action != inbound.Tempfail || code != 451 {
				t.Errorf("verdict %v %d, want tempfail 451", v.Action, code)
			}
		})
	}
}
