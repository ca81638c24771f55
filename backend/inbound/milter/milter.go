// Package milter is the inbound check that hands a message to a milter
// (the Sendmail/Postfix mail filter protocol, through emersion/go-milter),
// so that any milter an admin already runs plugs in: OpenDKIM, OpenDMARC,
// rspamd's proxy, clamav-milter, spamass-milter. The milter sees what a
// Postfix would show it (connection, HELO, MAIL FROM, each RCPT, the
// header fields, the body, the usual macros) at the end of DATA, and its
// answer becomes the verdict:
//
//	reject, a 5xx reply  → reject (its code and text)
//	tempfail, a 4xx reply → tempfail
//	discard               → discard
//	quarantine            → junk
//	add/insert header     → fields added on top of the message
//	change header         → the field removed, the new value added
//
// Changes to the body, the sender or the recipients are not offered to
// the milter. A message whose header cannot be split into fields (a line
// without a colon) is refused with 554 5.6.0: no milter could be shown it,
// and a retry would bring the same header.
package milter

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
	gomilter "github.com/emersion/go-milter"

	"github.com/vmaild/vmaild/backend/inbound"
)

// Check hands messages to the milter at Address.
type Check struct {
	// Address is the milter's socket: "inet:127.0.0.1:8891",
	// "127.0.0.1:8891" or "unix:/run/opendkim/opendkim.sock" (see
	// inbound.Dial).
	Address string
	// CheckName names the check in logs and configuration ("opendkim");
	// "" is "milter".
	CheckName string
}

func (c *Check) Name() string {
	if c.CheckName != "" {
		return c.CheckName
	}
	return "milter"
}

// actions are the changes a milter may ask for.
const actions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine

func (c *Check) Check(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
	timeout := time.Minute
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	d := &dialer{ctx: ctx}
	defer d.stop()
	client := gomilter.NewClientWithOptions("tcp", c.Address, gomilter.ClientOptions{
		Dialer: d, ReadTimeout: timeout, WriteTimeout: timeout, ActionMask: actions,
	})
	s, err := client.Session()
	if err != nil {
		return fmt.Errorf("%s: %w", c.Name(), err)
	}
	defer s.Close()
	act, mods, err := c.converse(s, m)
	if errors.Is(err, errMalformedHeader) {
		// A header no milter can be shown is refused for good: a retry
		// would bring the same header.
		v.Log(slog.String("err", err.Error()))
		v.Reject(554, "5.6.0", "Message header is malformed")
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", c.Name(), err)
	}
	c.apply(m, v, act, mods)
	return nil
}

// errMalformedHeader is a message header that cannot be split into the
// fields a milter is shown.
var errMalformedHeader = errors.New("malformed message header")

// dialer connects under the check's context (inbound.Dial), whatever
// address family the client asks for.
type dialer struct {
	ctx   context.Context
	stops []func()
}

func (d *dialer) Dial(_, address string) (net.Conn, error) {
	conn, stop, err := inbound.Dial(d.ctx, address)
	if err != nil {
		return nil, err
	}
	d.stops = append(d.stops, stop)
	return conn, nil
}

func (d *dialer) stop() {
	for _, s := range d.stops {
		s()
	}
}

