// Package spamd is the inbound check that asks SpamAssassin's spamd about
// a message over the SPAMC protocol (the SYMBOLS command: verdict, score,
// required score and the names of the rules that hit). A message spamd
// calls spam is filed into Junk, and rejected with 550 5.7.1 when its
// score reaches RejectScore; the score goes into the verdict and the
// X-Spam-* fields (see inbound.MarkSpam).
package spamd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/inbound"
)

// Check asks the spamd at Address.
type Check struct {
	// Address is spamd's host:port or socket (see inbound.Dial).
	Address string
	// User, when set, is the user whose preferences spamd applies
	// (spamc -u); "" lets spamd use its default.
	User string
	// RejectScore, above 0, rejects a message scoring at least that.
	RejectScore float64
}

func (c *Check) Name() string { return "spamd" }

// maxResponse bounds spamd's answer.
const maxResponse = 1 << 20

func (c *Check) Check(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
	conn, stop, err := inbound.Dial(ctx, c.Address)
	if err != nil {
		return fmt.Errorf("spamd: %w", err)
	}
	defer stop()
	w := bufio.NewWriterSize(conn, 64<<10)
	fmt.Fprintf(w, "SYMBOLS SPAMC/1.5\r\nContent-length: %d\r\n", m.Data.Size())
	if c.User != "" && !strings.ContainsAny(c.User, "\r\n") {
		fmt.Fprintf(w, "User: %s\r\n", c.User)
	}
	w.WriteString("\r\n")
	if _, err := io.Copy(w, m.Reader()); err != nil {
		return fmt.Errorf("spamd: sending the message: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("spamd: sending the message: %w", err)
	}
	// spamd reads exactly Content-length bytes and answers; our half
	// close tells it nothing more is coming.
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	resp, err := io.ReadAll(io.LimitReader(conn, maxResponse))
	if err != nil && len(resp) == 0 {
		return fmt.Errorf("spamd: reading the answer: %w", err)
	}
	r, err := ParseResponse(resp)
	if err != nil {
		return err
	}
	inbound.MarkSpam(m, v, delivery.Spam{Checked: true, Scanner: "spamd", Score: r.Score, Threshold: r.Threshold, Flag: r.Spam},
		r.Symbols, "")
	switch {
	case c.RejectScore > 0 && r.Score >= c.RejectScore:
		v.Reject(550, "5.7.1", "Message refused as spam")
	case r.Spam:
		v.Set(inbound.Junk, 0, "", "")
	}
	v.Log(slog.Int("rules", len(r.Symbols)))
	return nil
}

// Response is spamd's answer to SYMBOLS (or CHECK, without Symbols).
type Response struct {
	Spam             bool
	Score, Threshold float64
	Symbols          []string
}

// ParseResponse reads a SPAMD/1.x response: the status line (code 0 is
// EX_OK, anything else an error), header lines among which "Spam: True ;
// 7.3 / 5.0", an empty line and, for SYMBOLS, the rule names separated
// by commas.
func ParseResponse(b []byte) (*Response, error) {
	head, body, _ := bytes.Cut(b, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	status := strings.Fields(lines[0])
	if len(status) < 2 || !strings.HasPrefix(status[0], "SPAMD/") {
		return nil, fmt.Errorf("spamd: unexpected answer %.100q", lines[0])
	}
	if status[1] != "0" {
		return nil, fmt.Errorf("spamd: %.200s", strings.Join(status[1:], " "))
	}
	var r *Response
	for _, line := range lines[1:] {
		name, value, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "Spam") {
			continue
		}
		var err error
		if r, err = parseSpam(value); err != nil {
			return nil, err
		}
	}
	if r == nil {
		return nil, fmt.Errorf("spamd: no Spam header in %.200q", head)
	}
	for _, s := range strings.Split(string(body), ",") {
		if s = strings.TrimSpace(s); s != "" && ruleName(s) {
			r.Symbols = append(r.Symbols, s)
		}
	}
	return r, nil
}

// parseSpam reads "True ; 7.3 / 5.0".
func parseSpam(value string) (*Response, error) {
	verdict, scores, ok := strings.Cut(value, ";")
	score, threshold, ok2 := strings.Cut(scores, "/")
	if !ok || !ok2 {
		return nil, fmt.Errorf("spamd: malformed Spam header %.100q", value)
	}
	r := &Response{}
	switch strings.ToLower(strings.TrimSpace(verdict)) {
	case "true", "yes":
		r.Spam = true
	case "false", "no":
	default:
		return nil, fmt.Errorf("spamd: malformed Spam header %.100q", value)
	}
	var err1, err2 error
	r.Score, err1 = strconv.ParseFloat(strings.TrimSpace(score), 64)
	r.Threshold, err2 = strconv.ParseFloat(strings.TrimSpace(threshold), 64)
	if err1 != nil || err2 != nil || !finite(r.Score) || !finite(r.Threshold) {
		return nil, fmt.Errorf("spamd: malformed scores in %.100q", value)
	}
	return r, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// ruleName keeps rule names (letters, digits, _ and .) out of which the
// X-Spam-Status field is written.
func ruleName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
