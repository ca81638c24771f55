package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/vmaild/vmaild/protocols/autoconfig"
	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/userdb"
)

// AutoconfigConfig is the client autoconfiguration listener (package
// protocols/autoconfig): Thunderbird autoconfig, Outlook autodiscover and an
// Apple profile, derived from the listeners below.
type AutoconfigConfig struct {
	Address string `yaml:"address" help:"host:port of the HTTP listener serving Thunderbird's /mail/config-v1.1.xml and /.well-known/autoconfig/mail/config-v1.1.xml, Outlook's /autodiscover/autodiscover.xml and Apple's /apple/mobileconfig?emailaddress=…; empty: off"`
	TLS     bool   `yaml:"tls" help:"serve HTTPS with the certificate of tls.* (it must then name autoconfig.DOMAIN and autodiscover.DOMAIN of every domain); false: plain HTTP, as on port 80 or behind a proxy"`
	// Hostname is what clients are told to connect to, when hostname (the
	// greeting name) is not the name in the certificate.
	Hostname string `yaml:"hostname" help:"mail server name announced to clients; it must match the certificate (default: hostname)"`
}

// autoconfigServices are the listeners clients are told about, by
// protocol and TLS mode; smtp (25) and lmtp are not for clients.
var autoconfigServices = []struct {
	name        string
	protocol    string
	implicitTLS bool
}{
	{"imaps", "imap", true}, {"imap", "imap", false},
	{"pop3s", "pop3", true}, {"pop3", "pop3", false},
	{"submissions", "smtp", true}, {"submission", "smtp", false},
}

// autoconfigSettings derives what clients are told from the configured
// listeners: each enabled one, on its public_port or else the port of its
// address, at autoconfig.hostname or else hostname.
func (c *Config) autoconfigSettings() autoconfig.Settings {
	s := autoconfig.Settings{Hostname: c.Autoconfig.Hostname}
	if s.Hostname == "" {
		s.Hostname = c.Hostname
	}
	for _, sv := range autoconfigServices {
		port, err := c.listener(sv.name).clientPort()
		if err != nil || port == 0 {
			continue
		}
		s.Services = append(s.Services, autoconfig.Service{Protocol: sv.protocol, Port: port, ImplicitTLS: sv.implicitTLS})
	}
	return s
}

// clientPort is the port clients reach the listener on; 0 when it is off.
func (l Listener) clientPort() (int, error) {
	if l.Address == "" {
		return 0, nil
	}
	if l.PublicPort != 0 {
		return l.PublicPort, nil
	}
	_, p, err := net.SplitHostPort(l.Address)
	if err != nil {
		return 0, fmt.Errorf("address %q: %w", l.Address, err)
	}
	port, err := net.LookupPort("tcp", p)
	if err != nil {
		return 0, fmt.Errorf("address %q: %w", l.Address, err)
	}
	return port, nil
}

// validateAutoconfig checks the autoconfig section and the listener ports
// it would announce.
func (c *Config) validateAutoconfig() []string {
	var problems []string
	if c.Autoconfig.Hostname != "" {
		if _, err := userdb.CanonicalDomain(c.Autoconfig.Hostname); err != nil {
			problems = append(problems, fmt.Sprintf("autoconfig.hostname: %q is not a host name", c.Autoconfig.Hostname))
		}
	}
	for _, sp := range (&server{cfg: *c}).specs() {
		if p := sp.l.PublicPort; p < 0 || p > 65535 {
			problems = append(problems, fmt.Sprintf("listen.%s.public_port: %d is not a port from 1 to 65535 (0: the port of address)", sp.name, p))
		}
	}
	if c.Autoconfig.Address == "" {
		return problems
	}
	if _, _, err := net.SplitHostPort(c.Autoconfig.Address); err != nil {
		problems = append(problems, fmt.Sprintf("autoconfig.address: %q is not host:port: %v", c.Autoconfig.Address, err))
	}
	for _, sv := range autoconfigServices {
		if _, err := c.listener(sv.name).clientPort(); err != nil {
			problems = append(problems, fmt.Sprintf("listen.%s: autoconfig cannot announce it: %v", sv.name, err))
		}
	}
	return problems
}

// listener is the configured listener of that name; the names are
// server.specs'.
func (c *Config) listener(name string) Listener {
	for _, sp := range (&server{cfg: *c}).specs() {
		if sp.name == name {
			return sp.l
		}
	}
	return Listener{}
}

func (s *server) bindAutoconfig() error {
	if s.cfg.Autoconfig.Address == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Autoconfig.Address)
	if err != nil {
		return fmt.Errorf("listen autoconfig on %s: %w", s.cfg.Autoconfig.Address, err)
	}
	s.bound["autoconfig"] = ln
	return nil
}

// serveAutoconfig runs the autoconfiguration listener; the domains it
// answers for are the directory's.
func (s *server) serveAutoconfig(ln net.Listener) *http.Server {
	log := s.log.With("listener", "autoconfig")
	settings := s.cfg.autoconfigSettings()
	h := &autoconfig.Handler{Settings: settings, IsLocalDomain: s.directory.IsLocalDomain, Logger: log}
	hs := autoconfig.NewServer(h, log)
	// Behind the gate like every listener: its per-network and global
	// caps bound what one client can hold open here too.
	gl, err := s.gate.Listen(ln, gate.Service{Name: "autoconfig", NoLogin: true})
	if err != nil {
		log.Error("autoconfig listener", "err", err)
		return hs
	}
	serve := func() error { return hs.Serve(gl) }
	if s.cfg.Autoconfig.TLS {
		hs.TLSConfig = s.tls.Clone()
		serve = func() error { return hs.ServeTLS(gl, "", "") }
	}
	go func() {
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("autoconfig listener", "err", err)
		}
	}()
	var announced []string
	for _, sv := range settings.Services {
		announced = append(announced, sv.Protocol+":"+strconv.Itoa(sv.Port))
	}
	log.Info("listening", "address", ln.Addr().String(), "tls", s.cfg.Autoconfig.TLS,
		"server", settings.Hostname, "announced", announced)
	return hs
}
