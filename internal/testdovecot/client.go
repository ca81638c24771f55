package testdovecot

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Conn is a line-level IMAP client for the oracle: the tests compare the
// server's response lines as they are, so no client library stands
// between them and the wire.
type Conn struct {
	c   net.Conn
	r   *bufio.Reader
	tag int
}

// Login connects and logs in as the server's user.
func (s *Server) Login(t testing.TB) *Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial dovecot: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	conn := &Conn{c: c, r: bufio.NewReader(c)}
	if _, err := conn.r.ReadString('\n'); err != nil {
		t.Fatalf("dovecot greeting: %v", err)
	}
	if _, err := conn.Run(fmt.Sprintf("LOGIN %q %q", s.User, s.Password)); err != nil {
		t.Fatalf("dovecot login: %v\n%s", err, readFile(s.Log))
	}
	return conn
}

// Run sends one command line and returns its untagged response lines
// (without "* " and CRLF); a tagged NO or BAD is an error.
func (c *Conn) Run(cmd string) ([]string, error) {
	return c.RunLiteral(cmd, nil)
}

// RunLiteral is Run for a command ending in a literal, sent as a
// non-synchronizing one (LITERAL+).
func (c *Conn) RunLiteral(cmd string, literal []byte) ([]string, error) {
	c.tag++
	tag := fmt.Sprintf("t%d", c.tag)
	_ = c.c.SetDeadline(time.Now().Add(60 * time.Second))
	line := tag + " " + cmd
	if literal != nil {
		line += fmt.Sprintf(" {%d+}\r\n%s", len(literal), literal)
	}
	if _, err := c.c.Write([]byte(line + "\r\n")); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	var untagged []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return untagged, fmt.Errorf("%s: %w", cmd, err)
		}
		l = strings.TrimRight(l, "\r\n")
		switch {
		case strings.HasPrefix(l, "* "):
			untagged = append(untagged, l[2:])
		case strings.HasPrefix(l, tag+" OK"):
			return untagged, nil
		case strings.HasPrefix(l, tag+" "):
			return untagged, fmt.Errorf("%s: %s", cmd, l)
		}
	}
}

// RunRaw sends one command line and returns everything the server
// answered before the tagged completion, as it came (CRLFs and literals
// included), so that responses carrying literals (FETCH BODY[]) can be
// compared octet for octet. A tagged NO or BAD is an error.
func (c *Conn) RunRaw(cmd string) ([]byte, error) {
	c.tag++
	tag := fmt.Sprintf("t%d", c.tag)
	_ = c.c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.c.Write([]byte(tag + " " + cmd + "\r\n")); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	var out []byte
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return out, fmt.Errorf("%s: %w", cmd, err)
		}
		if strings.HasPrefix(l, tag+" ") {
			if strings.HasPrefix(l, tag+" OK") {
				return out, nil
			}
			return out, fmt.Errorf("%s: %s", cmd, strings.TrimRight(l, "\r\n"))
		}
		out = append(out, l...)
		// A line ending in {n} or ~{n} announces n octets of literal,
		// after which the response line goes on.
		for {
			n, ok := literalSize(l)
			if !ok {
				break
			}
			lit := make([]byte, n)
			if _, err := io.ReadFull(c.r, lit); err != nil {
				return out, fmt.Errorf("%s: literal: %w", cmd, err)
			}
			out = append(out, lit...)
			if l, err = c.r.ReadString('\n'); err != nil {
				return out, fmt.Errorf("%s: %w", cmd, err)
			}
			out = append(out, l...)
		}
	}
}

// literalSize reads the {n}CRLF at the end of a response line.
func literalSize(l string) (int, bool) {
	l = strings.TrimSuffix(l, "\r\n")
	if !strings.HasSuffix(l, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(l, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(l[i+1 : len(l)-1])
	return n, err == nil && n >= 0
}
