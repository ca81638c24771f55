package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// masked stands for a secret in `config show`.
const masked = "********"

// showConfig prints the effective configuration, one `key: value` a line
// (or one JSON object), with every secret masked; changedOnly keeps the
// keys whose value differs from the default, as postconf -n does.
func showConfig(w io.Writer, cfg Config, changedOnly, asJSON bool) error {
	// The defaults as validate completes them, so that queue.dir under
	// the default data_dir is not "changed".
	def := defaultConfig()
	def.validate()
	defaults := map[string]string{}
	for _, k := range configKeys(def) {
		defaults[k.Name] = formatKeyValue(k, k.Default)
	}
	obj := map[string]any{}
	var lines []string
	for _, k := range configKeys(cfg) {
		if changedOnly && formatKeyValue(k, k.Default) == defaults[k.Name] {
			continue
		}
		v := maskSecret(k.Name, k.Default)
		obj[k.Name] = jsonValue(k, v)
		lines = append(lines, k.Name+": "+formatKeyValue(k, v))
	}
	if asJSON {
		return printJSON(w, obj)
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	return nil
}

// jsonValue is a value as the configuration file would take it: sizes and
// durations in their written form, the rest as JSON's own types.
func jsonValue(k configKey, v any) any {
	switch v.(type) {
	case time.Duration:
		return formatKeyValue(k, v)
	case int64:
		if k.Unit == "bytes" {
			return formatKeyValue(k, v)
		}
	}
	return v
}

// isSecretKey names the keys whose whole value is a secret. Keys that name
// a file holding one (srs.secret_file, tls.key_file) are not secret.
func isSecretKey(name string) bool {
	switch name {
	case "ldap.bind_password", "queue.smarthost.password", "srs.secrets", "inbound.rspamd.password":
		return true
	}
	return false
}

// maskSecret hides a secret key's value, the password in a MySQL DSN and
// the password in any URL (ldap://user:pw@host).
func maskSecret(name string, v any) any {
	switch v := v.(type) {
	case string:
		if v == "" {
			return v
		}
		if isSecretKey(name) {
			return masked
		}
		if name == "sql.dsn" {
			if c, err := mysql.ParseDSN(v); err == nil && c.Passwd != "" && strings.Contains(v, "@") {
				return strings.Replace(v, ":"+c.Passwd+"@", ":"+masked+"@", 1)
			}
		}
		if u, err := url.Parse(v); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "x")
				return strings.Replace(u.String(), ":x@", ":"+masked+"@", 1)
			}
		}
		return v
	case []string:
		out := make([]string, len(v))
		for i, s := range v {
			out[i], _ = maskSecret(name, s).(string)
		}
		return out
	}
	return v
}
