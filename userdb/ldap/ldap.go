// Package ldap is vmaild's OpenLDAP account backend: it finds virtual users
// with a configurable search filter and checks their passwords, either
// against userPassword hashes or by binding as the user (Dovecot's
// auth_bind). Plain inetOrgPerson entries with mail and userPassword work
// out of the box; the optional vmailAccount schema (schema/ldap) adds
// quota, an active flag, a maildir override, aliases and the addresses an
// account may send as besides its own.
//
// A Source keeps a bounded pool of connections, each bound once as the
// service account. Network failures are classified as userdb.ErrUnavailable
// (try later), never as "no such user" or "wrong password", so a directory
// outage cannot bounce mail or lock users out for good; a dead connection
// is replaced and the operation retried once, so the Source heals by itself
// after slapd restarts. Every operation has one deadline (Config.Timeout)
// that covers all of it, the wait for a connection included, so callers
// hear back in time however many wait and however the server fails.
package ldap

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/vmaild/vmaild/userdb/password"
)

// Config configures a Source. The zero value of every field except URLs
// and BaseDN has a working default.
type Config struct {
	// URLs are tried in order until one connects: ldap://host[:port] or
	// ldaps://host[:port].
	URLs []string `yaml:"urls" mapstructure:"urls" help:"servers tried in order until one connects: ldap://host[:port] or ldaps://host[:port]"`
	// StartTLS upgrades ldap:// connections before the bind.
	StartTLS bool      `yaml:"start_tls" mapstructure:"start_tls" help:"upgrade ldap:// connections with StartTLS before the bind"`
	TLS      TLSConfig `yaml:"tls" mapstructure:"tls"`

	// BindDN and BindPassword are the service account every pooled
	// connection binds as; empty BindDN means anonymous. The service
	// account needs read access to the user attributes, and to
	// userPassword unless AuthBind is set.
	BindDN       string `yaml:"bind_dn" mapstructure:"bind_dn" help:"service account every pooled connection binds as; empty: anonymous"`
	BindPassword string `yaml:"bind_password" mapstructure:"bind_password" help:"password of bind_dn"`

	// BaseDN is where user searches start.
	BaseDN string `yaml:"base_dn" mapstructure:"base_dn" help:"where user searches start"`
	// Scope of user searches: "sub" (default), "one" or "base".
	Scope string `yaml:"scope" mapstructure:"scope" help:"scope of user searches: sub, one or base; empty: sub"`
	// UserFilter finds one user; %u is the full address, %n the local
	// part, %d the domain, %% a percent sign. Values are escaped
	// (RFC 4515) before substitution. Default
	// (&(objectClass=inetOrgPerson)(mail=%u)).
	UserFilter string `yaml:"user_filter" mapstructure:"user_filter" help:"filter finding one user: %u address, %n local part, %d domain (values escaped); empty: (&(objectClass=inetOrgPerson)(mail=%u))"`
	// ListFilter selects all accounts for ListAccounts; the mail
	// attribute condition is added to it. Default (objectClass=inetOrgPerson).
	ListFilter string `yaml:"list_filter" mapstructure:"list_filter" help:"filter selecting all accounts for listings; empty: (objectClass=inetOrgPerson)"`

	Attributes Attributes `yaml:"attributes" mapstructure:"attributes"`

	// AuthBind checks passwords by binding as the user's DN instead of
	// reading the password attribute (Dovecot's auth_bind): the directory
	// verifies the hash, and the service account never reads it.
	AuthBind bool `yaml:"auth_bind" mapstructure:"auth_bind" help:"check passwords by binding as the user instead of reading the hash (Dovecot's auth_bind)"`

	// PoolSize bounds the connections kept open (default 8); with
	// AuthBind a second pool of the same size holds the user binds.
	PoolSize int `yaml:"pool_size" mapstructure:"pool_size" help:"connections kept open (a second pool as large with auth_bind); 0: 8"`
	// Timeout bounds each operation as a whole (default 5s): a lookup, or
	// a login's search and user bind together, including the wait for a
	// pooled connection, connecting, the service bind and a retry. A
	// directory that does not answer in time is ErrUnavailable.
	Timeout time.Duration `yaml:"timeout" mapstructure:"timeout" help:"bound on each lookup or login as a whole: waiting for a pooled connection, connecting, the service bind, the requests and a retry; past it the answer is try later; 0: 5s"`

	// UserDN is the DN template for accounts AddAccount creates, with the
	// placeholders of UserFilter (escaped as DN values, RFC 4514).
	// Default uid=%u,<BaseDN>: new accounts go where the searches look,
	// so base_dn ou=people,dc=example,dc=com (the README's and
	// ldif/example.ldif's shape) gives uid=%u,ou=people,dc=example,dc=com.
	UserDN string `yaml:"user_dn" mapstructure:"user_dn" help:"DN template of accounts vmaild creates, placeholders as in user_filter; empty: uid=%u,<base_dn>"`
	// ObjectClasses of new accounts. Default inetOrgPerson, plus
	// AccountObjectClass when one of its attributes is configured.
	ObjectClasses []string `yaml:"object_classes" mapstructure:"object_classes" help:"object classes of new accounts; empty: inetOrgPerson, plus account_object_class when one of its attributes is set"`
	// AccountObjectClass is the auxiliary class that carries the quota,
	// active and maildir attributes; it is added to an existing entry that
	// lacks it when one of them is written. Default vmailAccount.
	AccountObjectClass string `yaml:"account_object_class" mapstructure:"account_object_class" help:"auxiliary class carrying the quota, active and maildir attributes; empty: vmailAccount"`

	// Logger receives connection problems (never passwords). Nil discards.
	Logger *slog.Logger `yaml:"-" mapstructure:"-"`
}

