package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/vmaild/vmaild/backend/mtasts"
	"github.com/vmaild/vmaild/backend/queue"
	"github.com/vmaild/vmaild/protocols/gate"
)

// OutboundTLS is the queue's TLS policy towards other servers (package
// queue, tlspolicy.go).
type OutboundTLS struct {
	Policy []string `yaml:"policy" help:"per-destination TLS levels, like Postfix's smtp_tls_policy_maps: entries \"DESTINATION LEVEL\", DESTINATION a domain or .domain (every domain below it), LEVEL none, may, encrypt (TLS required, any certificate), verify (TLS required, certificate valid for the MX name) or dane (TLSA records when DNSSEC-validated, else may); a listed destination skips the automatic policy: DANE, else MTA-STS, else may"`
	DANE   bool     `yaml:"dane" help:"authenticate MX hosts by their TLSA records (RFC 7672), trusted only when queue.resolver validated them (AD bit): point it at a validating resolver (unbound) on a trusted path"`
	MTASTS bool     `yaml:"mta_sts" help:"honour destination domains' MTA-STS policies (RFC 8461), fetched over HTTPS and cached for their max_age: enforce defers mail that cannot go over verified TLS to a listed MX, testing delivers and logs"`
}

// MTASTSConfig is our own MTA-STS policy (RFC 8461), served for every
// hosted domain.
type MTASTSConfig struct {
	Address string        `yaml:"address" help:"host:port of the listener serving https://mta-sts.DOMAIN/.well-known/mta-sts.txt for every hosted domain (other names: 404); empty: off. Publish _mta-sts.DOMAIN TXT \"v=STSv1; id=…\" and change the id whenever the policy changes"`
	TLS     bool          `yaml:"tls" help:"serve HTTPS with the certificate of tls.* (it must then name mta-sts.DOMAIN of every domain, as senders check it); false: plain HTTP behind a proxy that terminates TLS"`
	Mode    string        `yaml:"mode" help:"policy mode: testing (senders report failures but deliver), enforce (senders deliver only over verified TLS to an MX below) or none (withdraws the policy)"`
	MX      []string      `yaml:"mx" help:"MX host names senders may deliver to, or *.suffix patterns (default: hostname); each must have a certificate valid for its name"`
	MaxAge  time.Duration `yaml:"max_age" help:"how long senders cache the policy (at most about a year); a week or more is usual once the policy is settled"`
}

// policy is the policy file this configuration serves.
func (c *MTASTSConfig) policy(hostname string) mtasts.Policy {
	mx := c.MX
	if len(mx) == 0 {
		mx = []string{hostname}
	}
	return mtasts.Policy{Mode: mtasts.Mode(c.Mode), MX: mx, MaxAge: c.MaxAge}
}

// validateTLSPolicy checks queue.tls and mta_sts. The served policy is
// checked by reading it back with the parser senders' policies go
// through, so what we publish is what we would accept.
func (c *Config) validateTLSPolicy() []string {
	var problems []string
	if _, err := queue.ParseTLSPolicyTable(c.Queue.TLS.Policy); err != nil {
		problems = append(problems, "queue.tls.policy: "+err.Error())
	}
	m := c.MTASTS
	if m.Address == "" {
		return problems
	}
	if _, _, err := net.SplitHostPort(m.Address); err != nil {
		problems = append(problems, fmt.Sprintf("mta_sts.address: %q is not host:port: %v", m.Address, err))
	}
	if m.MaxAge < time.Second || m.MaxAge > mtasts.MaxAge {
		problems = append(problems, fmt.Sprintf("mta_sts.max_age: %v is not from 1s to %v", m.MaxAge, mtasts.MaxAge))
		return problems
	}
	p := m.policy(c.Hostname)
	if _, err := mtasts.ParsePolicy(p.Format()); err != nil {
		problems = append(problems, "mta_sts: "+err.Error())
	}
	return problems
}

// queueTLS puts the outbound TLS policy into the queue's configuration;
// the configuration was validated.
func (c *QueueConfig) queueTLS(qc *queue.Config) error {
	table, err := queue.ParseTLSPolicyTable(c.TLS.Policy)
	if err != nil {
		return fmt.Errorf("queue.tls.policy: %w", err)
	}
	qc.TLSPolicy = table
	qc.DisableDANE = !c.TLS.DANE
	qc.DisableMTASTS = !c.TLS.MTASTS
	return nil
}

func (s *server) bindMTASTS() error {
	if s.cfg.MTASTS.Address == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.MTASTS.Address)
	if err != nil {
		return fmt.Errorf("listen mta_sts on %s: %w", s.cfg.MTASTS.Address, err)
	}
	s.bound["mta_sts"] = ln
	return nil
}

// serveMTASTS runs the policy listener, behind the gate like the
// autoconfig one; the domains it answers for are the directory's.
func (s *server) serveMTASTS(ln net.Listener) *http.Server {
	log := s.log.With("listener", "mta_sts")
	policy := s.cfg.MTASTS.policy(s.cfg.Hostname)
	h := &mtasts.Handler{Policy: policy, IsHosted: s.directory.IsLocalDomain, Logger: log}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	gl, err := s.gate.Listen(ln, gate.Service{Name: "mta_sts", NoLogin: true})
	if err != nil {
		log.Error("mta_sts listener", "err", err)
		return hs
	}
	serve := func() error { return hs.Serve(gl) }
	if s.cfg.MTASTS.TLS {
		hs.TLSConfig = s.tls.Clone()
		serve = func() error { return hs.ServeTLS(gl, "", "") }
	}
	go func() {
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("mta_sts listener", "err", err)
		}
	}()
	log.Info("listening", "address", ln.Addr().String(), "tls", s.cfg.MTASTS.TLS,
		"mode", policy.Mode, "mx", policy.MX, "max_age", policy.MaxAge)
	return hs
}
