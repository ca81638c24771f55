package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/inbound"
	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/protocols/sendlimit"
	"github.com/vmaild/vmaild/userdb"
)

// metrics are the daemon's Prometheus series. They are collected at the
// seams (the directory, the agent, the listeners, the queue) by wrappers,
// so no protocol package knows about Prometheus.
type metrics struct {
	reg         *prometheus.Registry
	connections *prometheus.CounterVec
	open        *prometheus.GaugeVec
	refusals    *prometheus.CounterVec
	messages    *prometheus.CounterVec
	dirLatency  *prometheus.HistogramVec
	sendLimits  *prometheus.CounterVec
	checks      *prometheus.CounterVec
	screens     *prometheus.CounterVec
	checkTime   *prometheus.HistogramVec
	verdicts    *prometheus.CounterVec
}

func newMetrics(s *server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.connections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmaild_connections_total", Help: "Connections accepted, by listener."}, []string{"listener"})
	m.open = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vmaild_connections_open", Help: "Connections open now, by listener."}, []string{"listener"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmaild_connections_refused_total",
		Help: "Connections refused by the gate or ended by one of its limits, by listener and limit (max_per_network, max_connections, max_unauthenticated, pre_auth_lifetime, max_session, max_data)."},
		[]string{"listener", "reason"})
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmaild_messages_total", Help: "Recipients of messages by outcome (delivered, queued, rejected, deferred, bounced)."}, []string{"outcome"})
	m.dirLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vmaild_directory_seconds", Help: "User directory call latency, by operation (cache included).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9)}, []string{"op"})
	m.sendLimits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmaild_send_limit_refusals_total",
		Help: "MAIL and RCPT of authenticated senders refused by a sending limit, by limit (messages_per_hour, recipients_per_message, recipients_per_hour) and scope (account, domain)."},
		[]string{"limit", "scope"})
	m.screens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmaild_screen_results_total",
		Help: "RCPT screens of unauthenticated MTA clients (dnsbl, greylist), by screen and result (pass, defer, refuse)."},
		[]string{"screen", "result"})
	m.checks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmaild_inbound_checks_total",
		Help: "Inbound checks run at the end of DATA, by check (clamd, rspamd, spamd, a milter's name) and result (accept, junk, discard, tempfail, reject, error, timeout, skipped)."},
		[]string{"check", "result"})
	m.checkTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vmaild_inbound_check_seconds", Help: "Inbound check latency, by check.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, []string{"check"})
	m.verdicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmaild_inbound_verdicts_total", Help: "Messages checked at the end of DATA, by action (accept, junk, discard, tempfail, reject)."},
		[]string{"action"})
	m.reg.MustRegister(m.connections, m.open, m.refusals, m.messages, m.dirLatency, m.sendLimits, m.screens, m.checks, m.checkTime, m.verdicts,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vmaild_queue_messages", Help: "Messages in the outbound queue."},
		func() float64 { return float64(s.queue.Stats().Items) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vmaild_queue_bounced_total", Help: "Queued recipients that failed permanently (a DSN was sent)."},
		func() float64 { return float64(s.queue.Stats().Failed) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vmaild_queue_delivered_total", Help: "Queued recipients delivered to remote servers."},
		func() float64 { return float64(s.queue.Stats().Delivered) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vmaild_queue_deferred_total", Help: "Queued delivery attempts deferred for a retry."},
		func() float64 { return float64(s.queue.Stats().Deferred) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vmaild_directory_cache_hits_total", Help: "Directory lookups answered by the cache."},
		func() float64 { h, _ := s.dir.cache.Stats(); return float64(h) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vmaild_directory_cache_misses_total", Help: "Directory lookups that went to the backend."},
		func() float64 { _, mi := s.dir.cache.Stats(); return float64(mi) }))
	m.registerLogin(s)
	return m
}

// sendLimitRefused counts a refusal of the sending limits.
func (m *metrics) sendLimitRefused(r *sendlimit.Refusal) {
	scope := "account"
	if strings.HasPrefix(r.Key, "@") {
		scope = "domain"
	}
	m.sendLimits.WithLabelValues(r.Limit, scope).Inc()
}

// registerLogin exposes the login service's counters, read from its
// Stats at scrape time like the queue's.
func (m *metrics) registerLogin(s *server) {
	stats := func() login.Stats { return s.logins.Stats() }
	const attemptsHelp = "Login attempts (SMTP AUTH, IMAP LOGIN/AUTHENTICATE, POP3) by result: ok, failed (wrong password, unknown user, disabled), busy (no room to verify), unavailable (directory down), cancelled (client left while delayed or queued)."
	for result, get := range map[string]func(login.Stats) uint64{
		"ok":          func(st login.Stats) uint64 { return st.OK },
		"failed":      func(st login.Stats) uint64 { return st.Failed },
		"busy":        func(st login.Stats) uint64 { return st.Busy },
		"unavailable": func(st login.Stats) uint64 { return st.Unavailable },
		"cancelled":   func(st login.Stats) uint64 { return st.Cancelled },
	} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vmaild_authentications_total", Help: attemptsHelp, ConstLabels: prometheus.Labels{"result": result}},
			func() float64 { return float64(get(stats())) }))
	}
	counters := []struct {
		name, help string
		get        func(login.Stats) float64
	}{
		{"vmaild_login_verifications_total", "Password hash verifications run, dummy ones included.",
			func(st login.Stats) float64 { return float64(st.Verifications) }},
		{"vmaild_login_dummy_verifications_total", "Dummy verifications run for refusals that verified nothing (unknown users), so timing does not tell.",
			func(st login.Stats) float64 { return float64(st.Dummies) }},
		{"vmaild_login_refused_busy_total", "Verifications refused for want of a slot or a queue place (login.max_concurrent_verifications, login.max_waiting).",
			func(st login.Stats) float64 { return float64(st.Refused) }},
		{"vmaild_login_penalties_total", "Login attempts delayed for recent failures of their account or client network.",
			func(st login.Stats) float64 { return float64(st.Penalties) }},
		{"vmaild_login_penalty_seconds_total", "Time login attempts were delayed for, in all.",
			func(st login.Stats) float64 { return st.PenaltyTime.Seconds() }},
	}
	for _, c := range counters {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return c.get(stats()) }))
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vmaild_login_verifying", Help: "Password verifications running now."},
		func() float64 { return float64(stats().Verifying) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vmaild_login_waiting", Help: "Logins queued for a verification slot now."},
		func() float64 { return float64(stats().Waiting) }))
}