// TLSConfig configures ldaps:// and StartTLS.
type TLSConfig struct {
	// CAFile is a PEM bundle of the CAs to trust; empty uses the system's.
	CAFile string `yaml:"ca_file" mapstructure:"ca_file" help:"PEM bundle of the CAs to trust; empty: the system's"`
	// ServerName to verify; empty uses the host of the URL.
	ServerName string `yaml:"server_name" mapstructure:"server_name" help:"name the server certificate must match; empty: the host of the URL"`
	// InsecureSkipVerify disables certificate checks; tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" mapstructure:"insecure_skip_verify" help:"skip certificate checks (tests only)"`
	// CertFile and KeyFile are an optional client certificate.
	CertFile string `yaml:"cert_file" mapstructure:"cert_file" help:"client certificate (PEM) for servers that ask for one"`
	KeyFile  string `yaml:"key_file" mapstructure:"key_file" help:"private key (PEM) of cert_file"`
}

// Attributes names the LDAP attributes an account is made of. Empty
// optional names mean the information is not kept in the directory.
type Attributes struct {
	Mail     string `yaml:"mail" mapstructure:"mail" help:"attribute holding the address; empty: mail"`                                // default mail
	Password string `yaml:"password" mapstructure:"password" help:"attribute holding the {SCHEME} password hash; empty: userPassword"` // default userPassword
	Name     string `yaml:"name" mapstructure:"name" help:"attribute holding the display name; empty: cn"`                             // default cn

	QuotaBytes    string `yaml:"quota_bytes" mapstructure:"quota_bytes" help:"attribute holding the quota in bytes (vmailQuotaBytes); empty: not in the directory"`
	QuotaMessages string `yaml:"quota_messages" mapstructure:"quota_messages" help:"attribute holding the quota in messages (vmailQuotaMessages); empty: not in the directory"`
	// Active holds a Boolean (TRUE/FALSE); absent means active.
	Active  string `yaml:"active" mapstructure:"active" help:"Boolean attribute, FALSE disables the account (vmailActive); empty: not in the directory"`
	Maildir string `yaml:"maildir" mapstructure:"maildir" help:"attribute overriding the Maildir path (vmailMaildir); empty: not in the directory"`
	// SenderAddress lists, on the account's entry, further addresses it
	// may send as ("@domain": every address of the domain); multi-valued.
	SenderAddress string `yaml:"sender_address" mapstructure:"sender_address" help:"multi-valued attribute listing further addresses the account may send as, @domain for a whole domain (vmailSenderAddress); empty: not in the directory"`
	// The account's sending limits (absent: the configured default; 0:
	// unlimited), read like the quota.
	SendMessagesPerHour      string `yaml:"send_messages_per_hour" mapstructure:"send_messages_per_hour" help:"attribute holding the messages the account may send per hour, 0 unlimited (vmailSendMessagesPerHour); empty: not in the directory"`
	SendRecipientsPerMessage string `yaml:"send_recipients_per_message" mapstructure:"send_recipients_per_message" help:"attribute holding the recipients of one message the account sends, 0 unlimited (vmailSendRecipientsPerMessage); empty: not in the directory"`
	SendRecipientsPerHour    string `yaml:"send_recipients_per_hour" mapstructure:"send_recipients_per_hour" help:"attribute holding the recipients the account may send to per hour, 0 unlimited (vmailSendRecipientsPerHour); empty: not in the directory"`
}

