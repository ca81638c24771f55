package clamd

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/inbound"
	"github.com/vmaild/vmaild/internal/testscan"
)

var scanners testscan.Pool

func TestMain(m *testing.M) {
	code := m.Run()
	scanners.Close()
	os.Exit(code)
}

type bytesMessage struct{ *bytes.Reader }

func (m bytesMessage) Size() int64 { return m.Reader.Size() }

func message(data string) *inbound.Message {
	return &inbound.Message{ID: "t.1", ClientIP: netip.MustParseAddr("192.0.2.1"), Helo: "client.test",
		From: "someone@remote.test", Recipients: []string{"alice@example.org"}, Role: delivery.RoleMTA,
		Hostname: "mx.example.org", Data: bytesMessage{bytes.NewReader([]byte(data))}}
}

// withAttachment is a multipart message with content base64-encoded as
// an attachment.
func withAttachment(content []byte) string {
	return "From: <someone@remote.test>\r\nTo: <alice@example.org>\r\nSubject: file\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=file.com\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=file.com\r\n\r\n" + wrap(base64.StdEncoding.EncodeToString(content)) + "--b1--\r\n"
}

func wrap(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return b.String() + s + "\r\n"
}

// nested is the EICAR attachment depth levels of multipart down.
func nested(depth int) string {
	inner := "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte(testscan.EICAR)) + "\r\n"
	for i := depth; i > 0; i-- {
		inner = fmt.Sprintf("Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n%s--n%d--\r\n", i, i, inner, i)
	}
	return "From: <someone@remote.test>\r\nSubject: nested\r\nMIME-Version: 1.0\r\n" + inner
}

// TestRealClamd: EICAR found in an attachment, however it is wrapped,
// and clean mail passes.
func TestRealClamd(t *testing.T) {
	c := scanners.Clamd(t)
	virus := testscan.EICARSignature + ".UNOFFICIAL"
	tests := []struct {
		name  string
		data  string
		found inbound.Action
		virus string
	}{
		{"clean", withAttachment([]byte("just a file")), inbound.Accept, ""},
		{"EICAR attachment", withAttachment([]byte(testscan.EICAR)), inbound.Reject, virus},
		{"EICAR discarded", withAttachment([]byte(testscan.EICAR)), inbound.Discard, virus},
		{"EICAR in the body", "Subject: x\r\n\r\n" + testscan.EICAR + "\r\n", inbound.Reject, virus},
		{"EICAR nested 10 deep", nested(10), inbound.Reject, virus},
		// Deeper than clamd's MaxRecursion (17): with AlertExceedsMax
		// the limit itself is the finding.
		{"EICAR nested 40 deep", nested(40), inbound.Reject, "Heuristics.Limits.Exceeded.MaxRecursion"},
		{"broken base64", strings.Replace(withAttachment([]byte("clean content here")), "Y2xl", "!!!*", 1), inbound.Accept, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := &Check{Address: c.Socket, Found: tt.found}
			v := &inbound.Verdict{}
			if err := ch.Check(context.Background(), message(tt.data), v); err != nil {
				t.Fatal(err)
			}
			if v.Virus.Found != tt.virus || !v.Virus.Checked {
				t.Errorf("virus %+v, want %q", v.Virus, tt.virus)
			}
			want := inbound.Accept
			if tt.virus != "" {
				want = tt.found
			}
			if v.Action != want {
				t.Errorf("action %v, want %v", v.Action, want)
			}
			if want == inbound.Reject {
				if code, enh, text, _ := v.Reply(); code != 554 || enh != "5.7.1" || text != "Virus found: "+tt.virus {
					t.Errorf("reply %d %s %s", code, enh, text)
				}
			}
		})
	}
}

// TestClamdFailures: clamd down, hung, or refusing a stream over its
// StreamMaxLength answers 451 within the step's timeout (fail closed).
func TestClamdFailures(t *testing.T) {
	c := scanners.Clamd(t)
	small := withAttachment([]byte("x"))
	big := withAttachment(bytes.Repeat([]byte("0123456789abcdef"), 9<<20/16)) // over 8M
	for _, tt := range []struct {
		name    string
		address string
		data    string
		hang    bool
	}{
		{"no socket", filepath.Join(t.TempDir(), "none.sock"), small, false},
		{"hung", c.Socket, small, true},
		{"over StreamMaxLength", c.Socket, big, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.hang {
				c.Pause(t)
				defer c.Resume()
			}
			p := &inbound.Pipeline{Steps: []inbound.Step{{Check: &Check{Address: tt.address}, Timeout: 2 * time.Second}}}
			start := time.Now()
			v := p.Run(context.Background(), message(tt.data))
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v with a 2s timeout", d)
			}
			if code, _, _, _ := v.Reply(); v.Action != inbound.Tempfail || code != 451 {
				t.Errorf("verdict %v %d, want tempfail 451", v.Action, code)
			}
		})
	}
}
