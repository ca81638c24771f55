package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/go-sql-driver/mysql"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/dkim"
	"github.com/vmaild/vmaild/backend/sieve"
	"github.com/vmaild/vmaild/backend/srs"
	"github.com/vmaild/vmaild/backend/vacation"
	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/ldap"
	"github.com/vmaild/vmaild/userdb/password"
	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

// Config is the whole configuration: one YAML file, every key overridable
// by a VMAILD_* variable and a --key flag. Its zero-config default is the
// embedded one: SQLite and Maildir under the data folder.
type Config struct {
	Hostname string        `yaml:"hostname" help:"name used in greetings, Received headers and DSNs (default: the machine's host name)"`
	DataDir  string        `yaml:"data_dir" help:"folder for the embedded database, mail and queue (also $VMAILD_DATA)"`
	Log      LogConfig     `yaml:"log"`
	UserDB   UserDB        `yaml:"userdb"`
	SQL      sqldir.Config `yaml:"sql"`
	LDAP     ldap.Config   `yaml:"ldap"`

	Listen   Listeners       `yaml:"listen"`
	Limits   gate.Config     `yaml:"limits"`
	TLS      TLSFiles        `yaml:"tls"`
	SMTP     SMTPPolicy      `yaml:"smtp"`
	Store    StoreConfig     `yaml:"store"`
	Queue    QueueConfig     `yaml:"queue"`
	Delivery delivery.Config `yaml:"delivery"`
	Sieve    SieveConfig     `yaml:"sieve"`
	SRS      SRSConfig       `yaml:"srs"`
	DKIM     DKIMConfig      `yaml:"dkim"`
	// DNS is what vmaild dns publishes for hosted domains (dnscmd.go).
	DNS DNSConfig `yaml:"dns"`
	// SendingLimits bounds what authenticated users send (sendlimits.go).
	SendingLimits SendingLimitsConfig `yaml:"sending_limits"`
	// Inbound are the scanners and milters at the end of DATA (inbound.go).
	Inbound InboundConfig `yaml:"inbound"`
	Metrics MetricsConfig `yaml:"metrics"`
	Control ControlConfig `yaml:"control"`
	RunAs   string        `yaml:"run_as" help:"user to switch to after binding the ports when started as root"`
	// ShutdownTimeout bounds how long SIGTERM waits for transactions in
	// flight.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" help:"how long SIGTERM waits for transactions in flight"`

	// ClientNetworks is how client addresses are grouped wherever vmaild
	// counts or limits clients (the login service, the connection gate).
	ClientNetworks gate.Networks `yaml:"client_networks"`
	// Login is the login service shared by every listener.
	Login login.Config `yaml:"login"`

	// Bridge is what the auth bridge's sockets answer (bridge.go).
	Bridge BridgeConfig `yaml:"bridge"`

	// Autoconfig tells mail clients about the listeners (autoconfig.go).
	Autoconfig AutoconfigConfig `yaml:"autoconfig"`
	// MTASTS serves our own MTA-STS policy (mtasts.go).
	MTASTS MTASTSConfig `yaml:"mta_sts"`

	// Inbound trust checks of the smtp listener (inbound.go).
	InboundDNS InboundDNS       `yaml:"inbound_dns"`
	SenderAuth SenderAuthConfig `yaml:"sender_auth"`
	DNSBL      DNSBLConfig      `yaml:"dnsbl"`
	Greylist   GreylistConfig   `yaml:"greylist"`
}

// MetricsConfig is the Prometheus and health-check listener.
type MetricsConfig struct {
	Address string `yaml:"address" help:"host:port serving /metrics and /healthz; empty: off"`
	// MinFreeBytes is the disk floor of /healthz. Below it a delivery may
	// already fail (451) and the next message surely will; 1 GiB leaves
	// room for the messages in flight (20 at the default 50 MiB limit) and
	// time to act.
	MinFreeBytes int64 `yaml:"min_free_bytes" unit:"bytes" help:"/healthz fails when the file system of the data folder, mail store or queue has less space free (for vmaild's user) than this size; 0: no disk check"`
}

// Listeners are the addresses to listen on; an empty address turns a
// listener off.
type Listeners struct {
	SMTP        Listener `yaml:"smtp"`
	Submission  Listener `yaml:"submission"`
	Submissions Listener `yaml:"submissions"`
	LMTP        Listener `yaml:"lmtp"`
	IMAP        Listener `yaml:"imap"`
	IMAPS       Listener `yaml:"imaps"`
	POP3        Listener `yaml:"pop3"`
	POP3S       Listener `yaml:"pop3s"`
	ManageSieve Listener `yaml:"managesieve"`
	// The auth bridge's sockets (bridge.go), for a Postfix or Exim in
	// front.
	DovecotAuth BridgeListener `yaml:"dovecot_auth"`
	Saslauthd   BridgeListener `yaml:"saslauthd"`
	Policy      BridgeListener `yaml:"policy"`
	Socketmap   BridgeListener `yaml:"socketmap"`
}

