package sqldir

import (
	"fmt"
	"strings"
)

// Queries are the statements the directory runs, by name. An empty field
// means the built-in query for vmaild's own schema. Overrides refer to
// their inputs by name (:address, :domain, …), never by position, so a
// query may use an input twice or not at all; every input is bound as a
// parameter, never spliced into the text.
//
// Column order matters, names do not (use AS freely):
//
//	account       (:address) → address, name, active, quota_bytes, quota_messages, maildir
//	password      (:address) → the account columns, then the {SCHEME} password hash
//	domain        (:domain)  → name, active, quota_bytes, quota_messages, catchall, alias_for
//	aliases       (:source)  → one destination per row (a comma-separated list is split)
//	sender_logins (:address) → one login per row that may send as :address (an
//	              address or "@domain"); a comma-separated list is split
//	quota_usage   (:address) → bytes, messages
//	quota_ensure  (:address) makes the usage row exist, doing nothing when it does
//	quota_add     (:address, :bytes, :messages) adds atomically, clamped at 0
//	quota_reserve (:address, :bytes, :messages, :limit_bytes, :limit_messages)
//	              one conditional UPDATE: affects the row only when it fits
//	quota_set     (:address, :bytes, :messages) overwrites
//	send_limits   (:address, :domain) → one row: the account's messages per
//	              hour, recipients per message, recipients per hour, then the
//	              domain's (NULL: the configured default, 0: unlimited); no
//	              row sets none. An installation that overrides account but
//	              not send_limits has none in SQL (its schema lacks them).
//
// NULL quota_bytes and quota_messages both NULL mean "the domain default";
// otherwise a NULL or 0 limit is unlimited. NULL name, maildir, catchall
// and alias_for read as empty.
type Queries struct {
	Account      string `yaml:"account" mapstructure:"account" help:"(:address) → address, name, active, quota_bytes, quota_messages, maildir; empty: vmaild's schema"`
	Password     string `yaml:"password" mapstructure:"password" help:"(:address) → the account columns, then the {SCHEME} hash; empty: vmaild's schema"`
	Domain       string `yaml:"domain" mapstructure:"domain" help:"(:domain) → name, active, quota_bytes, quota_messages, catchall, alias_for; empty: vmaild's schema"`
	Aliases      string `yaml:"aliases" mapstructure:"aliases" help:"(:source) → one destination per row; empty: vmaild's schema"`
	SenderLogins string `yaml:"sender_logins" mapstructure:"sender_logins" help:"(:address, an address or @domain) → one login per row that may send as it; empty: vmaild's schema"`
	QuotaUsage   string `yaml:"quota_usage" mapstructure:"quota_usage" help:"(:address) → bytes, messages; empty: vmaild's schema"`
	QuotaEnsure  string `yaml:"quota_ensure" mapstructure:"quota_ensure" help:"(:address) creates the usage row when missing; empty: vmaild's schema"`
	QuotaAdd     string `yaml:"quota_add" mapstructure:"quota_add" help:"(:address, :bytes, :messages) adds to the usage, clamped at 0; empty: vmaild's schema"`
	QuotaReserve string `yaml:"quota_reserve" mapstructure:"quota_reserve" help:"(:address, :bytes, :messages, :limit_bytes, :limit_messages) adds only when it fits; empty: vmaild's schema"`
	QuotaSet     string `yaml:"quota_set" mapstructure:"quota_set" help:"(:address, :bytes, :messages) overwrites the usage; empty: vmaild's schema"`
	SendLimits   string `yaml:"send_limits" mapstructure:"send_limits" help:"(:address, :domain) → the account's messages per hour, recipients per message, recipients per hour, then the domain's (NULL: the sending_limits default, 0: unlimited); empty: vmaild's schema, or none when account is overridden"`
}

// params carries every input a query may name.
type params struct {
	address, domain, source, destination string
	login                                string
	name, password, maildir, catchall    string
	aliasFor                             string
	active                               bool
	bytes, messages                      int64
	limitBytes, limitMessages            int64
	// quotaBytes/quotaMessages are nullable limits (NULL = domain default).
	quotaBytes, quotaMessages *int64
}

