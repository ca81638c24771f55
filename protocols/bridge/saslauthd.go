package bridge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/vmaild/vmaild/protocols/sasl"
)

// Saslauthd is the server side of saslauthd's socket protocol, what Cyrus
// SASL sends with pwcheck_method: saslauthd (and testsaslauthd): login,
// password, service and realm, each a 16-bit big-endian length and that
// many octets; the answer is one such string, "OK" or "NO reason". One
// request per connection, as saslauthd serves it. A non-empty realm is the
// domain of a login given without one.
type Saslauthd struct {
	Answers *Answers
}

// Name implements Protocol.
func (*Saslauthd) Name() string { return "saslauthd" }

// saslauthdMaxField bounds each field; saslauthd's own limit is lower.
const saslauthdMaxField = sasl.MaxField

// Serve implements Protocol.
func (s *Saslauthd) Serve(ctx context.Context, c *Conn) error {
	if err := c.Next(); err != nil {
		return err
	}
	var f [4]string
	for i, name := range []string{"login", "password", "service", "realm"} {
		v, err := readCounted(c, saslauthdMaxField)
		if err != nil {
			if errors.Is(err, errHangUp) {
				// The length was read: the answer says what was wrong.
				writeCounted(c, "NO "+err.Error())
				c.End()
			}
			return fmt.Errorf("saslauthd %s: %w", name, err)
		}
		f[i] = v
	}
	login, password, realm := f[0], f[1], f[3]
	if realm != "" && !strings.Contains(login, "@") {
		login += "@" + realm
	}
	answer := "OK"
	if _, err := s.Answers.Authenticate(ctx, netip.Addr{}, login, password); err != nil {
		answer = "NO authentication failed"
		if Temporary(err) {
			answer = "NO temporary failure, try again later"
		}
	}
	if err := writeCounted(c, answer); err != nil {
		return err
	}
	return c.End()
}

// readCounted reads one length-prefixed string of at most max octets.
func readCounted(c *Conn, max int) (string, error) {
	var n uint16
	if err := binary.Read(c.r, binary.BigEndian, &n); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return "", hangUp("truncated request")
		}
		return "", err
	}
	if int(n) > max {
		return "", hangUp("field of %d octets, more than %d", n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return "", hangUp("truncated field: %d octets announced", n)
		}
		return "", err
	}
	return string(b), nil
}

func writeCounted(c *Conn, s string) error {
	if err := binary.Write(c.w, binary.BigEndian, uint16(len(s))); err != nil {
		return err
	}
	_, err := c.w.WriteString(s)
	return err
}