// Listener is one listening socket.
type Listener struct {
	Address string `yaml:"address" help:"host:port (or a unix socket path for lmtp); empty: off"`
	// InsecureAuth allows passwords without TLS: tests and loopback only.
	InsecureAuth bool `yaml:"insecure_auth" help:"allow passwords without TLS (tests, loopback only)"`
	// PublicPort is for autoconfig: behind NAT or a container's port
	// mapping, clients reach the listener on another port.
	PublicPort int `yaml:"public_port" help:"port clients connect to, when a NAT or container port mapping differs from address (announced by autoconfig); 0: the port of address"`
}

// TLSFiles is the certificate every TLS listener serves.
type TLSFiles struct {
	CertFile string `yaml:"cert_file" help:"PEM certificate chain; empty: a self-signed one in data_dir/tls"`
	KeyFile  string `yaml:"key_file" help:"PEM private key"`
}

// SMTPPolicy is the relay and size policy of the SMTP listeners.
type SMTPPolicy struct {
	MyNetworks      []string `yaml:"mynetworks" help:"client networks (CIDR) allowed to relay without AUTH"`
	MaxMessageBytes int64    `yaml:"max_message_bytes" unit:"bytes" help:"message size limit (10M, 1.5G or bytes)"`
	MaxRecipients   int      `yaml:"max_recipients" help:"recipients per message"`
	// CheckHeaderFrom holds authenticated mail to the sender rights at the
	// end of DATA too; MAIL FROM is always checked.
	CheckHeaderFrom bool `yaml:"check_header_from" help:"refuse authenticated mail (submission, AUTH on smtp) whose From or Sender header names an address the user may not send as (MAIL FROM is always checked)"`
}

// StoreConfig places the mailboxes.
type StoreConfig struct {
	Root         string `yaml:"root" help:"folder holding every Maildir (default data_dir/mail)"`
	PathTemplate string `yaml:"path_template" help:"Maildir of an account under root: %d domain, %n local part, %u address"`
}

// QueueConfig is the outbound queue.
type QueueConfig struct {
	Dir       string        `yaml:"dir" help:"spool folder (default data_dir/queue)"`
	Resolver  string        `yaml:"resolver" help:"DNS server host:port for MX lookups (default: resolv.conf)"`
	Port      int           `yaml:"port" help:"SMTP port of remote MX hosts"`
	Workers   int           `yaml:"workers" help:"concurrent outbound transactions"`
	PerDomain int           `yaml:"per_domain" help:"concurrent transactions per destination domain"`
	MaxAge    time.Duration `yaml:"max_age" help:"how long a message may stay queued before it bounces"`
	RetryMin  time.Duration `yaml:"retry_min" help:"first retry delay, doubling up to retry_max (Postfix's minimal_backoff_time; default 5m)"`
	RetryMax  time.Duration `yaml:"retry_max" help:"longest retry delay (Postfix's maximal_backoff_time; default 4h)"`
	Smarthost Smarthost     `yaml:"smarthost"`
	TLS       OutboundTLS   `yaml:"tls"`
}

// Smarthost relays all outbound mail through one server.
type Smarthost struct {
	Address     string `yaml:"address" help:"relay host:port; empty: deliver by MX"`
	Username    string `yaml:"username" help:"AUTH PLAIN user for the relay"`
	Password    string `yaml:"password" help:"AUTH PLAIN password for the relay"`
	ImplicitTLS bool   `yaml:"implicit_tls" help:"connect with TLS (port 465) instead of STARTTLS"`
	TLS         string `yaml:"tls" help:"TLS policy: verify (STARTTLS or implicit_tls, certificate checked against the system roots or ca_file), starttls (TLS required, certificate checked only against ca_file when set), none (plaintext, for a filter on loopback; no credentials); empty: verify"`
	CAFile      string `yaml:"ca_file" help:"PEM file of the CA (or the self-signed certificate) the relay's certificate is checked against, instead of the system roots"`
}

