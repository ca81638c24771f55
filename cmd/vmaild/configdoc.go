package main

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// configDocRegenerate is how CONFIG.md is rewritten after a key changes;
// the test that compares the file with configReference says so too.
const configDocRegenerate = "go test ./cmd/vmaild -run ConfigDoc -update-config-md"

// machineDefaults are defaults that depend on where vmaild runs, so the
// reference describes them instead of printing this machine's value.
var machineDefaults = map[string]string{
	"hostname":                           "the machine's host name",
	"data_dir":                           "`$VMAILD_DATA`, else `./data`",
	"login.max_concurrent_verifications": "the number of CPUs",
	"login.max_waiting":                  "16 × `max_concurrent_verifications`",
	"login.max_waiting_per_network":      "`max_waiting` ÷ 4",
}

// configSections introduces each top-level section of the reference; keys
// at the top level itself form the "general" section.
var configSections = map[string]struct{ title, intro string }{
	"":    {"General", ""},
	"log": {"Logging", "Structured logs (log/slog) on standard error; passwords never appear in them."},
	"userdb": {"User directory", "Which backend serves which kind of lookup, and the cache in front of them. " +
		"Accounts and passwords come from `sql` or `ldap`; domains, aliases, the sender map and quota usage always come from SQL."},
	"sql": {"SQL database", "The SQL user directory: SQLite (embedded default) or MySQL/MariaDB. " +
		"Apply the schema with `vmaild db migrate` (SQLite is migrated by `serve`). " +
		"The `sql.queries.*` keys replace the built-in queries for an existing schema " +
		"(inputs by name, `:address`, `:domain`, …; columns by position); " +
		"see [userdb/sql/POSTFIXADMIN.md](userdb/sql/POSTFIXADMIN.md)."},
	"ldap": {"LDAP accounts", "Used when `userdb.accounts` is `ldap`. Plain `inetOrgPerson` entries with `mail`, " +
		"`userPassword` and `cn` work as they are; the optional schema in `schema/ldap/` adds the attributes " +
		"named in `ldap.attributes.*` (`vmailQuotaBytes`, `vmailQuotaMessages`, `vmailActive`, `vmailMaildir`, `vmailSenderAddress`, `vmailSendMessagesPerHour`, `vmailSendRecipientsPerMessage`, `vmailSendRecipientsPerHour`)."},
	"listen": {"Listeners", "One socket per protocol; an empty address turns the listener off. " +
		"smtp is the MTA (25), submission uses STARTTLS (587), submissions implicit TLS (465); " +
		"imap and pop3 offer STARTTLS/STLS, imaps and pop3s are implicit TLS. " +
		"dovecot_auth, saslauthd, policy and socketmap are the auth bridge's sockets for a Postfix or Exim in front " +
		"(README, \"Keep your Postfix\")."},
	"limits": {"Connection limits", "One connection gate in front of every listener: the counts are shared by all of them, " +
		"so a client network's connections to SMTP, IMAP and POP3 add up. A refused client is told so in its protocol " +
		"(SMTP `421 4.7.0`, IMAP `* BYE [UNAVAILABLE]`, POP3 `-ERR [SYS/TEMP]`; implicit TLS ports just close). " +
		"The time limits are absolute: no command, byte or library timeout restarts them. " +
		"Refusals and limits reached are logged with the client network and counted in `vmaild_connections_refused_total`."},
	"tls": {"TLS", "The certificate every TLS listener serves. `SIGHUP` or `vmaild reload` reloads it without a restart."},
	"smtp": {"SMTP policy", "Relay, size and sender policy of the SMTP listeners. Relaying needs a client in `mynetworks` or an authenticated session. " +
		"An authenticated user sends only as its own address, its plus forms, the same local part in an alias domain, " +
		"and what `vmaild sender` (or `ldap.attributes.sender_address`) grants; aliases and catch-alls grant nothing."},
	"store": {"Mail store", "Maildir++ laid out as Dovecot does it, with a UID index beside the files."},
	"queue": {"Outbound queue", "The durable spool for remote recipients: MX lookup, retries, bounces. " +
		"`queue.tls.*` is the TLS towards other servers: a `queue.tls.policy` entry decides for the destinations it names; " +
		"the others get DANE when their MX host has DNSSEC-validated TLSA records, else their MTA-STS policy, else opportunistic TLS. " +
		"A message received with REQUIRETLS (RFC 8689) goes only over DANE- or MTA-STS-authenticated TLS to a server that takes REQUIRETLS, or bounces with 5.7.30; " +
		"one with the header `TLS-Required: No` gets DANE and MTA-STS applied but not enforced. " +
		"The delivery log (`tls_policy`), `vmaild queue show` and bounces name the policy that applied."},
	"delivery": {"Local delivery", "The delivery agent: aliases, quota, loops, folders."},
	"metrics": {"Metrics and health", "Prometheus `/metrics` and `/healthz` on their own listener. `/healthz` is 200 when SQL and LDAP answer, " +
		"the store and queue folders are writable and their file systems have `min_free_bytes` free; " +
		"otherwise 503 with one line per failed check."},
	"srs": {"Sender Rewriting Scheme", "Mail forwarded to a remote destination leaves with an SRS0/SRS1 envelope sender in `srs.domain` " +
		"(the format of postsrsd and Mail::SRS; postsrsd's secret file works as it is), so SPF passes at the next hop and bounces come back here. " +
		"A bounce to such an address is delivered to the original sender after its hash and age are checked; " +
		"a forged or expired one is refused at RCPT with `550 5.7.1`. The MX of `srs.domain` must be this server."},
	"dkim": {"DKIM signing", "Mail authenticated users send to remote destinations, and the queue's bounces, are DKIM-signed (RFC 6376, ed25519 or RSA) " +
		"by the domain of their From header when that domain has a key; every key of a domain signs, so a rotation has two signatures. " +
		"Make keys with `vmaild dkim keygen DOMAIN`, publish `vmaild dkim show DOMAIN`. Keys are read at start and on reload; one that does not load stops the start, and a reload keeps the old keys."},
	"dns": {"DNS records of hosted domains", "What `vmaild dns DOMAIN` prints and `vmaild dns check DOMAIN` looks up, beside what the " +
		"configuration already says: the MX (hostname), the DKIM keys (`dkim.*`), the autoconfig and autodiscover names and the RFC 6186 SRV " +
		"records (the listeners as autoconfig announces them). The MTA-STS policy's id is derived from its content, so it changes with it."},
	"sending_limits": {"Sending limits", "What an authenticated user (submission, or AUTH on smtp) may send, per account and per domain " +
		"(all its accounts together): messages and recipients per hour (a sliding hour), recipients per message; 0 is unlimited. " +
		"The directory overrides them per account (SQL `accounts.send_*` columns, LDAP `vmailSend*` attributes) and per domain " +
		"(`domains.send_*`); NULL or absent keeps these defaults. Over an hourly limit MAIL or RCPT gets `450 4.7.1` (the client's " +
		"queue retries later), over the recipients of one message the RCPT gets `452 4.5.3` (RFC 5321 4.5.3.1.10: the client sends " +
		"the rest in another message); each refusal is logged and counted in `vmaild_send_limit_refusals_total`. " +
		"Counts live in memory: a restart starts them afresh. `vmaild limits` shows who is near a limit."},
	"inbound": {"Inbound checks", "Scanners and milters consulted on the MTA listener at the end of DATA, after the message is spooled and before the reply, " +
		"so a refusal is an SMTP reply and never a bounce. Each is optional (an empty address turns it off) and has its own roles, timeout, size limit " +
		"and failure mode: `tempfail` (451 4.7.1, nothing is delivered unscanned) or `accept` (delivered with an `X-Vmaild-Unchecked` field). " +
		"A virus is refused with 554 5.7.1; spam gets `X-Spam-Flag`, `X-Spam-Score` and `X-Spam-Status` and is filed into the recipient's Junk folder " +
		"(or refused, see `rspamd.reject_as_junk` and `spamd.reject_score`). Every check and verdict is logged on one line and counted in " +
		"`vmaild_inbound_checks_total` and `vmaild_inbound_verdicts_total`."},
	"control": {"Control channel", "The unix socket on which `vmaild serve` answers the admin commands while it runs " +
		"(`vmaild queue …`, `auth-cache flush`, `reload`, `status`); without a running server they work on the files. " +
		"The socket's file mode is its access control; each change is logged with the caller's uid (SO_PEERCRED)."},
	"autoconfig": {"Client autoconfiguration", "Thunderbird autoconfig, Outlook autodiscover (POX) and an Apple `.mobileconfig` for every hosted domain " +
		"(other domains: 404), announcing the enabled imaps, imap, pop3s, pop3, submissions and submission listeners " +
		"(implicit TLS first) with the full address as login. See the README for the DNS names and the RFC 6186 SRV records."},
	"mta_sts": {"Our MTA-STS policy", "One MTA-STS policy (RFC 8461) for every hosted domain D, served at `https://mta-sts.D/.well-known/mta-sts.txt` " +
		"(the name asked for, SNI or Host, picks the domain; other names: 404). Senders fetch it when `_mta-sts.D` has a TXT record `v=STSv1; id=…`; " +
		"change the id whenever mode, mx or max_age change. Start with `testing`, switch to `enforce` once every MX has a valid certificate."},
	"client_networks": {"Client networks", "How client addresses are grouped wherever clients are counted or limited: " +
		"one IPv4 address, and one IPv6 /64, since a host or a customer line is usually handed a whole /64."},
	"bridge": {"Auth bridge", "What the `listen.dovecot_auth`, `saslauthd`, `policy` and `socketmap` sockets answer a Postfix or Exim in front: " +
		"logins through the login service, recipients as vmaild's RCPT judges them, lookups with vmaild's alias resolution."},
	"login": {"Login service", "One login service checks every password (SMTP AUTH, IMAP, POP3). " +
		"Failures per account and per client network delay the next attempt, doubling up to `penalty_cap`, never locking anyone out; " +
		"a client network that logged in to an account skips the delays for it. " +
		"At most `max_concurrent_verifications` password hashes are verified at once (each Argon2 one holds its memory), " +
		"`max_waiting` logins queue for a slot and the rest get a temporary failure. " +
		"A refused login without a verification (an unknown user) pays for a dummy one in `userdb.password_scheme`, so timing does not tell. " +
		"`login.hashes.*` caps the cost a stored hash may ask for: a costlier hash is refused, logged once, and never allocated."},
}

