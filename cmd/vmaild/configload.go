package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// envPrefix is what every configuration key is overridable by:
// sql.dsn is VMAILD_SQL_DSN.
const envPrefix = "VMAILD"

// configKey is one leaf of the configuration, derived from the Config
// struct so that the file, the environment, the flags and the reference in
// CONFIG.md can never disagree about what exists.
type configKey struct {
	Name    string // dotted: sql.dsn
	Env     string // VMAILD_SQL_DSN
	Default any
	Type    reflect.Type
	Help    string
	// Unit is "bytes" for sizes, read by parseByteSize and printed with
	// units by formatByteSize.
	Unit string
}

// configKeys walks the struct by its yaml tags.
func configKeys(def Config) []configKey {
	var keys []configKey
	walkKeys(reflect.ValueOf(def), "", &keys)
	sort.Slice(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
	return keys
}

var durationType = reflect.TypeOf(time.Duration(0))

func walkKeys(v reflect.Value, prefix string, keys *[]configKey) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		name := tag
		if prefix != "" {
			name = prefix + "." + tag
		}
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			walkKeys(fv, name, keys)
			continue
		}
		*keys = append(*keys, configKey{
			Name:    name,
			Env:     envPrefix + "_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(name)),
			Default: fv.Interface(),
			Type:    f.Type,
			Help:    f.Tag.Get("help"),
			Unit:    f.Tag.Get("unit"),
		})
	}
}

// loadConfig reads the YAML file (if any), then VMAILD_* variables, then
// flags; later sources win. It reports every problem it finds at once, as
// one error wrapping errConfig: unknown keys (a misspelt key silently
// ignored is how mail servers end up open relays), values of the wrong
// shape, values out of range. A variable that is set but empty counts:
// VMAILD_SMTP_MYNETWORKS= is an empty list.
func loadConfig(path string, flags *pflag.FlagSet) (Config, error) {
	def := defaultConfig()
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	keys := configKeys(def)
	for _, k := range keys {
		v.SetDefault(k.Name, k.Default)
		if flags != nil {
			if f := flags.Lookup(k.Name); f != nil {
				if err := v.BindPFlag(k.Name, f); err != nil {
					return Config{}, err
				}
			}
		}
	}
	var problems, misshapen []string
	file := map[string]any{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config file: %w", err)
		}
		if err := v.ReadConfig(bytes.NewReader(b)); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", path, err)
		}
		// v.AllSettings merges the defaults in; the file alone is what
		// the admin wrote.
		fv := viper.New()
		fv.SetConfigType("yaml")
		if err := fv.ReadConfig(bytes.NewReader(b)); err == nil {
			file = fv.AllSettings()
		}
		var p []string
		p, misshapen = checkFileKeys(file, keys)
		problems = append(problems, p...)
	}
	cfg := def
	root := reflect.ValueOf(&cfg).Elem()
	for _, k := range keys {
		if slices.ContainsFunc(misshapen, func(s string) bool { return strings.HasPrefix(k.Name, s+".") }) {
			continue // reported once, as the section's shape
		}
		raw, source := v.Get(k.Name), "file"
		switch {
		case flags != nil && flags.Lookup(k.Name) != nil && flags.Lookup(k.Name).Changed:
			source = "--" + k.Name
		case os.Getenv(k.Env) != "":
			source = k.Env
		default:
			if env, set := os.LookupEnv(k.Env); set && env == "" {
				raw, source = "", k.Env+" (set, empty)"
			}
		}
		val, err := decodeKey(k, raw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v (from %s)", k.Name, err, source))
			continue
		}
		fieldByKey(root, k.Name).Set(val)
	}
	problems = append(problems, cfg.validate()...)
	if len(problems) > 0 {
		return cfg, &configError{problems: problems}
	}
	return cfg, nil
}

// configError is every problem of one configuration, one a line.
type configError struct{ problems []string }

func (e *configError) Error() string {
	return fmt.Sprintf("%v (%d problem(s)):\n  %s", errConfig, len(e.problems), strings.Join(e.problems, "\n  "))
}

func (e *configError) Unwrap() error { return errConfig }