// SRSConfig is the Sender Rewriting Scheme (package srs): the envelope
// sender of mail forwarded to a remote destination is rewritten into the
// SRS domain, and bounces to those addresses are reversed at RCPT.
type SRSConfig struct {
	Enabled    bool     `yaml:"enabled" help:"rewrite the envelope sender of mail forwarded to remote destinations, and accept bounces to the rewritten addresses (refusing forged or expired ones)"`
	Domain     string   `yaml:"domain" help:"domain of the rewritten senders; its MX must be this server (default: hostname)"`
	Secrets    []string `yaml:"secrets" help:"SRS secrets: the first signs, every one verifies (rotate by putting a new one first); empty: secret_file"`
	SecretFile string   `yaml:"secret_file" help:"file of secrets, one a line as postsrsd has them, used when secrets is empty; created 0600 with a random secret on first start (default data_dir/srs.secret)"`
	Separator  string   `yaml:"separator" help:"character after SRS0 and SRS1: =, + or -"`
	MaxAgeDays int      `yaml:"max_age_days" help:"days a rewritten sender accepts bounces"`
	HashLength int      `yaml:"hash_length" help:"base64 characters of the hash in a rewritten sender (postsrsd's -n)"`
}

// SieveConfig bounds users' Sieve scripts (package sievestore), as
// ManageSieve and the admin commands store them.
type SieveConfig struct {
	MaxScripts    int   `yaml:"max_scripts" help:"scripts one user may keep (Pigeonhole's sieve_quota_max_scripts); 0: no limit"`
	MaxStorage    int64 `yaml:"max_storage" unit:"bytes" help:"octets all of one user's scripts may take (sieve_quota_max_storage); 0: no limit"`
	MaxScriptSize int64 `yaml:"max_script_size" unit:"bytes" help:"largest script accepted (sieve_max_script_size), at most 1M"`
	// Vacation periods: a sender hears one reply per period.
	VacationMinPeriod time.Duration `yaml:"vacation_min_period" help:"shortest :days or :seconds a vacation script gets (sieve_vacation_min_period); 0: none, every message answered when the script asks :seconds 0"`
	VacationMaxPeriod time.Duration `yaml:"vacation_max_period" help:"longest :days or :seconds (sieve_vacation_max_period); 0: no limit"`
}

// LogConfig sets up log/slog.
type LogConfig struct {
	Level  string `yaml:"level" help:"debug, info, warn or error"`
	Format string `yaml:"format" help:"text or json"`
}

// UserDB says which backend serves which kind of lookup.
type UserDB struct {
	Accounts           string             `yaml:"accounts" help:"backend for accounts and passwords: sql or ldap"`
	Domains            string             `yaml:"domains" help:"backend for domains, aliases and quota usage: sql"`
	DefaultDomain      string             `yaml:"default_domain" help:"domain appended to logins given as a bare local part"`
	RecipientDelimiter string             `yaml:"recipient_delimiter" help:"plus-addressing separator; empty turns it off"`
	PasswordScheme     string             `yaml:"password_scheme" help:"scheme for new password hashes"`
	Cache              userdb.CacheConfig `yaml:"cache"`
}

func defaultConfig() Config {
	data := os.Getenv("VMAILD_DATA")
	if data == "" {
		data = "./data"
	}
	host, _ := os.Hostname()
	c := Config{
		Hostname: host,
		DataDir:  data,
		Log:      LogConfig{Level: "info", Format: "text"},
		UserDB: UserDB{
			Accounts:           "sql",
			Domains:            "sql",
			RecipientDelimiter: "+",
			PasswordScheme:     password.DefaultScheme,
			Cache:              userdb.CacheConfig{TTL: 60e9, NegativeTTL: 10e9, MaxEntries: 100000},
		},
		SQL:  sqldir.Config{Driver: "sqlite"},
		LDAP: ldap.Config{},
		Listen: Listeners{
			SMTP:        Listener{Address: ":2525"},
			Submission:  Listener{Address: ":5587"},
			Submissions: Listener{Address: ":5465"},
			IMAP:        Listener{Address: ":1143"},
			IMAPS:       Listener{Address: ":1993"},
			POP3:        Listener{Address: ":1110"},
			POP3S:       Listener{Address: ":1995"},
			ManageSieve: Listener{Address: ":4190"},
			DovecotAuth: defaultBridgeListener(),
			Saslauthd:   defaultBridgeListener(),
			Policy:      defaultBridgeListener(),
			Socketmap:   defaultBridgeListener(),
		},
		Bridge:         defaultBridgeConfig(),
		Limits:         gate.DefaultConfig(),
		ClientNetworks: gate.Networks{IPv4Prefix: gate.DefaultIPv4Prefix, IPv6Prefix: gate.DefaultIPv6Prefix},
		// Zero slots and queue sizes follow the CPU count (see their help).
		Login: login.Config{
			PenaltyFreeFailures: 2,
			PenaltyBase:         time.Second,
			PenaltyCap:          15 * time.Second,
			PenaltyWindow:       15 * time.Minute,
			TrustFor:            24 * time.Hour,
			MaxEntries:          100000,
			Hashes:              password.DefaultCaps(),
		},
		SMTP: SMTPPolicy{
			MyNetworks:      []string{"127.0.0.0/8", "::1/128"},
			MaxMessageBytes: 50 << 20,
			MaxRecipients:   100,
			CheckHeaderFrom: true,
		},
		Store:           StoreConfig{PathTemplate: "%d/%n/Maildir"},
		Queue:           QueueConfig{Port: 25, Workers: 32, PerDomain: 8, MaxAge: 5 * 24 * time.Hour, TLS: OutboundTLS{DANE: true, MTASTS: true}},
		MTASTS:          MTASTSConfig{TLS: true, Mode: "testing", MaxAge: 7 * 24 * time.Hour},
		Delivery:        delivery.Config{MaxHops: 50, Sieve: true},
		Sieve:           SieveConfig{MaxScripts: 20, MaxStorage: 1 << 20, MaxScriptSize: 256 << 10, VacationMinPeriod: vacation.DefaultMinPeriod},
		Metrics:         MetricsConfig{Address: "127.0.0.1:9187", MinFreeBytes: 1 << 30},
		Control:         ControlConfig{Mode: "0600"},
		SRS:             SRSConfig{Enabled: true, Separator: srs.DefaultSeparator, MaxAgeDays: srs.DefaultMaxAgeDays, HashLength: srs.DefaultHashLength},
		SendingLimits:   defaultSendingLimits(),
		DNS:             defaultDNS(),
		DKIM:            DKIMConfig{Headers: slices.Clone(dkim.DefaultHeaders), Canonicalization: dkim.DefaultCanonicalization},
		Inbound:         defaultInbound(),
		ShutdownTimeout: 30 * time.Second,
	}
	defaultSenderChecks(&c)
	return c
}

