package smtp

import (
	"errors"
	"io"
	"log/slog"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/delivery"
)

var (
	errBareNewlineReply = smtpErr(554, "5.5.2", "Message contains a bare CR or LF; lines must end with CRLF")
	errReadFailed       = smtpErr(451, "4.3.0", "Error reading the message, try again later")
	errSpoolFailed      = smtpErr(451, "4.3.0", "Could not spool the message, try again later")
	errNoTransaction    = smtpErr(503, "5.5.1", "No transaction")
)

// Data receives a message over SMTP (DATA or BDAT) and answers once for all
// recipients; see the package comment for how mixed outcomes are answered.
func (ss *session) Data(r io.Reader) error {
	tx, sp, msg, e := ss.receive(r)
	if e != nil {
		return e
	}
	defer sp.Close()
	statuses := ss.deliver(tx, msg)
	reply := summarize(tx, statuses)
	ss.logTx(tx, msg.Size(), statuses, reply)
	return reply
}

// LMTPData receives a message over LMTP and answers per recipient.
func (ss *session) LMTPData(r io.Reader, sc gosmtp.StatusCollector) error {
	tx, sp, msg, e := ss.receive(r)
	if e != nil {
		return e
	}
	defer sp.Close()
	statuses := ss.deliver(tx, msg)
	for i, rc := range tx.rcpts {
		sc.SetStatus(rc.raw, statusErr(statuses[i]))
	}
	ss.logTx(tx, msg.Size(), statuses, nil)
	return nil
}

// receive spools the message and builds what the agent reads. On failure it
// returns the reply and has logged the transaction.
func (ss *session) receive(r io.Reader) (*transaction, *spool, *message, error) {
	ss.mu.Lock()
	tx := ss.tx
	account := ss.account
	ss.mu.Unlock()
	if tx == nil || len(tx.rcpts) == 0 {
		return nil, nil, nil, errNoTransaction
	}
	s := ss.srv
	sp := newSpool(s.MaxMessageBytes, s.MemorySpoolBytes, s.SpoolDir)
	_, err := io.Copy(sp, r)
	if err == nil {
		err = sp.finish()
	}
	if err != nil {
		sp.Close()
		e := ss.readError(err)
		ss.endTx(tx, "refused", slog.Int64("size", sp.Size()), slog.Int("code", e.Code), slog.String("err", err.Error()))
		return nil, nil, nil, e
	}
	var head []byte
	head = ss.received(head, tx, account != nil)
	checkSenders := account != nil && !s.SkipHeaderSenderCheck
	if s.Role == RoleSubmission || checkSenders {
		h, e := ss.readHeader(sp)
		if e == nil && checkSenders {
			e = ss.checkHeaderSenders(h, account)
		}
		if e != nil {
			sp.Close()
			ss.endTx(tx, "refused", slog.Int64("size", sp.Size()), slog.Int("code", e.Code))
			return nil, nil, nil, e
		}
		if s.Role == RoleSubmission {
			head = ss.submissionHeaders(head, h)
		}
	}
	return tx, sp, &message{head: head, body: sp}, nil
}

// readError maps a failure while reading the message to its reply.
func (ss *session) readError(err error) *gosmtp.SMTPError {
	var se *gosmtp.SMTPError
	switch {
	case errors.Is(err, errBareNewline):
		return errBareNewlineReply
	case errors.Is(err, errSpoolFull):
		return errSizeExceeded
	case errors.As(err, &se):
		return se // go-smtp's own size limit (552 5.3.4)
	case errors.Is(err, gosmtp.ErrDataReset), errors.Is(err, io.ErrUnexpectedEOF):
		return errReadFailed
	}
	ss.log.Warn("spooling failed", "err", err)
	return errSpoolFailed
}

