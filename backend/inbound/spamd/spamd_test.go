package spamd

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"slices"
	"strconv"
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

const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

type bytesMessage struct{ *bytes.Reader }

func (m bytesMessage) Size() int64 { return m.Reader.Size() }

func message(body string) *inbound.Message {
	data := "Received: from client.test ([192.0.2.1]) by mx.example.org; Thu, 3 Dec 2026 15:00:00 +0000\r\n" +
		"From: <someone@remote.test>\r\nTo: <alice@example.org>\r\nSubject: test\r\n" +
		"Date: Thu, 3 Dec 2026 15:00:00 +0000\r\nMessage-ID: <t@remote.test>\r\n\r\n" + body + "\r\n"
	return &inbound.Message{ID: "t.1", ClientIP: netip.MustParseAddr("192.0.2.1"), Helo: "client.test",
		From: "someone@remote.test", Recipients: []string{"alice@example.org"}, Role: delivery.RoleMTA,
		Hostname: "mx.example.org", Data: bytesMessage{bytes.NewReader([]byte(data))}}
}

// TestRealSpamd: GTUBE is spam for a real spamd, filed into Junk or
// rejected at RejectScore; ordinary mail is not.
func TestRealSpamd(t *testing.T) {
	s := scanners.Spamd(t)
	tests := []struct {
		name   string
		check  Check
		body   string
		action inbound.Action
		spam   bool
	}{
		{"clean", Check{}, "Hello Alice, see you tomorrow at the station.", inbound.Accept, false},
		{"GTUBE into Junk", Check{}, gtube, inbound.Junk, true},
		{"GTUBE rejected", Check{RejectScore: 20}, gtube, inbound.Reject, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.check
			c.Address = s.Addr
			v := &inbound.Verdict{}
			if err := c.Check(context.Background(), message(tt.body), v); err != nil {
				t.Fatal(err)
			}
			if v.Action != tt.action || v.Spam.Flag != tt.spam || v.Spam.Threshold != 5 {
				t.Errorf("verdict %v spam %+v, want %v spam=%v", v.Action, v.Spam, tt.action, tt.spam)
			}
			var status string
			for _, f := range v.AddHeader {
				if f.Name == "X-Spam-Status" {
					status = f.Value
				}
			}
			if tt.spam && !bytes.Contains([]byte(status), []byte("GTUBE")) {
				t.Errorf("X-Spam-Status %q does not name GTUBE", status)
			}
		})
	}
}

// TestSpamdDown: a spamd not listening or hung answers 451 within the
// step's timeout.
func TestSpamdDown(t *testing.T) {
	s := scanners.Spamd(t)
	for _, tt := range []struct {
		name    string
		address string
		hang    bool
	}{
		{"nothing listening", "127.0.0.1:" + strconv.Itoa(testsrv.FreePort(t)), false},
		{"hung", s.Addr, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.hang {
				s.Pause(t)
				defer s.Resume()
			}
			p := &inbound.Pipeline{Steps: []inbound.Step{{Check: &Check{Address: tt.address}, Timeout: time.Second}}}
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

func TestParseResponse(t *testing.T) {
	r, err := ParseResponse([]byte("SPAMD/1.1 0 EX_OK\r\nContent-length: 30\r\nSpam: True ; 1003.3 / 5.0\r\n\r\nGTUBE,MISSING_DATE,NO_RECEIVED"))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Spam || r.Score != 1003.3 || r.Threshold != 5 || !slices.Equal(r.Symbols, []string{"GTUBE", "MISSING_DATE", "NO_RECEIVED"}) {
		t.Errorf("%+v", r)
	}
	if _, err := ParseResponse([]byte("SPAMD/1.0 76 Bad header line: (Content-Length mismatch)\r\n\r\n")); err == nil {
		t.Error("an error status parsed")
	}
}