// validate checks what can be checked without touching the network, and
// fills the defaults that depend on other keys. It returns every problem.
func (c *Config) validate() []string {
	var problems []string
	switch c.UserDB.Accounts {
	case "sql", "ldap":
	default:
		problems = append(problems, fmt.Sprintf("userdb.accounts: %q is not sql or ldap", c.UserDB.Accounts))
	}
	if c.UserDB.Domains != "sql" {
		problems = append(problems, fmt.Sprintf("userdb.domains: %q: only sql serves domains, aliases and quotas", c.UserDB.Domains))
	}
	if c.UserDB.DefaultDomain != "" {
		if _, err := userdb.CanonicalDomain(c.UserDB.DefaultDomain); err != nil {
			problems = append(problems, fmt.Sprintf("userdb.default_domain: %v", err))
		}
	}
	if h, err := password.Hash(c.UserDB.PasswordScheme, "check"); err != nil {
		problems = append(problems, fmt.Sprintf("userdb.password_scheme: %v", err))
	} else if _, err := c.Login.Hashes.Verify(context.Background(), h, ""); err != nil {
		// An empty password checks the caps without doing the work.
		problems = append(problems, fmt.Sprintf("login.hashes: the caps refuse the hashes userdb.password_scheme writes: %v", err))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		problems = append(problems, fmt.Sprintf("log.level: %q is not debug, info, warn or error", c.Log.Level))
	}
	if c.SQL.Driver == "sqlite" && c.SQL.DSN == "" {
		c.SQL.DSN = filepath.Join(c.DataDir, "vmaild.db")
	}
	problems = append(problems, validateSQL(c.SQL)...)
	if c.UserDB.Accounts == "ldap" {
		problems = append(problems, validateLDAP(c.LDAP)...)
	}
	for _, n := range c.Limits.ExemptNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			problems = append(problems, fmt.Sprintf("limits.exempt_networks: %q is not a CIDR prefix like 192.0.2.0/24", n))
		}
	}
	for _, n := range c.SMTP.MyNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			problems = append(problems, fmt.Sprintf("smtp.mynetworks: %q is not a CIDR prefix like 192.0.2.0/24", n))
		}
	}
	problems = append(problems, validateLogin(c.Login, c.ClientNetworks)...)
	switch c.Delivery.DeliveredTo {
	case "", "recipient", "none":
	default:
		problems = append(problems, fmt.Sprintf("delivery.delivered_to: %q is not recipient or none", c.Delivery.DeliveredTo))
	}
	if c.Store.Root == "" {
		c.Store.Root = filepath.Join(c.DataDir, "mail")
	}
	if c.Queue.Dir == "" {
		c.Queue.Dir = filepath.Join(c.DataDir, "queue")
	}
	problems = append(problems, c.Control.resolve(c.DataDir)...)
	problems = append(problems, c.SRS.resolve(c.Hostname, c.DataDir)...)
	problems = append(problems, c.DKIM.resolve(c.DataDir)...)
	problems = append(problems, c.SendingLimits.validate()...)
	problems = append(problems, c.DNS.validate()...)
	problems = append(problems, c.Inbound.validate()...)
	problems = append(problems, c.validateAutoconfig()...)
	problems = append(problems, c.validateTLSPolicy()...)
	problems = append(problems, c.Queue.Smarthost.validate()...)
	problems = append(problems, c.validateSenderChecks()...)
	problems = append(problems, c.validateBridge()...)
	problems = append(problems, c.checkRanges()...)
	return problems
}