// SchemaAttributes returns the attribute names of vmaild's own schema
// (schema/ldap/vmaild.ldif) on top of the inetOrgPerson defaults.
func SchemaAttributes() Attributes {
	return Attributes{
		Mail:          "mail",
		Password:      "userPassword",
		Name:          "cn",
		QuotaBytes:    "vmailQuotaBytes",
		QuotaMessages: "vmailQuotaMessages",
		Active:        "vmailActive",
		Maildir:       "vmailMaildir",
		SenderAddress: "vmailSenderAddress",

		SendMessagesPerHour:      "vmailSendMessagesPerHour",
		SendRecipientsPerMessage: "vmailSendRecipientsPerMessage",
		SendRecipientsPerHour:    "vmailSendRecipientsPerHour",
	}
}

const (
	defaultPoolSize   = 8
	defaultTimeout    = 5 * time.Second
	defaultUserFilter = "(&(objectClass=inetOrgPerson)(mail=%u))"
	defaultListFilter = "(objectClass=inetOrgPerson)"
	defaultAccountOC  = "vmailAccount"
)

// Errors of this backend that are neither "no" nor "try later" but a
// problem of the directory's data or of the configuration.
var (
	// ErrAmbiguous means the user filter matched more than one entry: the
	// directory is inconsistent, and guessing would let one user log in as
	// another.
	ErrAmbiguous = errors.New("ldap: more than one entry matches")
	// ErrAttributeNotConfigured means a write needs an attribute whose
	// name is empty in Attributes (quota without QuotaBytes, ...).
	ErrAttributeNotConfigured = errors.New("ldap: attribute not configured")
)

// Source is an LDAP account backend. It is safe for concurrent use.
type Source struct {
	cfg   Config
	scope int
	log   *slog.Logger

	search *pool // bound as the service account: searches and writes
	auth   *pool // for user binds (AuthBind); nil otherwise
	// hashCaps bounds the stored password hashes Authenticate verifies.
	hashCaps password.Caps
}

