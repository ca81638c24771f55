package gate

import (
	"net/netip"
	"time"
)

// Config is the gate's limits. A zero count or duration takes its value
// from DefaultConfig, a negative one turns that limit off; an empty
// ExemptNetworks exempts nothing.
type Config struct {
	// Networks groups client addresses; vmaild sets it from the top-level
	// client_networks key, which the login service shares.
	Networks Networks `yaml:"-"`
	// MaxPerNetwork caps the connections of one client network over every
	// listener together.
	MaxPerNetwork int `yaml:"max_per_network" help:"simultaneous connections from one client network (see client_networks.*), all listeners together; 0: the default, negative: no limit"`
	// ExemptNetworks are client networks the per-network cap does not
	// apply to: a webmail or an IMAP proxy connects from one address for
	// many users. Unparseable entries are ignored (configuration
	// validation names them).
	ExemptNetworks []string `yaml:"exempt_networks" help:"client networks (CIDR) that max_per_network does not apply to, such as a webmail or proxy connecting for many users (like Postfix's smtpd_client_event_limit_exceptions); the other limits still do"`
	// MaxConnections caps all connections of the process.
	MaxConnections int `yaml:"max_connections" help:"simultaneous connections in total, all listeners together; 0: the default, negative: no limit"`
	// MaxUnauthenticated caps the connections that have not logged in
	// yet, so that clients waiting to log in (or guessing) cannot take
	// every slot from logged-in users.
	MaxUnauthenticated int `yaml:"max_unauthenticated" help:"simultaneous connections that have not logged in yet; the MTA and LMTP, whose clients do not log in, are not counted; 0: the default, negative: no limit"`
	// PreAuthLifetime is how long a connection may stay without logging
	// in, however much it sends.
	PreAuthLifetime time.Duration `yaml:"pre_auth_lifetime" help:"a client that has not logged in within this time after connecting is disconnected, however much it sends (not on the MTA and LMTP); 0: the default, negative: no limit"`
	// MaxSession is the longest a connection may last.
	MaxSession time.Duration `yaml:"max_session" help:"longest connection, logged in or not (IMAP clients in IDLE reconnect after it); 0: the default, negative: no limit"`
	// MaxData is the longest an SMTP or LMTP message transfer (DATA, or
	// BDAT up to LAST) may take.
	MaxData time.Duration `yaml:"max_data" help:"longest SMTP/LMTP message transfer (DATA, or all BDAT chunks); 0: the default, negative: no limit"`
	// CommandDeadline is the time an SMTP command line has to arrive
	// whole, waiting for it included, like Postfix's
	// smtpd_per_record_deadline: a client dripping a byte at a time cannot
	// stretch it.
	CommandDeadline time.Duration `yaml:"command_deadline" help:"time for a whole SMTP/LMTP command line to arrive, the wait before it included (like Postfix's smtpd_per_record_deadline); 0: the default, negative: no limit"`
}

// DefaultConfig is the limits of the zero Config, chosen for an ISP:
//
//   - 50 connections per client network: every listener shares the cap,
//     and a household or office behind one IPv4 address runs several mail
//     clients that each keep a few IMAP connections open (Postfix's
//     smtpd_client_connection_count_limit is 50 too); loopback, where a
//     webmail runs, is exempt (the zero Config exempts nothing);
//   - 10000 connections in total, of which at most 2000 not logged in:
//     logged-in users and the MTA keep room when clients that cannot or do
//     not log in pile up;
//   - 60 s to log in: a client logs in within a second or two, a slow
//     mobile one within a few;
//   - 24 hours per connection: an SMTP session is minutes at most, but an
//     IMAP client in IDLE legitimately stays for hours, and the other
//     limits already end a client that merely holds a slot;
//   - 10 minutes per message transfer, RFC 5321's DATA timeout;
//   - 5 minutes per SMTP command line, RFC 5321's command timeout, now
//     for the whole line rather than for each byte.
func DefaultConfig() Config {
	return Config{
		Networks:           Networks{IPv4Prefix: DefaultIPv4Prefix, IPv6Prefix: DefaultIPv6Prefix},
		MaxPerNetwork:      50,
		ExemptNetworks:     []string{"127.0.0.0/8", "::1/128"},
		MaxConnections:     10000,
		MaxUnauthenticated: 2000,
		PreAuthLifetime:    time.Minute,
		MaxSession:         24 * time.Hour,
		MaxData:            10 * time.Minute,
		CommandDeadline:    5 * time.Minute,
	}
}

// effective replaces zero fields by the defaults and negative ones by zero,
// which the gate reads as "no limit".
func (c Config) effective() Config {
	d := DefaultConfig()
	count := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	dur := func(v, def time.Duration) time.Duration {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	return Config{
		Networks:           c.Networks,
		MaxPerNetwork:      count(c.MaxPerNetwork, d.MaxPerNetwork),
		ExemptNetworks:     c.ExemptNetworks,
		MaxConnections:     count(c.MaxConnections, d.MaxConnections),
		MaxUnauthenticated: count(c.MaxUnauthenticated, d.MaxUnauthenticated),
		PreAuthLifetime:    dur(c.PreAuthLifetime, d.PreAuthLifetime),
		MaxSession:         dur(c.MaxSession, d.MaxSession),
		MaxData:            dur(c.MaxData, d.MaxData),
		CommandDeadline:    dur(c.CommandDeadline, d.CommandDeadline),
	}
}

// exempt parses ExemptNetworks, skipping what does not parse.
func (c Config) exempt() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.ExemptNetworks {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// Reason names the limit that refused or ended a connection, as its
// configuration key does; logs and metrics use it as it is.
type Reason string

// The limits. Shutdown is not one: it ends idle connections when the gate
// shuts down and is neither logged nor counted as a refusal.
const (
	LimitNetwork         Reason = "max_per_network"
	LimitTotal           Reason = "max_connections"
	LimitUnauthenticated Reason = "max_unauthenticated"
	LimitPreAuth         Reason = "pre_auth_lifetime"
	LimitSession         Reason = "max_session"
	LimitData            Reason = "max_data"
	Shutdown             Reason = "shutdown"
)

// Text is what a client is told, in the protocol's refusal or goodbye.
func (r Reason) Text() string {
	switch r {
	case LimitNetwork:
		return "Too many connections from your network, try again later"
	case LimitTotal:
		return "Too many connections, try again later"
	case LimitUnauthenticated:
		return "Too many connections waiting to log in, try again later"
	case LimitPreAuth:
		return "Login time exceeded, closing connection"
	case LimitSession:
		return "Session time limit reached, closing connection"
	case LimitData:
		return "Message transfer took too long, closing connection"
	case Shutdown:
		return "Server shutting down, try again later"
	}
	return "Connection limit reached"
}
