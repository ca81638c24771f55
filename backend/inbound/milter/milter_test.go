package milter

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

type bytesMessage struct{ *bytes.Reader }

func (m bytesMessage) Size() int64 { return m.Reader.Size() }

func message(client, from string) *inbound.Message {
	data := "Received: from client.test ([" + client + "])\r\n\tby mx.example.org (vmaild) with ESMTP id t.1;\r\n\tThu, 3 Dec 2026 15:00:00 +0000\r\n" +
		"From: <" + from + ">\r\nTo: <alice@example.org>\r\nSubject: test\r\n" +
		"Date: Thu, 3 Dec 2026 15:00:00 +0000\r\nMessage-ID: <t@example.org>\r\n\r\nHello.\r\n"
	return &inbound.Message{ID: "t.1", ClientIP: netip.MustParseAddr(client), Helo: "client.test",
		From: from, Recipients: []string{"alice@example.org"}, Role: delivery.RoleMTA,
		Hostname: "mx.example.org", Data: bytesMessage{bytes.NewReader([]byte(data))}}
}

// TestRealOpenDKIM: opendkim as a milter signs mail of its domain from
// an internal host, and reports on mail from elsewhere.
func TestRealOpenDKIM(t *testing.T) {
	o := scanners.OpenDKIM(t)
	tests := []struct {
		name, client, from string
		field, want        string
	}{
		{"signs", "127.0.0.1", "bob@example.org", "DKIM-Signature", "d=example.org; s=test;"},
		{"verifies", "192.0.2.1", "someone@remote.test", "Authentication-Results", "mx.example.org; dkim=none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Check{Address: "inet:" + o.Addr, CheckName: "opendkim"}
			v := &inbound.Verdict{}
			if err := c.Check(context.Background(), message(tt.client, tt.from), v); err != nil {
				t.Fatal(err)
			}
			if v.Action != inbound.Accept {
				t.Errorf("action %v", v.Action)
			}
			var got string
			for _, f := range v.AddHeader {
				if f.Name == tt.field {
					got = f.Value
				}
			}
			if !strings.Contains(strings.Join(strings.Fields(got), " "), tt.want) {
				t.Errorf("%s %q, want %q; fields %+v", tt.field, got, tt.want, v.AddHeader)
			}
		})
	}
}

// TestMilterHostileHeader: a header line without a colon is refused for
// good; a message that is all header goes through.
func TestMilterHostileHeader(t *testing.T) {
	o := scanners.OpenDKIM(t)
	for _, tt := range []struct {
		name, data string
		action     inbound.Action
	}{
		{"line without a colon", "Received: from x by y; Thu, 3 Dec 2026 15:00:00 +0000\r\nFrom: <a@remote.test>\r\nThis is no field\r\n\r\nbody\r\n", inbound.Reject},
		{"no body", "Received: from x by y; Thu, 3 Dec 2026 15:00:00 +0000\r\nFrom: <a@remote.test>\r\nSubject: all header\r\n", inbound.Accept},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := message("192.0.2.1", "a@remote.test")
			m.Data = bytesMessage{bytes.NewReader([]byte(tt.data))}
			v := &inbound.Verdict{}
			if err := (&Check{Address: o.Addr}).Check(context.Background(), m, v); err != nil {
				t.Fatal(err)
			}
			if v.Action != tt.action {
				t.Errorf("action %v, want %v", v.Action, tt.action)
			}
			if code, enh, _, _ := v.Reply(); tt.action == inbound.Reject && (code != 554 || enh != "5.6.0") {
				t.Errorf("reply %d %s", code, enh)
			}
		})
	}
}

// TestMilterDown: a milter not listening or hung answers 451 within the
// step's timeout.
func TestMilterDown(t *testing.T) {
	o := scanners.OpenDKIM(t)
	for _, tt := range []struct {
		name, address string
		hang          bool
	}{
		{"nothing listening", "127.0.0.1:" + strconv.Itoa(testsrv.FreePort(t)), false},
		{"hung", o.Addr, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.hang {
				o.Pause(t)
				defer o.Resume()
			}
			p := &inbound.Pipeline{Steps: []inbound.Step{{Check: &Check{Address: tt.address}, Timeout: time.Second}}}
			start := time.Now()
			v := p.Run(context.Background(), message("192.0.2.1", "someone@remote.test"))
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v with a 1s timeout", d)
			}
			if code, _, _, _ := v.Reply(); v.Action != inbound.Tempfail || code != 451 {
				t.Errorf("verdict %v %d, want tempfail 451", v.Action, code)
			}
		})
	}
}

func TestSplitReply(t *testing.T) {
	for _, tt := range []struct{ in, enhanced, text string }{
		{"5.7.1 Command rejected", "5.7.1", "Command rejected"},
		{"Command rejected", "", "Command rejected"},
		{"5.x.1 odd", "", "5.x.1 odd"},
	} {
		if e, text := splitReply(tt.in); e != tt.enhanced || text != tt.text {
			t.Errorf("%q: %q %q", tt.in, e, text)
		}
	}
}
