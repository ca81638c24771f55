package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
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
		})
	}
}

// loadConfig reads the YAML file (if any), then VMAILD_* variables, then
// flags; later sources win. Unknown keys in the file are errors, naming the
// key, because a misspelt key silently ignored is how mail servers end up
// open relays.
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
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return Config{}, fmt.Errorf("config file: %w", err)
		}
		err = v.ReadConfig(f)
		f.Close()
		if err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", path, err)
		}
		if err := checkUnknownKeys(v, keys, path); err != nil {
			return Config{}, err
		}
	}
	var cfg Config
	if err := v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.TagName = "yaml"
		dc.ErrorUnused = false
		dc.WeaklyTypedInput = true
	}); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, cfg.validate()
}

// checkUnknownKeys names every key in the file that the Config does not
// have. Map-valued keys (such as sql.queries) accept any sub-key.
func checkUnknownKeys(v *viper.Viper, keys []configKey, path string) error {
	known := map[string]bool{}
	maps := map[string]bool{}
	for _, k := range keys {
		known[k.Name] = true
		if k.Type.Kind() == reflect.Map {
			maps[k.Name] = true
		}
	}
	var unknown []string
	for _, k := range v.AllKeys() {
		if known[k] {
			continue
		}
		inMap := false
		for m := range maps {
			if strings.HasPrefix(k, m+".") {
				inMap = true
			}
		}
		if !inMap {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config file %s: unknown key(s): %s", path, strings.Join(unknown, ", "))
	}
	return nil
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
		case string:
			flags.String(k.Name, d, help)
		case bool:
			flags.Bool(k.Name, d, help)
		case int:
			flags.Int(k.Name, d, help)
		case int64:
			flags.Int64(k.Name, d, help)
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