// checkRanges holds the numbers and addresses to the values they can take,
// naming the range, so that port 99999 is refused when read rather than
// when a listener fails to start.
func (c *Config) checkRanges() []string {
	var problems []string
	for _, r := range []struct {
		key       string
		n, lo, hi int64 // hi 0: no upper bound
		meaning   string
	}{
		{"queue.port", int64(c.Queue.Port), 1, 65535, "a TCP port"},
		{"queue.workers", int64(c.Queue.Workers), 1, 0, "outbound transactions at once"},
		{"queue.per_domain", int64(c.Queue.PerDomain), 1, 0, "transactions per domain"},
		{"smtp.max_recipients", int64(c.SMTP.MaxRecipients), 1, 0, "recipients per message"},
		{"smtp.max_message_bytes", c.SMTP.MaxMessageBytes, 1, 0, "a message size"},
		{"metrics.min_free_bytes", c.Metrics.MinFreeBytes, 0, 0, "a free-space floor, 0 for none"},
		{"delivery.max_hops", int64(c.Delivery.MaxHops), 1, 0, "Received headers"},
		{"sql.max_open_conns", int64(c.SQL.MaxOpenConns), 0, 0, "connections, 0 for the default"},
		{"ldap.pool_size", int64(c.LDAP.PoolSize), 0, 0, "connections, 0 for the default"},
		{"userdb.cache.max_entries", int64(c.UserDB.Cache.MaxEntries), 0, 0, "cached answers"},
		{"login.max_entries", int64(c.Login.MaxEntries), 0, 0, "remembered entries, 0 for the default"},
		{"login.max_concurrent_verifications", int64(c.Login.MaxConcurrentVerifications), 0, 0, "verifications, 0 for the default"},
		{"login.max_waiting", int64(c.Login.MaxWaiting), 0, 0, "queued logins, 0 for the default"},
		{"login.max_waiting_per_network", int64(c.Login.MaxWaitingPerNetwork), 0, 0, "queued logins, 0 for the default"},
	} {
		switch {
		case r.n < r.lo && r.hi == 0:
			problems = append(problems, fmt.Sprintf("%s: %d is out of range: %s, at least %d", r.key, r.n, r.meaning, r.lo))
		case r.n < r.lo || (r.hi != 0 && r.n > r.hi):
			problems = append(problems, fmt.Sprintf("%s: %d is out of range: %s, %d to %d", r.key, r.n, r.meaning, r.lo, r.hi))
		}
	}
	for _, a := range []struct{ key, addr string }{
		{"listen.smtp.address", c.Listen.SMTP.Address},
		{"listen.submission.address", c.Listen.Submission.Address},
		{"listen.submissions.address", c.Listen.Submissions.Address},
		{"listen.lmtp.address", c.Listen.LMTP.Address},
		{"listen.imap.address", c.Listen.IMAP.Address},
		{"listen.imaps.address", c.Listen.IMAPS.Address},
		{"listen.pop3.address", c.Listen.POP3.Address},
		{"listen.pop3s.address", c.Listen.POP3S.Address},
		{"listen.managesieve.address", c.Listen.ManageSieve.Address},
		{"metrics.address", c.Metrics.Address},
		{"queue.smarthost.address", c.Queue.Smarthost.Address},
		{"queue.resolver", c.Queue.Resolver},
	} {
		if p := checkHostPort(a.addr); p != "" {
			problems = append(problems, a.key+": "+p)
		}
	}
	if n := c.Sieve.MaxScriptSize; n < 0 || n > sieve.DefaultMaxScriptSize {
		problems = append(problems, fmt.Sprintf("sieve.max_script_size: %d is out of range: 0 to %d (the interpreter's limit)", n, sieve.DefaultMaxScriptSize))
	}
	if c.Sieve.MaxScripts < 0 || c.Sieve.MaxStorage < 0 {
		problems = append(problems, "sieve.max_scripts and sieve.max_storage: negative")
	}
	if hi := c.Sieve.VacationMaxPeriod; hi > 0 && hi < c.Sieve.VacationMinPeriod {
		problems = append(problems, fmt.Sprintf("sieve.vacation_max_period: %v is below sieve.vacation_min_period %v", hi, c.Sieve.VacationMinPeriod))
	}
	// No duration means anything negative.
	for _, k := range configKeys(*c) {
		if d, ok := k.Default.(time.Duration); ok && d < 0 {
			problems = append(problems, fmt.Sprintf("%s: %v is negative", k.Name, d))
		}
	}
	return problems
}