// configReference renders CONFIG.md from configKeys, so the reference lists
// exactly the keys the file, the environment and the flags accept.
func configReference() string {
	keys := configKeys(defaultConfig())
	bySection := map[string][]configKey{}
	for _, k := range keys {
		section, _, nested := strings.Cut(k.Name, ".")
		if !nested {
			section = ""
		}
		bySection[section] = append(bySection[section], k)
	}

	var b strings.Builder
	b.WriteString("<!-- Generated from the Config struct by configReference in cmd/vmaild/configdoc.go; do not edit.\n")
	fmt.Fprintf(&b, "     Regenerate: %s -->\n\n", configDocRegenerate)
	b.WriteString(`# vmaild configuration reference

vmaild reads one YAML file: ` + "`-c FILE`" + `, else ` + "`$VMAILD_CONFIG`" + `, else ` + "`/etc/vmaild/vmaild.yaml`" + `; without one it
runs on the defaults below (SQLite and Maildir under the data folder, unprivileged
ports, a self-signed certificate). Every key can also be set by an environment
variable and by a flag of the same name (` + "`--sql.dsn`" + `). A flag beats the
environment, which beats the file, which beats the default.

- A dotted key is a nested YAML mapping: ` + "`listen.smtp.address`" + ` is
  ` + "`listen: {smtp: {address: \":25\"}}`" + `.
- Durations are written as Go writes them: ` + "`90s`, `5m`, `120h`" + `.
- Sizes take units, 1024-based: ` + "`10M`, `1.5G`, `500K`" + `, or a plain number of bytes.
- A list is a YAML sequence in the file and comma-separated in the environment
  (` + "`VMAILD_SMTP_MYNETWORKS=127.0.0.0/8,192.0.2.0/24`" + `). A variable that is set
  but empty counts: ` + "`VMAILD_SMTP_MYNETWORKS=`" + ` is an empty list.
- An unknown key in the file is an error that names it: a misspelt key silently
  ignored is how mail servers end up open relays.
- Secrets (` + "`sql.dsn`, `ldap.bind_password`, `queue.smarthost.password`, `srs.secrets`" + `) are best
  kept out of the file, in the environment.

` + "`vmaild config keys`" + ` prints this table; ` + "`vmaild config check`" + ` reports every
problem of a configuration and every server it cannot reach, writing nothing;
` + "`vmaild config show`" + ` prints the effective configuration, secrets masked.

Two environment variables are not keys: ` + "`VMAILD_CONFIG`" + ` (the file to read) and
` + "`VMAILD_DATA`" + ` (the default of ` + "`data_dir`" + `).
`)
	for _, section := range configSectionOrder() {
		ks := bySection[section]
		if len(ks) == 0 {
			continue
		}
		delete(bySection, section)
		s, ok := configSections[section]
		if !ok {
			s.title = section
		}
		fmt.Fprintf(&b, "\n## %s\n\n", s.title)
		if s.intro != "" {
			fmt.Fprintf(&b, "%s\n\n", s.intro)
		}
		b.WriteString("| key | type | default | environment | meaning |\n")
		b.WriteString("|---|---|---|---|---|\n")
		for _, k := range ks {
			fmt.Fprintf(&b, "| `%s` | %s | %s | `%s` | %s |\n",
				k.Name, keyType(k), keyDefault(k), k.Env, markdownCell(keyHelp(k)))
		}
	}
	return b.String()
}

// configSectionOrder follows the Config struct, so the reference reads in
// the order an admin writes a file: general first, then each section.
func configSectionOrder() []string {
	order := []string{""}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			order = append(order, tag)
		}
	}
	return order
}

// keyHelp is a key's meaning: its help tag.
func keyHelp(k configKey) string { return k.Help }

func keyType(k configKey) string {
	if k.Unit == "bytes" {
		return "size"
	}
	return typeName(k.Type)
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem())
	case t.Kind() == reflect.Int, t.Kind() == reflect.Int64:
		return "integer"
	}
	return t.Kind().String()
}

func keyDefault(k configKey) string {
	if d, ok := machineDefaults[k.Name]; ok {
		return d
	}
	if s, ok := k.Default.(string); ok && s == "" {
		return "*empty*"
	}
	return "`" + formatKeyValue(k, k.Default) + "`"
}

// shortDuration writes 120h for 120h0m0s, as an admin would.
func shortDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// markdownCell keeps help text from breaking the table or being read as
// HTML (<base_dn>).
func markdownCell(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}