// deliver hands the message to the agent once per distinct recipient and
// returns one status per accepted RCPT, in order.
func (ss *session) deliver(tx *transaction, msg *message) []delivery.Status {
	env := delivery.Envelope{From: tx.from, ID: tx.id}
	index := make(map[string]int, len(tx.rcpts))
	for _, rc := range tx.rcpts {
		if _, dup := index[rc.addr]; !dup {
			index[rc.addr] = len(env.Recipients)
			env.Recipients = append(env.Recipients, rc.addr)
		}
	}
	got := ss.srv.Agent.Deliver(ss.ctx(), env, msg)
	statuses := make([]delivery.Status, len(tx.rcpts))
	for i, rc := range tx.rcpts {
		j := index[rc.addr]
		if j < len(got) {
			statuses[i] = got[j]
		} else {
			// An agent that returned too few statuses has not confirmed
			// this recipient: never claim it was delivered.
			statuses[i] = delivery.StoreFailed
		}
	}
	return statuses
}

// summarize is the one SMTP reply for a message delivered to several
// recipients (rules in the package comment).
func summarize(tx *transaction, statuses []delivery.Status) *gosmtp.SMTPError {
	var firstTemp, firstPerm *delivery.Status
	ok := 0
	for i := range statuses {
		st := &statuses[i]
		switch {
		case st.OK():
			ok++
		case st.Temporary():
			if firstTemp == nil {
				firstTemp = st
			}
		default:
			if firstPerm == nil {
				firstPerm = st
			}
		}
	}
	switch {
	case ok > 0:
		return smtpErr(250, "2.0.0", "Message accepted, id "+tx.id)
	case firstTemp != nil:
		return statusErr(*firstTemp)
	case firstPerm != nil:
		return statusErr(*firstPerm)
	}
	return smtpErr(451, "4.3.0", "No recipient was delivered, try again later")
}

// logTx writes the one line per transaction.
func (ss *session) logTx(tx *transaction, size int64, statuses []delivery.Status, reply *gosmtp.SMTPError) {
	attrs := []slog.Attr{
		slog.Int64("size", size),
		slog.Int("rcpts", len(tx.rcpts)),
		slog.Int("refused", tx.refused),
	}
	var failed []string
	for i, st := range statuses {
		if !st.OK() {
			failed = append(failed, tx.rcpts[i].addr+": "+st.String())
		}
	}
	if len(failed) > 0 {
		attrs = append(attrs, slog.Any("failed", failed))
	}
	result := "delivered"
	if reply != nil {
		attrs = append(attrs, slog.Int("code", reply.Code))
		if reply.Code/100 != 2 {
			result = "refused"
		} else if len(failed) > 0 {
			result = "partial"
		}
	} else if len(failed) > 0 {
		result = "partial"
		if len(failed) == len(statuses) {
			result = "refused"
		}
	}
	ss.endTx(tx, result, attrs...)
}

// maxLoggedRcpts bounds the recipients named in a transaction's log line;
// the count is always there.
const maxLoggedRcpts = 10

func (ss *session) endTx(tx *transaction, result string, attrs ...slog.Attr) {
	ss.mu.Lock()
	tx.done = true
	user := ""
	if ss.account != nil {
		user = ss.account.Address
	}
	ss.mu.Unlock()
	to := make([]string, 0, min(len(tx.rcpts), maxLoggedRcpts))
	for _, rc := range tx.rcpts[:min(len(tx.rcpts), maxLoggedRcpts)] {
		to = append(to, rc.addr)
	}
	base := []slog.Attr{
		slog.String("tx", tx.id),
		slog.String("result", result),
		slog.String("helo", cleanHelo(ss.conn.Hostname())),
		slog.String("from", tx.from),
		slog.Any("to", to),
		slog.Duration("duration", time.Since(tx.start)),
	}
	if user != "" {
		base = append(base, slog.String("user", user))
	}
	if st, ok := ss.tlsState(); ok {
		base = append(base, slog.String("tls", tlsVersion(st.Version)))
	}
	ss.log.LogAttrs(ss.ctx(), slog.LevelInfo, "transaction", append(base, attrs...)...)
}