// checkHostPort says what is wrong with a host:port, "" if nothing; an
// empty address (off) and a unix socket path (LMTP) are fine.
func checkHostPort(addr string) string {
	if addr == "" || strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, "unix:") {
		return ""
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%q is not host:port (like 127.0.0.1:25 or :25)", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("%q: port %s is out of range: 1 to 65535 (0: any free port)", addr, port)
	}
	return ""
}

func validateLogin(c login.Config, n gate.Networks) []string {
	var problems []string
	if n.IPv4Prefix < 0 || n.IPv4Prefix > 32 {
		problems = append(problems, fmt.Sprintf("client_networks.ipv4_prefix: %d is not a prefix length from 1 to 32", n.IPv4Prefix))
	}
	if n.IPv6Prefix < 0 || n.IPv6Prefix > 128 {
		problems = append(problems, fmt.Sprintf("client_networks.ipv6_prefix: %d is not a prefix length from 1 to 128", n.IPv6Prefix))
	}
	if err := c.Hashes.Check(); err != nil {
		problems = append(problems, "login.hashes."+err.Error())
	}
	if c.PenaltyCap > 0 && c.PenaltyBase > c.PenaltyCap {
		problems = append(problems, fmt.Sprintf("login.penalty_base: %v is above login.penalty_cap %v", c.PenaltyBase, c.PenaltyCap))
	}
	if c.PenaltyCap > time.Minute {
		// Clients give up on a login after about 30 s to a minute, and a
		// longer delay is a lockout under another name.
		problems = append(problems, fmt.Sprintf("login.penalty_cap: %v is longer than a client waits for a login reply (at most 1m)", c.PenaltyCap))
	}
	return problems
}

func validateSQL(c sqldir.Config) []string {
	switch c.Driver {
	case "sqlite":
		if c.DSN == "" {
			return []string{"sql.dsn: empty: give the SQLite database file"}
		}
	case "mysql":
		if c.DSN == "" {
			return []string{"sql.dsn: empty: give a DSN like vmaild:secret@tcp(db:3306)/vmaild"}
		}
		if _, err := mysql.ParseDSN(c.DSN); err != nil {
			return []string{fmt.Sprintf("sql.dsn: malformed MySQL DSN: %v", err)}
		}
	default:
		return []string{fmt.Sprintf("sql.driver: %q is not sqlite or mysql", c.Driver)}
	}
	return nil
}

func validateLDAP(c ldap.Config) []string {
	var problems []string
	if len(c.URLs) == 0 {
		problems = append(problems, "ldap.urls: empty: give ldap://host or ldaps://host")
	}
	for _, raw := range c.URLs {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("ldap.urls: malformed URL %q: %v", raw, err))
		case u.Scheme != "ldap" && u.Scheme != "ldaps":
			problems = append(problems, fmt.Sprintf("ldap.urls: %q: scheme must be ldap or ldaps", raw))
		case u.Host == "":
			problems = append(problems, fmt.Sprintf("ldap.urls: %q: no host", raw))
		}
	}
	if c.BaseDN == "" {
		problems = append(problems, "ldap.base_dn: empty")
	}
	for key, dn := range map[string]string{"ldap.base_dn": c.BaseDN, "ldap.bind_dn": c.BindDN} {
		if dn == "" {
			continue
		}
		if _, err := goldap.ParseDN(dn); err != nil {
			problems = append(problems, fmt.Sprintf("%s: malformed DN %q: %v", key, dn, err))
		}
	}
	if f := c.UserFilter; f != "" {
		if !strings.Contains(f, "%u") && !strings.Contains(f, "%n") {
			problems = append(problems, "ldap.user_filter: names no %u or %n, so it cannot find one user")
		}
		probe := strings.NewReplacer("%u", "a@b", "%n", "a", "%d", "b", "%%", "%").Replace(f)
		if _, err := goldap.CompileFilter(probe); err != nil {
			problems = append(problems, fmt.Sprintf("ldap.user_filter: malformed filter: %v", err))
		}
	}
	return problems
}

// InboundConfig is the checks a message passes at the end of DATA, before
// the reply (package backend/inbound; built in inbound.go): scanners and
// milters, and how their spam verdict files mail into Junk.
type InboundConfig struct {
	Order  []string     `yaml:"order" help:"order the configured checks run in, by name (clamd, rspamd, spamd, milter for every milter); checks not named run after these in that order"`
	Rspamd RspamdConfig `yaml:"rspamd"`
	Spamd  SpamdConfig  `yaml:"spamd"`
	Clamd  ClamdConfig  `yaml:"clamd"`
	Milter MilterConfig `yaml:"milter"`
	Junk   JunkConfig   `yaml:"junk"`
}

