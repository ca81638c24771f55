// Package clamd is the inbound check that has ClamAV's clamd scan a
// message with the INSTREAM command (the message sent in chunks over its
// socket, no file shared). clamd takes the message apart itself (MIME,
// base64, archives). A virus found rejects the message with 554 5.7.1
// naming it (or discards or files it into Junk, as configured); anything
// but a clear answer (clamd down, its size limit, a garbled reply) is the
// check's error.
package clamd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/vmaild/vmaild/backend/inbound"
)

// Check scans with the clamd at Address.
type Check struct {
	// Address is clamd's LocalSocket path or TCPAddr:TCPSocket (see
	// inbound.Dial).
	Address string
	// Found is what a virus does to the message: inbound.Reject (the
	// zero value is taken as Reject too), inbound.Discard or inbound.Junk.
	Found inbound.Action
}

func (c *Check) Name() string { return "clamd" }

// chunkSize is the size of INSTREAM chunks.
const chunkSize = 64 << 10

// maxReply bounds clamd's answer.
const maxReply = 4 << 10

func (c *Check) Check(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
	conn, stop, err := inbound.Dial(ctx, c.Address)
	if err != nil {
		return fmt.Errorf("clamd: %w", err)
	}
	defer stop()
	// clamd answers early, and closes, when the stream passes its
	// StreamMaxLength: the reply is read whatever the writing says.
	werr := stream(conn, m.Reader())
	reply, rerr := io.ReadAll(io.LimitReader(conn, maxReply))
	if rerr != nil && len(reply) == 0 {
		if werr != nil {
			return fmt.Errorf("clamd: sending the message: %w", werr)
		}
		return fmt.Errorf("clamd: reading the reply: %w", rerr)
	}
	r, err := ParseReply(reply)
	if err != nil {
		return err
	}
	v.Virus.Checked, v.Virus.Scanner = true, "clamd"
	if r.Virus == "" {
		v.Add("X-Virus-Scanned", "clamd; clean")
		v.Log(slog.String("virus", "none"))
		return nil
	}
	v.Virus.Found = r.Virus
	v.Log(slog.String("virus", r.Virus))
	switch c.Found {
	case inbound.Discard, inbound.Junk:
		v.Add("X-Virus-Scanned", "clamd; infected: "+r.Virus)
		v.Set(c.Found, 0, "", "")
	default:
		v.Reject(554, "5.7.1", "Virus found: "+r.Virus)
	}
	return nil
}

// stream sends the INSTREAM command and the message in chunks, each after
// its length (4 bytes, network order), and the empty chunk that ends it.
func stream(w io.Writer, r io.Reader) error {
	if _, err := io.WriteString(w, "zINSTREAM\x00"); err != nil {
		return err
	}
	buf := make([]byte, 4+chunkSize)
	for {
		n, err := io.ReadFull(r, buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf, uint32(n))
			if _, werr := w.Write(buf[:4+n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	_, err := w.Write([]byte{0, 0, 0, 0})
	return err
}

// Reply is clamd's answer to one scan.
type Reply struct {
	// Virus is the signature found; "" is clean.
	Virus string
}

// ParseReply reads clamd's answer to a z-command: "stream: OK",
// "stream: NAME FOUND", or an error ("… ERROR"), NUL-terminated.
func ParseReply(b []byte) (Reply, error) {
	s, _, ok := bytes.Cut(b, []byte{0})
	if !ok {
		return Reply{}, fmt.Errorf("clamd: unterminated reply %.200q", b)
	}
	line := strings.TrimSpace(string(s))
	if strings.HasSuffix(line, " ERROR") {
		return Reply{}, fmt.Errorf("clamd: %.200s", line)
	}
	_, result, found := strings.Cut(line, ": ")
	if !found {
		return Reply{}, fmt.Errorf("clamd: unexpected reply %.200q", line)
	}
	switch {
	case result == "OK":
		return Reply{}, nil
	case strings.HasSuffix(result, " FOUND"):
		name := strings.TrimSpace(strings.TrimSuffix(result, " FOUND"))
		if name == "" || !printable(name) {
			return Reply{}, fmt.Errorf("clamd: unreadable virus name in %.200q", line)
		}
		return Reply{Virus: name}, nil
	}
	return Reply{}, fmt.Errorf("clamd: unexpected reply %.200q", line)
}

// printable keeps a virus name, which goes into a reply and a header
// field, to printable ASCII.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