// New checks cfg, fills in defaults and returns a Source. It does not
// connect: the directory may be down when vmaild starts, and the first
// request will connect (or report ErrUnavailable).
func New(cfg Config) (*Source, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("ldap: no server URLs configured")
	}
	for _, u := range cfg.URLs {
		if _, _, err := parseURL(u); err != nil {
			return nil, err
		}
	}
	if cfg.BaseDN == "" {
		return nil, errors.New("ldap: base_dn is required")
	}
	if _, err := goldap.ParseDN(cfg.BaseDN); err != nil {
		return nil, fmt.Errorf("ldap: base_dn %q: %w", cfg.BaseDN, err)
	}
	if cfg.BindDN != "" && cfg.BindPassword == "" {
		// An empty password would make the bind an unauthenticated one
		// (RFC 4513 5.1.2): the server says success and grants nothing.
		return nil, errors.New("ldap: bind_dn is set but bind_password is empty")
	}
	scope, err := parseScope(cfg.Scope)
	if err != nil {
		return nil, err
	}
	if cfg.UserFilter == "" {
		cfg.UserFilter = defaultUserFilter
	}
	if err := checkFilterTemplate(cfg.UserFilter); err != nil {
		return nil, fmt.Errorf("ldap: user_filter: %w", err)
	}
	if cfg.ListFilter == "" {
		cfg.ListFilter = defaultListFilter
	}
	if _, err := goldap.CompileFilter(cfg.ListFilter); err != nil {
		return nil, fmt.Errorf("ldap: list_filter %q: %w", cfg.ListFilter, err)
	}
	a := &cfg.Attributes
	if a.Mail == "" {
		a.Mail = "mail"
	}
	if a.Password == "" {
		a.Password = "userPassword"
	}
	if a.Name == "" {
		a.Name = "cn"
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = defaultPoolSize
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.UserDN == "" {
		cfg.UserDN = "uid=%u," + cfg.BaseDN
	}
	if err := checkDNTemplate(cfg.UserDN); err != nil {
		return nil, fmt.Errorf("ldap: user_dn: %w", err)
	}
	if cfg.AccountObjectClass == "" {
		cfg.AccountObjectClass = defaultAccountOC
	}
	if len(cfg.ObjectClasses) == 0 {
		cfg.ObjectClasses = []string{"inetOrgPerson"}
		if a.QuotaBytes != "" || a.QuotaMessages != "" || a.Active != "" || a.Maildir != "" {
			cfg.ObjectClasses = append(cfg.ObjectClasses, cfg.AccountObjectClass)
		}
	}
	tlsConfig, err := cfg.TLS.load()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Source{cfg: cfg, scope: scope, log: log}
	d := &dialer{urls: cfg.URLs, startTLS: cfg.StartTLS, tls: tlsConfig, bindDN: cfg.BindDN, bindPW: cfg.BindPassword, timeout: cfg.Timeout}
	s.search = newPool(cfg.PoolSize, d, log.With("pool", "search"))
	if cfg.AuthBind {
		// User binds change a connection's identity, so they get their own
		// connections and the service-bound ones stay as they are.
		s.auth = newPool(cfg.PoolSize, &dialer{urls: cfg.URLs, startTLS: cfg.StartTLS, tls: tlsConfig, timeout: cfg.Timeout}, log.With("pool", "auth"))
	}
	return s, nil
}

// Timeout is the bound on one operation (userdb.Bounded).
func (s *Source) Timeout() time.Duration { return s.cfg.Timeout }

// Close closes all connections. Requests after Close fail with
// ErrUnavailable, so a server shutting down answers "try later".
func (s *Source) Close() error {
	s.search.close()
	if s.auth != nil {
		s.auth.close()
	}
	return nil
}

func parseScope(s string) (int, error) {
	switch strings.ToLower(s) {
	case "", "sub", "subtree":
		return goldap.ScopeWholeSubtree, nil
	case "one", "onelevel":
		return goldap.ScopeSingleLevel, nil
	case "base":
		return goldap.ScopeBaseObject, nil
	}
	return 0, fmt.Errorf("ldap: scope %q: want sub, one or base", s)
}

// parseURL returns the dial address of an ldap:// or ldaps:// URL.
func parseURL(raw string) (hostport string, ldaps bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false, fmt.Errorf("ldap: server URL %q: %w", raw, err)
	}
	port := "389"
	switch u.Scheme {
	case "ldap":
	case "ldaps":
		port, ldaps = "636", true
	default:
		return "", false, fmt.Errorf("ldap: server URL %q: scheme must be ldap or ldaps", raw)
	}
	if u.Hostname() == "" {
		return "", false, fmt.Errorf("ldap: server URL %q has no host", raw)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	return u.Hostname() + ":" + port, ldaps, nil
}

func (c TLSConfig) load() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // explicit opt-in, documented as tests only
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ldap: tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldap: tls ca_file %s: no PEM certificates", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("ldap: tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