// paramValue returns a named input's value as a driver argument.
var paramValue = map[string]func(p *params) any{
	"address":        func(p *params) any { return p.address },
	"domain":         func(p *params) any { return p.domain },
	"source":         func(p *params) any { return p.source },
	"destination":    func(p *params) any { return p.destination },
	"login":          func(p *params) any { return p.login },
	"name":           func(p *params) any { return p.name },
	"password":       func(p *params) any { return p.password },
	"maildir":        func(p *params) any { return nullString(p.maildir) },
	"catchall":       func(p *params) any { return nullString(p.catchall) },
	"alias_for":      func(p *params) any { return nullString(p.aliasFor) },
	"active":         func(p *params) any { return p.active },
	"bytes":          func(p *params) any { return p.bytes },
	"messages":       func(p *params) any { return p.messages },
	"limit_bytes":    func(p *params) any { return p.limitBytes },
	"limit_messages": func(p *params) any { return p.limitMessages },
	"quota_bytes":    func(p *params) any { return nullInt(p.quotaBytes) },
	"quota_messages": func(p *params) any { return nullInt(p.quotaMessages) },
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullInt(n *int64) any {
	if n == nil {
		return nil
	}
	return *n
}

// query is a statement compiled from named to positional parameters.
type query struct {
	name   string
	sql    string
	inputs []func(p *params) any
}

func (q *query) args(p params) []any {
	a := make([]any, len(q.inputs))
	for i, f := range q.inputs {
		a[i] = f(&p)
	}
	return a
}

// compile replaces each :name outside quotes and comments with '?' and
// records which input goes there. An input not in allowed is an error, so a
// typo in an override fails at Open, not at the first login.
func compile(name, text string, allowed ...string) (*query, error) {
	q := &query{name: name}
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < len(text) && text[j] != c {
				if text[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(text) {
				return nil, fmt.Errorf("sql: query %s: unterminated %c", name, c)
			}
			b.WriteString(text[i : j+1])
			i = j
		case c == '-' && strings.HasPrefix(text[i:], "--"), c == '#':
			for i < len(text) && text[i] != '\n' {
				i++
			}
			b.WriteByte('\n')
		case c == '/' && strings.HasPrefix(text[i:], "/*"):
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("sql: query %s: unterminated comment", name)
			}
			i += 2 + end + 1
			b.WriteByte(' ')
		case c == '?':
			return nil, fmt.Errorf("sql: query %s: use named inputs (:address …), not '?'", name)
		case c == ':' && i+1 < len(text) && isNameByte(text[i+1]) && (i == 0 || text[i-1] != ':'):
			j := i + 1
			for j < len(text) && isNameByte(text[j]) {
				j++
			}
			in := text[i+1 : j]
			ok := false
			for _, a := range allowed {
				ok = ok || a == in
			}
			if !ok {
				return nil, fmt.Errorf("sql: query %s: unknown input :%s (allowed: :%s)", name, in, strings.Join(allowed, ", :"))
			}
			q.inputs = append(q.inputs, paramValue[in])
			b.WriteByte('?')
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	q.sql = strings.TrimSpace(b.String())
	if q.sql == "" {
		return nil, fmt.Errorf("sql: query %s is empty", name)
	}
	return q, nil
}

func isNameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// compiledQueries holds every statement the directory runs.
type compiledQueries struct {
	// Overridable reads and quota statements.
	account, password, domain, aliases, senderLogins          *query
	quotaUsage, quotaEnsure, quotaAdd, quotaReserve, quotaSet *query
	// sendLimits is nil when the schema has no sending limits.
	sendLimits *query

	// Admin statements on vmaild's own schema.
	addAccount, updateAccount, deleteAccount, deleteUsage *query
	setPassword, setAccountQuota                          *query
	listAccounts, listAllAccounts                         *query
	addDomain, deleteDomain, countDomainAccounts          *query
	countAliasDomains, deleteDomainAliases, listDomains   *query
	addAlias, deleteAlias, deleteAliasSource              *query
	listAliases, listAllAliases                           *query
	addSender, deleteSender, deleteSenderAddress          *query
	deleteLoginSenders, deleteDomainSenders               *query
	listSenders, listAllSenders                           *query
}

const (
	accountColumns = "address, name, active, quota_bytes, quota_messages, maildir"
	domainColumns  = "name, active, default_quota_bytes, default_quota_messages, catchall, alias_for"
)

// builtin are the statements for vmaild's own schema; only the upserts
// differ between the dialects.
func builtin(driver string) Queries {
	q := Queries{
		Account:  "SELECT " + accountColumns + " FROM accounts WHERE address = :address",
		Password: "SELECT " + accountColumns + ", password FROM accounts WHERE address = :address",
		Domain:   "SELECT " + domainColumns + " FROM domains WHERE name = :domain",
		Aliases:  "SELECT destination FROM aliases WHERE source = :source ORDER BY destination",

		SenderLogins: "SELECT login FROM sender_logins WHERE address = :address ORDER BY login",

		// Scalar subqueries: one row whether or not the account (LDAP) or
		// the domain has one.
		SendLimits: "SELECT" +
			" (SELECT send_messages_per_hour FROM accounts WHERE address = :address)," +
			" (SELECT send_recipients_per_message FROM accounts WHERE address = :address)," +
			" (SELECT send_recipients_per_hour FROM accounts WHERE address = :address)," +
			" (SELECT send_messages_per_hour FROM domains WHERE name = :domain)," +
			" (SELECT send_recipients_per_message FROM domains WHERE name = :domain)," +
			" (SELECT send_recipients_per_hour FROM domains WHERE name = :domain)",

		QuotaUsage: "SELECT bytes, messages FROM quota_usage WHERE address = :address",
		// The limit test and the increment are one statement: the row
		// lock makes concurrent reservations queue, never overshoot.
		QuotaReserve: "UPDATE quota_usage SET bytes = bytes + :bytes, messages = messages + :messages" +
			" WHERE address = :address" +
			" AND (:limit_bytes <= 0 OR bytes + :bytes <= :limit_bytes)" +
			" AND (:limit_messages <= 0 OR messages + :messages <= :limit_messages)",
	}
	switch driver {
	case driverMySQL:
		// ON DUPLICATE KEY UPDATE, not INSERT IGNORE: IGNORE would also
		// turn real errors (truncation) into warnings.
		q.QuotaEnsure = "INSERT INTO quota_usage (address, bytes, messages) VALUES (:address, 0, 0)" +
			" ON DUPLICATE KEY UPDATE address = address"
		q.QuotaAdd = "INSERT INTO quota_usage (address, bytes, messages)" +
			" VALUES (:address, GREATEST(:bytes, 0), GREATEST(:messages, 0))" +
			" ON DUPLICATE KEY UPDATE bytes = GREATEST(bytes + :bytes, 0), messages = GREATEST(messages + :messages, 0)"
		q.QuotaSet = "INSERT INTO quota_usage (address, bytes, messages) VALUES (:address, :bytes, :messages)" +
			" ON DUPLICATE KEY UPDATE bytes = :bytes, messages = :messages"
	default:
		q.QuotaEnsure = "INSERT INTO quota_usage (address, bytes, messages) VALUES (:address, 0, 0)" +
			" ON CONFLICT (address) DO NOTHING"
		q.QuotaAdd = "INSERT INTO quota_usage (address, bytes, messages)" +
			" VALUES (:address, MAX(:bytes, 0), MAX(:messages, 0))" +
			" ON CONFLICT (address) DO UPDATE SET bytes = MAX(bytes + :bytes, 0), messages = MAX(messages + :messages, 0)"
		q.QuotaSet = "INSERT INTO quota_usage (address, bytes, messages) VALUES (:address, :bytes, :messages)" +
			" ON CONFLICT (address) DO UPDATE SET bytes = excluded.bytes, messages = excluded.messages"
	}
	return q
}

func compileQueries(driver string, over Queries) (compiledQueries, error) {
	def := builtin(driver)
	pick := func(o, d string) string {
		if strings.TrimSpace(o) != "" {
			return o
		}
		return d
	}
	var c compiledQueries
	var err error
	must := func(dst **query, name, text string, allowed ...string) {
		if err != nil {
			return
		}
		*dst, err = compile(name, text, allowed...)
	}
	must(&c.account, "account", pick(over.Account, def.Account), "address")
	must(&c.password, "password", pick(over.Password, def.Password), "address")
	must(&c.domain, "domain", pick(over.Domain, def.Domain), "domain")
	must(&c.aliases, "aliases", pick(over.Aliases, def.Aliases), "source")
	must(&c.senderLogins, "sender_logins", pick(over.SenderLogins, def.SenderLogins), "address")
	must(&c.quotaUsage, "quota_usage", pick(over.QuotaUsage, def.QuotaUsage), "address")
	must(&c.quotaEnsure, "quota_ensure", pick(over.QuotaEnsure, def.QuotaEnsure), "address")
	must(&c.quotaAdd, "quota_add", pick(over.QuotaAdd, def.QuotaAdd), "address", "bytes", "messages")
	must(&c.quotaReserve, "quota_reserve", pick(over.QuotaReserve, def.QuotaReserve),
		"address", "bytes", "messages", "limit_bytes", "limit_messages")
	must(&c.quotaSet, "quota_set", pick(over.QuotaSet, def.QuotaSet), "address", "bytes", "messages")
	if strings.TrimSpace(over.SendLimits) != "" || strings.TrimSpace(over.Account) == "" {
		must(&c.sendLimits, "send_limits", pick(over.SendLimits, def.SendLimits), "address", "domain")
	}

	all := func(dst **query, name, text string) { must(dst, name, text, allInputs...) }
	all(&c.addAccount, "add account",
		"INSERT INTO accounts (address, domain, password, name, active, quota_bytes, quota_messages, maildir)"+
			" VALUES (:address, :domain, :password, :name, :active, :quota_bytes, :quota_messages, :maildir)")
	// An empty hash keeps the stored one: an LDIF import without
	// userPassword must not lock the user out.
	all(&c.updateAccount, "update account",
		"UPDATE accounts SET name = :name, active = :active, quota_bytes = :quota_bytes,"+
			" quota_messages = :quota_messages, maildir = :maildir,"+
			" password = CASE WHEN :password = '' THEN password ELSE :password END"+
			" WHERE address = :address")
	all(&c.deleteAccount, "delete account", "DELETE FROM accounts WHERE address = :address")
	all(&c.deleteUsage, "delete usage", "DELETE FROM quota_usage WHERE address = :address")
	all(&c.setPassword, "set password", "UPDATE accounts SET password = :password WHERE address = :address")
	all(&c.setAccountQuota, "set account quota",
		"UPDATE accounts SET quota_bytes = :quota_bytes, quota_messages = :quota_messages WHERE address = :address")
	all(&c.listAccounts, "list accounts",
		"SELECT "+accountColumns+" FROM accounts WHERE domain = :domain ORDER BY address")
	all(&c.listAllAccounts, "list all accounts", "SELECT "+accountColumns+" FROM accounts ORDER BY address")
	all(&c.addDomain, "add domain",
		"INSERT INTO domains (name, active, default_quota_bytes, default_quota_messages, catchall, alias_for)"+
			" VALUES (:domain, :active, :limit_bytes, :limit_messages, :catchall, :alias_for)")
	all(&c.deleteDomain, "delete domain", "DELETE FROM domains WHERE name = :domain")
	all(&c.countDomainAccounts, "count domain accounts", "SELECT COUNT(*) FROM accounts WHERE domain = :domain")
	all(&c.countAliasDomains, "count alias domains", "SELECT COUNT(*) FROM domains WHERE alias_for = :domain")
	all(&c.deleteDomainAliases, "delete domain aliases", "DELETE FROM aliases WHERE domain = :domain")
	all(&c.listDomains, "list domains", "SELECT "+domainColumns+" FROM domains ORDER BY name")
	all(&c.addAlias, "add alias",
		"INSERT INTO aliases (source, destination, domain) VALUES (:source, :destination, :domain)")
	all(&c.deleteAlias, "delete alias",
		"DELETE FROM aliases WHERE source = :source AND destination = :destination")
	all(&c.deleteAliasSource, "delete alias source", "DELETE FROM aliases WHERE source = :source")
	all(&c.listAliases, "list aliases",
		"SELECT source, destination FROM aliases WHERE domain = :domain ORDER BY source, destination")
	all(&c.listAllAliases, "list all aliases",
		"SELECT source, destination FROM aliases ORDER BY source, destination")
	all(&c.addSender, "add sender",
		"INSERT INTO sender_logins (address, login, domain) VALUES (:address, :login, :domain)")
	all(&c.deleteSender, "delete sender",
		"DELETE FROM sender_logins WHERE address = :address AND login = :login")
	all(&c.deleteSenderAddress, "delete sender address", "DELETE FROM sender_logins WHERE address = :address")
	all(&c.deleteLoginSenders, "delete login senders", "DELETE FROM sender_logins WHERE login = :login")
	all(&c.deleteDomainSenders, "delete domain senders", "DELETE FROM sender_logins WHERE domain = :domain")
	all(&c.listSenders, "list senders",
		"SELECT address, login FROM sender_logins WHERE domain = :domain ORDER BY address, login")
	all(&c.listAllSenders, "list all senders",
		"SELECT address, login FROM sender_logins ORDER BY address, login")
	return c, err
}

var allInputs = func() []string {
	var a []string
	for k := range paramValue {
		a = append(a, k)
	}
	return a
}()