// RspamdConfig is the rspamd check (HTTP /checkv2).
type RspamdConfig struct {
	URL          string        `yaml:"url" help:"base URL of rspamd's normal worker, e.g. http://127.0.0.1:11333; empty: off"`
	Password     string        `yaml:"password" help:"sent as rspamd's Password header when set"`
	RejectAsJunk bool          `yaml:"reject_as_junk" help:"file what rspamd would reject into Junk instead of refusing it with 554 5.7.1"`
	Roles        []string      `yaml:"roles" help:"listener roles checked: mta, submission, lmtp"`
	Timeout      time.Duration `yaml:"timeout" help:"time rspamd has for one message"`
	MaxSize      int64         `yaml:"max_size" unit:"bytes" help:"larger messages are not sent to rspamd (see oversize); 0: no limit"`
	Oversize     string        `yaml:"oversize" help:"a message over max_size: skip (delivered, marked X-Vmaild-Unchecked) or reject (552 5.3.4)"`
	OnFailure    string        `yaml:"on_failure" help:"rspamd down, hung or answering nonsense: tempfail (451 4.7.1, the client retries) or accept (delivered, marked X-Vmaild-Unchecked)"`
}

// SpamdConfig is the SpamAssassin check (spamd, SPAMC protocol).
type SpamdConfig struct {
	Address     string        `yaml:"address" help:"spamd's host:port or unix socket path, e.g. 127.0.0.1:783; empty: off"`
	User        string        `yaml:"user" help:"user whose SpamAssassin preferences apply (spamc -u); empty: spamd's default"`
	RejectScore float64       `yaml:"reject_score" help:"refuse messages scoring at least this with 550 5.7.1; 0: never (spam goes into Junk)"`
	Roles       []string      `yaml:"roles" help:"listener roles checked: mta, submission, lmtp"`
	Timeout     time.Duration `yaml:"timeout" help:"time spamd has for one message"`
	MaxSize     int64         `yaml:"max_size" unit:"bytes" help:"larger messages are not sent to spamd (see oversize); 0: no limit"`
	Oversize    string        `yaml:"oversize" help:"a message over max_size: skip (delivered, marked X-Vmaild-Unchecked) or reject (552 5.3.4)"`
	OnFailure   string        `yaml:"on_failure" help:"spamd down, hung or answering nonsense: tempfail (451 4.7.1) or accept (delivered, marked X-Vmaild-Unchecked)"`
}

// ClamdConfig is the ClamAV check (clamd, INSTREAM).
type ClamdConfig struct {
	Address   string        `yaml:"address" help:"clamd's LocalSocket path or TCPAddr:TCPSocket, e.g. /run/clamav/clamd.ctl; empty: off"`
	OnVirus   string        `yaml:"on_virus" help:"a virus found: reject (554 5.7.1 naming it), discard or junk"`
	Roles     []string      `yaml:"roles" help:"listener roles checked: mta, submission, lmtp"`
	Timeout   time.Duration `yaml:"timeout" help:"time clamd has for one message"`
	MaxSize   int64         `yaml:"max_size" unit:"bytes" help:"larger messages are not sent to clamd (see oversize); keep it at or below clamd's StreamMaxLength; 0: no limit"`
	Oversize  string        `yaml:"oversize" help:"a message over max_size: skip (delivered, marked X-Vmaild-Unchecked) or reject (552 5.3.4)"`
	OnFailure string        `yaml:"on_failure" help:"clamd down, hung, over its limits or answering nonsense: tempfail (451 4.7.1) or accept (delivered, marked X-Vmaild-Unchecked)"`
}

// MilterConfig is the milters the MTA consults, with one policy for all.
type MilterConfig struct {
	Sockets   []string      `yaml:"sockets" help:"milters as NAME=SOCKET, consulted in this order, e.g. opendkim=inet:127.0.0.1:8891 or clamav=unix:/run/clamav-milter/milter.sock"`
	Roles     []string      `yaml:"roles" help:"listener roles the milters see: mta, submission, lmtp"`
	Timeout   time.Duration `yaml:"timeout" help:"time each milter has for one message"`
	MaxSize   int64         `yaml:"max_size" unit:"bytes" help:"larger messages are not sent to the milters (see oversize); 0: no limit"`
	Oversize  string        `yaml:"oversize" help:"a message over max_size: skip (delivered, marked X-Vmaild-Unchecked) or reject (552 5.3.4)"`
	OnFailure string        `yaml:"on_failure" help:"a milter down, hung or failing: tempfail (451 4.7.1) or accept (delivered, marked X-Vmaild-Unchecked)"`
}

