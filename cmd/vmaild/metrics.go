package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/userdb"
)

// metrics are the daemon's Prometheus series. They are collected at the
// seams (the directory, the agent, the listeners, the queue) by wrappers,
// so no protocol package knows about Prometheus.
type metrics struct {
	reg         *prometheus.Registry
	connections *prometheus.CounterVec
	open        *prometheus.GaugeVec
	auths       *prometheus.CounterVec
	messages    *prometheus.CounterVec
	dirLatency  *prometheus.HistogramVec
}

func newMetrics(s *server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.connections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmaild_connections_total", Help: "Connections accepted, by listener."}, []string{"listener"})
	m.open = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vmaild_connections_open", Help: "Connections open now, by listener."}, []string{"listener"})
	m.auths = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmaild_authentications_total", Help: "Authentication attempts by result (ok, failed, unavailable)."}, []string{"result"})
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmaild_messages_total", Help: "Recipients of messages by outcome (delivered, queued, rejected, deferred, bounced)."}, []string{"outcome"})
	m.dirLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vmaild_directory_seconds", Help: "User directory call latency, by operation (cache included).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9)}, []string{"op"})
	m.reg.MustRegister(m.connections, m.open, m.auths, m.messages, m.dirLatency,
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
	return m
}

// listener counts connections of one listener.
func (m *metrics) listener(name string, l net.Listener) net.Listener {
	return countingListener{Listener: l, total: m.connections.WithLabelValues(name), open: m.open.WithLabelValues(name)}
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

// instrumentedDirectory times every directory call and counts logins.
type instrumentedDirectory struct {
	userdb.Directory
	m *metrics
}

func (d instrumentedDirectory) observe(op string, start time.Time) {
	d.m.dirLatency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (d instrumentedDirectory) Authenticate(ctx context.Context, login, password string) (*userdb.Account, error) {
	defer d.observe("authenticate", time.Now())
	acct, err := d.Directory.Authenticate(ctx, login, password)
	switch {
	case err == nil:
		d.m.auths.WithLabelValues("ok").Inc()
	case userdb.Temporary(err):
		d.m.auths.WithLabelValues("unavailable").Inc()
	default:
		d.m.auths.WithLabelValues("failed").Inc()
	}
	return acct, err
}

func (d instrumentedDirectory) Account(ctx context.Context, address string) (*userdb.Account, error) {
	defer d.observe("account", time.Now())
	return d.Directory.Account(ctx, address)
}

func (d instrumentedDirectory) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	defer d.observe("domain", time.Now())
	return d.Directory.IsLocalDomain(ctx, domain)
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

func (a instrumentedAgent) CheckRecipient(ctx context.Context, rcpt string) delivery.Status {
	st := a.Agent.CheckRecipient(ctx, rcpt)
	if !st.OK() {
		a.m.messages.WithLabelValues(outcome(st)).Inc()
	}
	return st
}

func (a instrumentedAgent) Deliver(ctx context.Context, env delivery.Envelope, msg delivery.Message) []delivery.Status {
	sts := a.Agent.Deliver(ctx, env, msg)
	for _, st := range sts {
		a.m.messages.WithLabelValues(outcome(st)).Inc()
	}
	return sts
}

func outcome(st delivery.Status) string {
	switch {
	case st == delivery.Queued:
		return "queued"
	case st.OK():
		return "delivered"
	case st.Temporary():
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