// converse runs one milter transaction; it returns the first action that
// is not "continue" and, at the end of the body, the changes asked for.
func (c *Check) converse(s *gomilter.ClientSession, m *inbound.Message) (*gomilter.Action, []gomilter.ModifyAction, error) {
	family, port, addr := gomilter.FamilyUnknown, uint16(0), ""
	clientName := "localhost"
	if ip := m.ClientIP.Unmap(); ip.IsValid() {
		family, addr = gomilter.FamilyInet, ip.String()
		if ip.Is6() {
			family = gomilter.FamilyInet6
		}
		clientName = "[" + ip.String() + "]"
	}
	steps := []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) {
			if err := s.Macros(gomilter.CodeConn, "j", m.Hostname, "{daemon_name}", "vmaild", "{client_addr}", addr, "_", clientName); err != nil {
				return nil, err
			}
			return s.Conn(clientName, family, port, addr)
		},
		func() (*gomilter.Action, error) {
			if err := s.Macros(gomilter.CodeHelo, "{tls_version}", m.TLS); err != nil {
				return nil, err
			}
			return s.Helo(m.Helo)
		},
		func() (*gomilter.Action, error) {
			kv := []string{"i", m.ID, "{mail_addr}", m.From}
			if m.User != "" {
				kv = append(kv, "{auth_authen}", m.User, "{auth_type}", "PLAIN")
			}
			if err := s.Macros(gomilter.CodeMail, kv...); err != nil {
				return nil, err
			}
			return s.Mail(m.From, nil)
		},
	}
	for _, r := range m.Recipients {
		steps = append(steps, func() (*gomilter.Action, error) {
			if err := s.Macros(gomilter.CodeRcpt, "{rcpt_addr}", r); err != nil {
				return nil, err
			}
			return s.Rcpt(r, nil)
		})
	}
	for _, step := range steps {
		act, err := step()
		if err != nil {
			return nil, nil, err
		}
		if act.Code != gomilter.ActContinue {
			return act, nil, nil
		}
	}
	br := bufio.NewReaderSize(m.Reader(), 64<<10)
	h, err := textproto.ReadHeader(br)
	// io.EOF: a message that is all header, without an empty line.
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%w: %v", errMalformedHeader, err)
	}
	if err := s.Macros(gomilter.CodeEOH, "i", m.ID); err != nil {
		return nil, nil, err
	}
	for f := h.Fields(); f.Next(); {
		act, err := s.HeaderField(f.Key(), rawValue(f))
		if err != nil {
			return nil, nil, err
		}
		if act.Code != gomilter.ActContinue {
			return act, nil, nil
		}
	}
	act, err := s.HeaderEnd()
	if err != nil {
		return nil, nil, err
	}
	if act.Code != gomilter.ActContinue {
		return act, nil, nil
	}
	if err := s.Macros(gomilter.CodeEOB, "i", m.ID); err != nil {
		return nil, nil, err
	}
	mods, act, err := s.BodyReadFrom(br)
	if err != nil {
		return nil, nil, err
	}
	return act, mods, nil
}

// rawValue is a field's value as received, folding kept (as LF and the
// whitespace after it, Sendmail's form), so that a milter signing with
// "simple" header canonicalization signs what is delivered.
func rawValue(f textproto.HeaderFields) string {
	raw, err := f.Raw()
	if err != nil {
		return f.Value()
	}
	_, value, _ := bytes.Cut(raw, []byte(":"))
	value = bytes.TrimPrefix(value, []byte(" "))
	value = bytes.TrimRight(value, "\r\n")
	return strings.ReplaceAll(string(value), "\r\n", "\n")
}

// apply turns the milter's answer into the verdict.
func (c *Check) apply(m *inbound.Message, v *inbound.Verdict, act *gomilter.Action, mods []gomilter.ModifyAction) {
	for _, mod := range mods {
		switch mod.Code {
		case gomilter.ActAddHeader, gomilter.ActInsertHeader:
			v.Add(mod.HeaderName, mod.HeaderValue)
		case gomilter.ActChangeHeader:
			// Our Received field is the first the milter saw and is not
			// in the message as received: it is not the milter's to change.
			index := int(mod.HeaderIndex)
			if strings.EqualFold(mod.HeaderName, "Received") {
				index--
			}
			if index < 1 {
				continue
			}
			v.Remove(mod.HeaderName, index)
			if mod.HeaderValue != "" {
				v.Add(mod.HeaderName, mod.HeaderValue)
			}
		case gomilter.ActQuarantine:
			v.Log(slog.String("quarantine", mod.Reason))
			v.Set(inbound.Junk, 0, "", "")
		default:
			v.Log(slog.String("ignored", string(rune(mod.Code))))
		}
	}
	if act == nil {
		return
	}
	v.Log(slog.String("action", string(rune(act.Code))))
	switch act.Code {
	case gomilter.ActReject:
		v.Reject(0, "", "")
	case gomilter.ActTempFail:
		v.Tempfail(0, "", "")
	case gomilter.ActDiscard:
		v.Set(inbound.Discard, 0, "", "")
	case gomilter.ActReplyCode:
		enhanced, text := splitReply(act.SMTPText)
		switch act.SMTPCode / 100 {
		case 5:
			v.Reject(act.SMTPCode, enhanced, text)
		case 4:
			v.Tempfail(act.SMTPCode, enhanced, text)
		}
	}
}

// splitReply takes the enhanced status code off the front of a milter's
// reply text ("5.7.1 Command rejected").
func splitReply(text string) (enhanced, rest string) {
	first, rest, _ := strings.Cut(strings.TrimSpace(text), " ")
	parts := strings.Split(first, ".")
	if len(parts) == 3 {
		for _, p := range parts {
			if _, err := strconv.Atoi(p); err != nil {
				return "", strings.TrimSpace(text)
			}
		}
		return first, strings.TrimSpace(rest)
	}
	return "", strings.TrimSpace(text)
}
