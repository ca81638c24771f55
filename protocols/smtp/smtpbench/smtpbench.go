// Package smtpbench is the load generator behind `vmaild bench smtp`: it
// sends Count messages over Concurrency SMTP connections (each reused for
// many messages, optionally with STARTTLS or implicit TLS and AUTH PLAIN)
// and reports throughput and per-message latency percentiles, measured from
// MAIL to the final reply to the message.
package smtpbench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gosasl "github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// Options describe one run. Zero values have defaults, except Addr, From
// and To.
type Options struct {
	// Addr is host:port of the server.
	Addr string
	// From is the envelope sender ("" sends the null sender <>).
	From string
	// To are the recipients of every message.
	To []string
	// Count is the number of messages to send (default 1000).
	Count int
	// Concurrency is the number of connections (default 1).
	Concurrency int
	// Size is the approximate message size in bytes (default 1024).
	Size int
	// TLS, when set, secures each connection with STARTTLS, or with
	// implicit TLS when ImplicitTLS is set.
	TLS         *tls.Config
	ImplicitTLS bool
	// Auth, when set, authenticates each connection with AUTH PLAIN.
	Auth *Auth
	// Hello is the EHLO name (default "smtpbench.invalid").
	Hello string
}

// Auth is a login for AUTH PLAIN.
type Auth struct {
	Username string
	Password string
}

// Result is what a run achieved.
type Result struct {
	// Messages is the number of messages the server accepted with 250.
	Messages int
	// Errors is the number of messages that failed (refused, or lost with
	// their connection).
	Errors int
	// FirstError is the first failure, to tell the operator why.
	FirstError error
	// Duration is the wall time of the whole run.
	Duration time.Duration
	// PerSecond is accepted messages per second of Duration.
	PerSecond float64
	// P50, P90 and P99 are percentiles of the latency of accepted messages.
	P50, P90, P99 time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("%d messages in %v (%.0f/s), %d errors, latency p50 %v p90 %v p99 %v",
		r.Messages, r.Duration.Round(time.Millisecond), r.PerSecond, r.Errors,
		r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond), r.P99.Round(time.Microsecond))
}

// Run sends the messages and reports. It returns an error for unusable
// options, when ctx ends (with what was achieved so far), or when not a
// single message was accepted.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Addr == "" || len(o.To) == 0 {
		return Result{}, errors.New("smtpbench: Addr and To are required")
	}
	if o.Count <= 0 {
		o.Count = 1000
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	o.Concurrency = min(o.Concurrency, o.Count)
	if o.Size <= 0 {
		o.Size = 1024
	}
	if o.Hello == "" {
		o.Hello = "smtpbench.invalid"
	}
	if o.ImplicitTLS && o.TLS == nil {
		return Result{}, errors.New("smtpbench: ImplicitTLS needs a TLS config")
	}
	body := makeMessage(o)

	var (
		next      atomic.Int64
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, o.Count)
		errs      int
		firstErr  error
	)
	fail := func(err error) {
		mu.Lock()
		errs++
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := worker{o: o, body: body}
			defer w.close()
			for ctx.Err() == nil && next.Add(1) <= int64(o.Count) {
				d, err := w.send(ctx)
				if err != nil {
					fail(err)
					continue
				}
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r := Result{Messages: len(latencies), Errors: errs, FirstError: firstErr, Duration: time.Since(start)}
	if r.Duration > 0 {
		r.PerSecond = float64(r.Messages) / r.Duration.Seconds()
	}
	slices.Sort(latencies)
	r.P50, r.P90, r.P99 = percentile(latencies, 0.50), percentile(latencies, 0.90), percentile(latencies, 0.99)
	switch {
	case ctx.Err() != nil:
		return r, ctx.Err()
	case r.Messages == 0 && firstErr != nil:
		return r, fmt.Errorf("smtpbench: no message accepted: %w", firstErr)
	}
	return r, nil
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// makeMessage builds a plain-text message of about o.Size bytes.
func makeMessage(o Options) []byte {
	var b strings.Builder
	from := o.From
	if from == "" {
		from = "smtpbench@invalid"
	}
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: smtpbench\r\nDate: %s\r\nMessage-ID: <smtpbench.%d@invalid>\r\n\r\n",
		from, o.To[0], time.Now().Format("Mon, 02 Jan 2006 15:04:05 -0700"), time.Now().UnixNano())
	const line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
	for b.Len() < o.Size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

// worker owns one connection and redials after a failure.
type worker struct {
	o    Options
	body []byte
	c    *gosmtp.Client
}

func (w *worker) close() {
	if w.c != nil {
		w.c.Quit()
		w.c.Close()
		w.c = nil
	}
}

func (w *worker) dial(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", w.o.Addr)
	if err != nil {
		return err
	}
	var c *gosmtp.Client
	switch {
	case w.o.ImplicitTLS:
		c = gosmtp.NewClient(tls.Client(conn, w.o.TLS))
	case w.o.TLS != nil:
		c, err = gosmtp.NewClientStartTLS(conn, w.o.TLS)
		if err != nil {
			conn.Close()
			return err
		}
	default:
		c = gosmtp.NewClient(conn)
	}
	if err := c.Hello(w.o.Hello); err != nil {
		c.Close()
		return err
	}
	if w.o.Auth != nil {
		if err := c.Auth(gosasl.NewPlainClient("", w.o.Auth.Username, w.o.Auth.Password)); err != nil {
			c.Close()
			return err
		}
	}
	w.c = c
	return nil
}

// send delivers one message and returns its latency.
func (w *worker) send(ctx context.Context) (time.Duration, error) {
	if w.c == nil {
		if err := w.dial(ctx); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	err := w.transaction()
	if err != nil {
		var se *gosmtp.SMTPError
		if errors.As(err, &se) && se.Code != 421 {
			// A refusal leaves the connection usable.
			w.c.Reset()
		} else {
			w.c.Close()
			w.c = nil
		}
		return 0, err
	}
	return time.Since(start), nil
}

func (w *worker) transaction() error {
	c := w.c
	if err := c.Mail(w.o.From, nil); err != nil {
		return err
	}
	for _, to := range w.o.To {
		if err := c.Rcpt(to, nil); err != nil {
			return err
		}
	}
	wc, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := wc.Write(w.body); err != nil {
		wc.Close()
		return err
	}
	return wc.Close()
}
