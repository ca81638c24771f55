package smtp

import (
	"errors"
	"io"
	"log/slog"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/inbound"
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
	defer ss.tc.dataDone()
	tx, sp, msg, e := ss.receive(r)
	if e != nil {
		return e
	}
	defer sp.Close()
	v, msg, refusal := ss.runChecks(tx, msg)
	if refusal != nil {
		ss.endTx(tx, "refused", slog.Int64("size", sp.Size()), slog.Int("code", refusal.Code))
		return refusal
	}
	if v != nil && v.Action == inbound.Discard {
		ss.endTx(tx, "discarded", slog.Int64("size", sp.Size()))
		return smtpErr(250, "2.0.0", "Message accepted, id "+tx.id)
	}
	outcomes := ss.deliver(tx, msg, v, true)
	reply := summarize(tx, outcomes)
	if tx.limit != nil && (reply == nil || reply.Code/100 == 2) {
		tx.limit.Commit()
	}
	ss.logTx(tx, msg.Size(), outcomes, reply)
	return reply
}

// LMTPData receives a message over LMTP and answers per recipient.
func (ss *session) LMTPData(r io.Reader, sc gosmtp.StatusCollector) error {
	defer ss.tc.dataDone()
	tx, sp, msg, e := ss.receive(r)
	if e != nil {
		return e
	}
	defer sp.Close()
	v, msg, refusal := ss.runChecks(tx, msg)
	if refusal != nil || (v != nil && v.Action == inbound.Discard) {
		result, reply := "refused", refusal
		if refusal == nil {
			result, reply = "discarded", smtpErr(250, "2.0.0", "Message accepted, id "+tx.id)
		}
		for _, rc := range tx.rcpts {
			sc.SetStatus(rc.raw, reply)
		}
		ss.endTx(tx, result, slog.Int64("size", sp.Size()), slog.Int("code", reply.Code))
		return nil
	}
	outcomes := ss.deliver(tx, msg, v, false)
	for i, rc := range tx.rcpts {
		sc.SetStatus(rc.raw, Reply(outcomes[i]))
	}
	ss.logTx(tx, msg.Size(), outcomes, nil)
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
	// The transfer is bounded by the gate's max_data; delivery is not.
	ss.tc.beginData()
	_, err := io.Copy(sp, r)
	if err == nil {
		ss.tc.endData()
		err = sp.finish()
	}
	if err != nil {
		sp.Close()
		e := ss.readError(err)
		ss.endTx(tx, "refused", slog.Int64("size", sp.Size()), slog.Int("code", e.Code), slog.String("err", err.Error()))
		return nil, nil, nil, e
	}
	// A message whose first line is folded (starts with a space or tab)
	// continues a field that does not exist: prepended to it, our
	// Received field would swallow that line. RFC 5322 allows no such
	// message, so it is refused rather than repaired.
	var first [1]byte
	if n, _ := sp.ReadAt(first[:], 0); n == 1 && (first[0] == ' ' || first[0] == '\t') {
		sp.Close()
		ss.endTx(tx, "refused", slog.Int64("size", sp.Size()), slog.Int("code", errBadHeader.Code))
		return nil, nil, nil, errBadHeader
	}
	var head []byte
	env := ss.envelope(tx)
	head = ss.received(head, &env, tx)
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

// deliver hands the message and what RCPT resolved to the agent, once per
// distinct recipient, and returns one outcome per accepted RCPT, in order.
func (ss *session) deliver(tx *transaction, msg *message, v *inbound.Verdict, oneReply bool) []delivery.Outcome {
	env := ss.envelope(tx)
	env.OneReply = oneReply
	if v != nil {
		dv := v.Verdict
		env.Verdict = &dv
	}
	index := make(map[string]int, len(tx.rcpts))
	for _, rc := range tx.rcpts {
		if _, dup := index[rc.addr]; !dup {
			index[rc.addr] = len(env.Recipients)
			env.Recipients = append(env.Recipients, rc.resolved)
		}
	}
	got := ss.srv.Agent.Deliver(ss.ctx(), env, msg)
	outcomes := make([]delivery.Outcome, len(tx.rcpts))
	for i, rc := range tx.rcpts {
		j := index[rc.addr]
		if j < len(got) {
			outcomes[i] = got[j]
		} else {
			// An agent that returned too few outcomes has not confirmed
			// this recipient: never claim it was delivered.
			outcomes[i] = delivery.Temp(delivery.StoreFailed)
		}
	}
	return outcomes
}

// envelope is the transaction with the facts of its arrival.
func (ss *session) envelope(tx *transaction) delivery.Envelope {
	env := delivery.Envelope{
		ID: tx.id, From: tx.from, ClientIP: ss.tc.ip, Helo: cleanHelo(ss.conn.Hostname()),
		Role: ss.srv.Role.String(), Received: tx.start, RequireTLS: tx.requireTLS,
	}
	ss.mu.Lock()
	if ss.account != nil {
		env.User = ss.account.Address
	}
	ss.mu.Unlock()
	if st, ok := ss.tlsState(); ok {
		env.TLS = tlsVersion(st.Version)
	}
	return env
}

// summarize is the one SMTP reply for a message delivered to several
// recipients (rules in the package comment). The agent has already queued
// the failures of a partly successful message, so a failure here means
// nobody got it.
func summarize(tx *transaction, outcomes []delivery.Outcome) *gosmtp.SMTPError {
	var firstTemp, firstPerm *delivery.Outcome
	ok := 0
	for i := range outcomes {
		o := &outcomes[i]
		switch {
		case o.OK():
			ok++
		case o.Kind == delivery.Temporary:
			if firstTemp == nil {
				firstTemp = o
			}
		default:
			if firstPerm == nil {
				firstPerm = o
			}
		}
	}
	switch {
	case ok > 0:
		return smtpErr(250, "2.0.0", "Message accepted, id "+tx.id)
	case firstTemp != nil:
		return Reply(*firstTemp)
	case firstPerm != nil:
		return Reply(*firstPerm)
	}
	return smtpErr(451, "4.3.0", "No recipient was delivered, try again later")
}

// logTx writes the one line per transaction.
func (ss *session) logTx(tx *transaction, size int64, outcomes []delivery.Outcome, reply *gosmtp.SMTPError) {
	attrs := []slog.Attr{
		slog.Int64("size", size),
		slog.Int("rcpts", len(tx.rcpts)),
		slog.Int("refused", tx.refused),
	}
	var failed []string
	queued := 0
	for i, o := range outcomes {
		if o.Failed() {
			failed = append(failed, tx.rcpts[i].addr+": "+o.String())
		} else if o.Kind == delivery.Queued {
			queued++
		}
	}
	if len(failed) > 0 {
		attrs = append(attrs, slog.Any("failed", failed))
	}
	if queued > 0 {
		attrs = append(attrs, slog.Int("queued", queued))
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
		if len(failed) == len(outcomes) {
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
	if tx.requireTLS {
		base = append(base, slog.Bool("requiretls", true))
	}
	ss.log.LogAttrs(ss.ctx(), slog.LevelInfo, "transaction", append(base, attrs...)...)
}