// listener counts connections of one listener.
func (m *metrics) listener(name string, l net.Listener) net.Listener {
	return countingListener{Listener: l, total: m.connections.WithLabelValues(name), open: m.open.WithLabelValues(name)}
}

// refused counts a refusal of the gate; the gate calls it for every
// listener.
func (m *metrics) refused(listener string, r gate.Reason) {
	m.refusals.WithLabelValues(listener, string(r)).Inc()
}

type countingListener struct {
	net.Listener
	total prometheus.Counter
	open  prometheus.Gauge
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.total.Inc()
	l.open.Inc()
	return &countingConn{Conn: c, open: l.open}, nil
}

type countingConn struct {
	net.Conn
	open   prometheus.Gauge
	closed bool
}

func (c *countingConn) Close() error {
	if !c.closed {
		c.closed = true
		c.open.Dec()
	}
	return c.Conn.Close()
}

// instrumentedDirectory times every directory call.
type instrumentedDirectory struct {
	userdb.Directory
	m *metrics
}

func (d instrumentedDirectory) observe(op string, start time.Time) {
	d.m.dirLatency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (d instrumentedDirectory) Authenticate(ctx context.Context, login, password string) (*userdb.Account, error) {
	defer d.observe("authenticate", time.Now())
	return d.Directory.Authenticate(ctx, login, password)
}

func (d instrumentedDirectory) Account(ctx context.Context, address string) (*userdb.Account, error) {
	defer d.observe("account", time.Now())
	return d.Directory.Account(ctx, address)
}

func (d instrumentedDirectory) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	defer d.observe("domain", time.Now())
	return d.Directory.IsLocalDomain(ctx, domain)
}

func (d instrumentedDirectory) MaySendAs(ctx context.Context, account, address string) (bool, error) {
	defer d.observe("may_send_as", time.Now())
	return d.Directory.MaySendAs(ctx, account, address)
}

func (d instrumentedDirectory) Resolve(ctx context.Context, address string) ([]userdb.Destination, error) {
	defer d.observe("resolve", time.Now())
	return d.Directory.Resolve(ctx, address)
}

func (d instrumentedDirectory) QuotaLimit(ctx context.Context, address string) (userdb.Limit, error) {
	defer d.observe("quota", time.Now())
	return d.Directory.QuotaLimit(ctx, address)
}

// instrumentedAgent counts delivery outcomes per recipient.
type instrumentedAgent struct {
	delivery.Agent
	m *metrics
}

func (a instrumentedAgent) Resolve(ctx context.Context, rcpt string) (delivery.Recipient, delivery.Outcome) {
	rc, o := a.Agent.Resolve(ctx, rcpt)
	if o.Failed() {
		a.m.messages.WithLabelValues(outcome(o)).Inc()
	}
	return rc, o
}

func (a instrumentedAgent) Deliver(ctx context.Context, env delivery.Envelope, msg delivery.Message) []delivery.Outcome {
	outs := a.Agent.Deliver(ctx, env, msg)
	for _, o := range outs {
		a.m.messages.WithLabelValues(outcome(o)).Inc()
	}
	return outs
}

func outcome(o delivery.Outcome) string {
	switch o.Kind {
	case delivery.Queued:
		return "queued"
	case delivery.Accepted, delivery.Delivered:
		return "delivered"
	case delivery.Temporary:
		return "deferred"
	}
	return "rejected"
}

// serveMetrics runs /metrics and /healthz on their own listener.
func (s *server) serveMetrics(ln net.Listener) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := s.health(ctx); err != nil {
			// One line per failed check, each naming the check.
			http.Error(w, "unhealthy:\n"+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener", "err", err)
		}
	}()
	return hs
}

// inbound is the observer of the checks at the end of DATA.
func (m *metrics) inbound() inbound.Observer { return inboundMetrics{m} }

type inboundMetrics struct{ m *metrics }

func (o inboundMetrics) CheckDone(check, result string, d time.Duration) {
	o.m.checks.WithLabelValues(check, result).Inc()
	o.m.checkTime.WithLabelValues(check).Observe(d.Seconds())
}

func (o inboundMetrics) VerdictDone(v *inbound.Verdict) {
	o.m.verdicts.WithLabelValues(v.Action.String()).Inc()
}

// screened counts one RCPT screen's result.
func (m *metrics) screened(screen, result string) {
	m.screens.WithLabelValues(screen, result).Inc()
}
