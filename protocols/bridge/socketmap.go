package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Socketmap serves Postfix lookup tables over the socketmap protocol
// (socketmap:unix:PATH:NAME): a request is the netstring "NAME KEY", the
// reply the netstring "OK value", "NOTFOUND", "TEMP reason" or "PERM
// reason". The names are the tables of Answers.Lookup.
type Socketmap struct {
	Answers *Answers
}

// Name implements Protocol.
func (*Socketmap) Name() string { return "socketmap" }

// socketmapMaxRequest bounds a request: a table name and an address.
// Postfix's own replies may reach 100000 octets (socketmap_max_reply).
const (
	socketmapMaxRequest = 4096
	socketmapMaxReply   = 100000
)

// Serve implements Protocol.
func (s *Socketmap) Serve(ctx context.Context, c *Conn) error {
	for {
		if err := c.Next(); err != nil {
			return err
		}
		req, err := readNetstring(c, socketmapMaxRequest)
		if err != nil {
			var tooLong *errTooLong
			if errors.As(err, &tooLong) {
				writeNetstring(c, "PERM "+err.Error())
				c.End()
			}
			return fmt.Errorf("socketmap: %w", err)
		}
		if err := writeNetstring(c, s.answer(ctx, req).String()); err != nil {
			return err
		}
		if err := c.End(); err != nil {
			return err
		}
	}
}

func (s *Socketmap) answer(ctx context.Context, req string) Result {
	name, key, ok := strings.Cut(req, " ")
	switch {
	case !ok || key == "":
		return Result{Status: PermFail, Value: "request is not \"NAME KEY\""}
	case strings.IndexByte(req, 0) >= 0 || !utf8.ValidString(req):
		return notFound // no address holds a NUL or invalid UTF-8
	}
	r := s.Answers.Lookup(ctx, Table(name), key)
	if len(r.Value) > socketmapMaxReply-10 {
		return Result{Status: PermFail, Value: "answer longer than Postfix takes"}
	}
	return r
}

// errTooLong is a netstring longer than the bound: answered, then closed.
type errTooLong struct{ n, max int }

func (e *errTooLong) Error() string {
	return fmt.Sprintf("request of %d octets, more than %d", e.n, e.max)
}

// readNetstring reads "LEN:DATA," (D. J. Bernstein's netstrings).
func readNetstring(c *Conn, max int) (string, error) {
	n, digits := 0, 0
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", hangUp("truncated netstring length")
			}
			return "", err
		}
		if b == ':' && digits > 0 {
			break
		}
		if b < '0' || b > '9' || digits == 6 || (digits == 1 && n == 0) {
			return "", hangUp("netstring length: unexpected %q", b)
		}
		n = n*10 + int(b-'0')
		digits++
	}
	if n > max {
		return "", &errTooLong{n, max}
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return "", hangUp("truncated netstring: %d octets announced", n)
		}
		return "", err
	}
	if buf[n] != ',' {
		return "", hangUp("netstring not ended by a comma")
	}
	return string(buf[:n]), nil
}

func writeNetstring(c *Conn, s string) error {
	_, err := fmt.Fprintf(c.w, "%d:%s,", len(s), s)
	return err
}