// JunkConfig is how the spam verdict files mail into the recipient's
// \Junk folder (delivery.JunkFolder).
type JunkConfig struct {
	Folder     string   `yaml:"folder" help:"folder spam is filed into; Junk, the special-use \\Junk folder, is created when missing, another folder must exist (else INBOX)"`
	Threshold  float64  `yaml:"threshold" help:"spam score from which mail goes into Junk; 0: when the scanner calls it spam"`
	Thresholds []string `yaml:"thresholds" help:"per domain or address, DOMAIN=SCORE or ADDRESS=SCORE (an address wins over its domain); SCORE off keeps spam in INBOX"`
}

// DKIMConfig is DKIM signing (package backend/dkim) of the mail
// authenticated users send to remote destinations and of the queue's
// bounces, by the domain of their From header.
type DKIMConfig struct {
	Dir              string   `yaml:"dir" help:"folder of signing keys, DOMAIN/SELECTOR.key, each PEM and mode 0600 (vmaild dkim keygen writes them); every key found there signs for its domain unless keys names that domain (default data_dir/dkim)"`
	Keys             []string `yaml:"keys" help:"keys that sign, DOMAIN:SELECTOR (file in dir) or DOMAIN:SELECTOR:PATH; a domain named here signs with exactly these; at most two per domain, both signing (rotation); a key that does not load stops the start (a reload keeps the old keys)"`
	Headers          []string `yaml:"headers" help:"header fields signed; a name given twice is oversigned (a second field of that name breaks the signature); From is required"`
	Canonicalization string   `yaml:"canonicalization" help:"header/body canonicalization: relaxed/relaxed, simple/simple, relaxed/simple or simple/relaxed"`
}

// resolve fills the dkim defaults and checks the keys' names, the header
// list and the canonicalization; the key files are loaded at start (and
// by config check).
func (c *DKIMConfig) resolve(dataDir string) []string {
	if c.Dir == "" {
		c.Dir = filepath.Join(dataDir, "dkim")
	}
	var problems []string
	if _, err := c.specs(); err != nil {
		problems = append(problems, "dkim.keys: "+err.Error())
	}
	if _, err := dkim.New(dkim.Config{Headers: c.Headers, Canonicalization: c.Canonicalization}); err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}

func (c DKIMConfig) specs() ([]dkim.KeySpec, error) {
	var specs []dkim.KeySpec
	for _, k := range c.Keys {
		ks, err := dkim.ParseKeySpec(k)
		if err != nil {
			return nil, err
		}
		specs = append(specs, ks)
	}
	return specs, nil
}

// signer loads the keys and is the one place they become a dkim.Signer;
// warnings are keys loaded from files others may read.
func (c DKIMConfig) signer() (*dkim.Signer, []error, error) {
	specs, err := c.specs()
	if err != nil {
		return nil, nil, fmt.Errorf("dkim.keys: %w", err)
	}
	keys, warnings, err := dkim.LoadKeys(c.Dir, specs)
	if err != nil {
		return nil, nil, err
	}
	s, err := dkim.New(dkim.Config{Keys: keys, Headers: c.Headers, Canonicalization: c.Canonicalization})
	return s, warnings, err
}

// resolve fills the SRS defaults that depend on other keys and checks the
// rest the way srs.New will, so a bad key is reported with the others.
func (c *SRSConfig) resolve(hostname, dataDir string) []string {
	if !c.Enabled {
		return nil
	}
	if c.Domain == "" {
		c.Domain = hostname
	}
	if c.SecretFile == "" {
		c.SecretFile = filepath.Join(dataDir, "srs.secret")
	}
	if _, err := userdb.CanonicalDomain(c.Domain); err != nil {
		return []string{fmt.Sprintf("srs.domain: %q: %v (set srs.domain, or hostname, to a domain whose MX is this server)", c.Domain, err)}
	}
	secrets := c.Secrets
	if len(secrets) == 0 {
		secrets = []string{"the secret file's, read at start"}
	}
	if _, err := c.rewriter(secrets); err != nil {
		return []string{err.Error()} // "srs: …" already
	}
	return nil
}

// rewriter is the one place the keys become an srs.Rewriter; srs.New is
// the one check of their values.
func (c SRSConfig) rewriter(secrets []string) (*srs.Rewriter, error) {
	return srs.New(srs.Config{Domain: c.Domain, Secrets: secrets, Separator: c.Separator,
		MaxAgeDays: c.MaxAgeDays, HashLength: c.HashLength})
}