// checkFileKeys walks what the file holds against the Config's tree: a key
// the Config does not have is unknown; a section given a plain value, or a
// value given a mapping, says what shape the key wants. It returns the
// problems and the sections whose value is not a mapping.
func checkFileKeys(file map[string]any, keys []configKey) (problems, misshapen []string) {
	leaves := map[string]configKey{}
	sections := map[string][]string{} // section -> its direct children
	for _, k := range keys {
		leaves[k.Name] = k
		parts := strings.Split(k.Name, ".")
		for i := 0; i < len(parts); i++ {
			sec := strings.Join(parts[:i], ".") // "" is the top level
			if !slices.Contains(sections[sec], parts[i]) {
				sections[sec] = append(sections[sec], parts[i])
			}
		}
	}
	var unknown []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			name := n
			if prefix != "" {
				name = prefix + "." + n
			}
			val := m[n]
			if _, ok := leaves[name]; ok {
				continue // decodeKey judges the value
			}
			children, isSection := sections[name]
			if !isSection {
				if near := nearestKey(n, sections[prefix]); near != "" {
					name += " (did you mean " + near + "?)"
				}
				unknown = append(unknown, name)
				continue
			}
			sub, isMap := val.(map[string]any)
			if !isMap {
				problems = append(problems, fmt.Sprintf("%s: expected a mapping with %s (like %s: {%s: …}), not %s",
					name, strings.Join(children, ", "), n, children[0], describeValue(val)))
				misshapen = append(misshapen, name)
				continue
			}
			walk(name, sub)
		}
	}
	walk("", file)
	if len(unknown) > 0 {
		problems = append([]string{"unknown key(s): " + strings.Join(unknown, ", ") +
			" (`vmaild config keys` lists the keys)"}, problems...)
	}
	return problems, misshapen
}

