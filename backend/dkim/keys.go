package dkim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// KeySpec names one key in the configuration: "DOMAIN:SELECTOR" for the
// key in the data folder, "DOMAIN:SELECTOR:PATH" for one kept elsewhere.
type KeySpec struct {
	Domain, Selector, Path string
}

// ParseKeySpec reads "DOMAIN:SELECTOR[:PATH]".
func ParseKeySpec(s string) (KeySpec, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return KeySpec{}, fmt.Errorf("dkim key %q is not DOMAIN:SELECTOR or DOMAIN:SELECTOR:PATH", s)
	}
	ks := KeySpec{Domain: strings.ToLower(strings.TrimSuffix(parts[0], ".")), Selector: parts[1]}
	if err := CheckSelector(ks.Selector); err != nil {
		return KeySpec{}, err
	}
	if len(parts) == 3 {
		ks.Path = parts[2]
	}
	return ks, nil
}

// CheckSelector refuses a selector that is not a DNS label sequence (and
// so also one that would leave the key folder as a file name).
func CheckSelector(s string) error {
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("dkim selector %q is not a DNS name", s)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("dkim selector %q is not a DNS name", s)
			}
		}
	}
	return nil
}

// LoadKeys loads the keys that sign: for a domain named in specs, exactly
// the keys named there (a key's file defaults to KeyPath(dir, …)); for
// every other folder dir/DOMAIN, each DOMAIN/SELECTOR.key in it, so a key
// made by `vmaild dkim keygen` signs from the next start without more
// configuration. A key that cannot be loaded is an error: a domain an
// admin gave a key must not silently go out unsigned. Keys loaded with a
// loose file mode come back with a warning each (errors wrapping
// ErrLooseMode).
func LoadKeys(dir string, specs []KeySpec) (keys []Key, warnings []error, err error) {
	named := map[string]bool{}
	for _, ks := range specs {
		named[ks.Domain] = true
	}
	all := slices.Clone(specs)
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("dkim keys: %w", err)
		}
		for _, e := range entries {
			domain := strings.ToLower(e.Name())
			if !e.IsDir() || named[domain] {
				continue
			}
			files, err := os.ReadDir(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, nil, fmt.Errorf("dkim keys: %w", err)
			}
			for _, f := range files {
				sel, ok := strings.CutSuffix(f.Name(), ".key")
				if !ok || f.IsDir() {
					continue
				}
				if err := CheckSelector(sel); err != nil {
					return nil, nil, fmt.Errorf("dkim keys: %s: %w", filepath.Join(dir, e.Name(), f.Name()), err)
				}
				all = append(all, KeySpec{Domain: domain, Selector: sel, Path: filepath.Join(dir, e.Name(), f.Name())})
			}
		}
	}
	for _, ks := range all {
		path := ks.Path
		if path == "" {
			path = KeyPath(dir, ks.Domain, ks.Selector)
		}
		k, err := LoadKey(path)
		if errors.Is(err, ErrLooseMode) {
			warnings = append(warnings, err)
		} else if err != nil {
			return nil, nil, fmt.Errorf("dkim key %s:%s: %w", ks.Domain, ks.Selector, err)
		}
		keys = append(keys, Key{Domain: ks.Domain, Selector: ks.Selector, Signer: k})
	}
	return keys, warnings, nil
}