// nearestKey is the sibling a misspelt key most likely meant (adress:
// address, mynetwork: mynetworks), or "".
func nearestKey(typed string, siblings []string) string {
	best, bestDist := "", 3 // at most two edits away
	for _, s := range siblings {
		if d := editDistance(typed, s); d < bestDist {
			best, bestDist = s, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of two short keys.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// describeValue names what a value is, for the errors about shapes.
func describeValue(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("%q", v)
	case nil:
		return "an empty value"
	}
	return fmt.Sprint(v)
}

// fieldByKey finds the struct field of a dotted key by the yaml tags, the
// way walkKeys named it.
func fieldByKey(v reflect.Value, name string) reflect.Value {
	for _, part := range strings.Split(name, ".") {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if tag == "" {
				tag = strings.ToLower(t.Field(i).Name)
			}
			if tag == part {
				v = v.Field(i)
				break
			}
		}
	}
	return v
}

// decodeKey turns one key's value, from whichever source, into its Go
// type; the error says what shape the key expects.
func decodeKey(k configKey, raw any) (reflect.Value, error) {
	out := reflect.New(k.Type).Elem()
	if _, ok := raw.(map[string]any); ok && k.Type.Kind() != reflect.Map {
		return out, fmt.Errorf("expected %s, not a mapping", expectedShape(k))
	}
	switch {
	case k.Unit == "bytes":
		s, ok := scalarString(raw)
		if !ok {
			return out, fmt.Errorf("expected %s, not %s", expectedShape(k), describeValue(raw))
		}
		n, err := parseByteSize(s)
		if err != nil || out.OverflowInt(n) {
			return out, fmt.Errorf("%q: expected %s", s, expectedShape(k))
		}
		out.SetInt(n)
	case k.Type == durationType:
		switch r := raw.(type) {
		case time.Duration:
			out.SetInt(int64(r))
		case string:
			d, err := time.ParseDuration(strings.TrimSpace(r))
			if err != nil {
				return out, fmt.Errorf("%q: expected %s", r, expectedShape(k))
			}
			out.SetInt(int64(d))
		case int:
			// A bare number would be nanoseconds: say so rather than
			// wait 30ns for "30".
			if r != 0 {
				return out, fmt.Errorf("%d has no unit: expected %s", r, expectedShape(k))
			}
		default:
			return out, fmt.Errorf("expected %s, not %s", expectedShape(k), describeValue(raw))
		}
	case k.Type.Kind() == reflect.Int || k.Type.Kind() == reflect.Int64:
		s, ok := scalarString(raw)
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if !ok || err != nil || out.OverflowInt(n) {
			return out, fmt.Errorf("%s: expected %s", describeValue(raw), expectedShape(k))
		}
		out.SetInt(n)
	case k.Type.Kind() == reflect.Bool:
		s, ok := scalarString(raw)
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if !ok || err != nil {
			return out, fmt.Errorf("%s: expected %s", describeValue(raw), expectedShape(k))
		}
		out.SetBool(b)
	case k.Type.Kind() == reflect.String:
		s, ok := scalarString(raw)
		if !ok {
			return out, fmt.Errorf("expected %s, not %s", expectedShape(k), describeValue(raw))
		}
		out.SetString(s)
	case k.Type.Kind() == reflect.Slice && k.Type.Elem().Kind() == reflect.String:
		list := []string{}
		switch r := raw.(type) {
		case []string:
			list = append(list, r...)
		case []any:
			for _, e := range r {
				s, ok := scalarString(e)
				if !ok {
					return out, fmt.Errorf("expected %s, but an item is %s", expectedShape(k), describeValue(e))
				}
				list = append(list, s)
			}
		case string:
			// The environment's spelling: comma-separated, empty for none.
			for _, s := range strings.Split(r, ",") {
				if s = strings.TrimSpace(s); s != "" {
					list = append(list, s)
				}
			}
		case nil:
		default:
			return out, fmt.Errorf("expected %s, not %s", expectedShape(k), describeValue(raw))
		}
		out.Set(reflect.ValueOf(list).Convert(k.Type))
	default:
		// Maps (sql.queries) and anything else the struct may grow.
		if err := mapstructure.WeakDecode(raw, out.Addr().Interface()); err != nil {
			return out, fmt.Errorf("expected %s: %v", expectedShape(k), err)
		}
	}
	return out, nil
}

// scalarString is a single value as text; lists and mappings are not.
func scalarString(raw any) (string, bool) {
	switch r := raw.(type) {
	case nil:
		return "", true
	case string:
		return r, true
	case map[string]any, []any, []string:
		return "", false
	}
	return fmt.Sprint(raw), true
}

// formatKeyValue writes a value the way the configuration takes it back:
// sizes with units, durations short, lists in brackets.
func formatKeyValue(k configKey, v any) string {
	switch d := v.(type) {
	case int64:
		if k.Unit == "bytes" {
			return formatByteSize(d)
		}
	case time.Duration:
		return shortDuration(d)
	case []string:
		return "[" + strings.Join(d, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// expectedShape says in words what a key takes.
func expectedShape(k configKey) string {
	switch {
	case k.Unit == "bytes":
		return "a size like 10M, 1.5G or a number of bytes"
	case k.Type == durationType:
		return "a duration like 30s, 5m or 1h30m"
	case k.Type.Kind() == reflect.Int || k.Type.Kind() == reflect.Int64:
		return "a whole number"
	case k.Type.Kind() == reflect.Bool:
		return "true or false"
	case k.Type.Kind() == reflect.String:
		return "a single value"
	case k.Type.Kind() == reflect.Slice:
		return "a list like [a, b] (a comma-separated list in the environment)"
	case k.Type.Kind() == reflect.Map:
		return "a mapping of names to values"
	}
	return "a " + k.Type.String()
}

// addConfigFlags makes every key a flag (--sql.dsn), hidden from the short
// help so it stays readable; `vmaild config keys` lists them.
func addConfigFlags(flags *pflag.FlagSet) {
	for _, k := range configKeys(defaultConfig()) {
		help := k.Help
		if help == "" {
			help = "configuration key " + k.Name
		}
		switch d := k.Default.(type) {
		case int64:
			if k.Unit == "bytes" {
				// Read by decodeKey, so --smtp.max_message_bytes 10M works.
				flags.String(k.Name, formatByteSize(d), help)
			} else {
				flags.Int64(k.Name, d, help)
			}
		case string:
			flags.String(k.Name, d, help)
		case bool:
			flags.Bool(k.Name, d, help)
		case int:
			flags.Int(k.Name, d, help)
		case time.Duration:
			flags.Duration(k.Name, d, help)
		case []string:
			flags.StringSlice(k.Name, d, help)
		default:
			continue // maps and structs: file or environment only
		}
		flags.Lookup(k.Name).Hidden = true
	}
}

var errConfig = errors.New("invalid configuration")
