// Package mtasts is SMTP MTA Strict Transport Security (RFC 8461) for
// both sides of vmaild: the formats (the _mta-sts TXT record and the
// policy file), the sending side's fetch over HTTPS and cache, and the
// HTTP handler that serves the hosted domains' own policy at
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt.
package mtasts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is a policy's mode (RFC 8461 section 5).
type Mode string

const (
	// Enforce: deliver only to a matching MX over verified TLS.
	Enforce Mode = "enforce"
	// Testing: deliver as without a policy, but report what would fail.
	Testing Mode = "testing"
	// None: the domain withdrew its policy.
	None Mode = "none"
)

// MaxAge is the largest max_age a policy may have (about a year, RFC 8461
// section 3.2).
const MaxAge = 31557600 * time.Second

// MaxPolicyBytes bounds a fetched policy; RFC 8461 section 3.3 suggests
// 64 KiB.
const MaxPolicyBytes = 64 << 10

// Record is a parsed _mta-sts TXT record.
type Record struct {
	// ID changes whenever the policy does.
	ID string
}

// ErrNoRecord: the TXT strings hold no STSv1 record.
var ErrNoRecord = errors.New("mta-sts: no STSv1 TXT record")

// ParseRecord parses one TXT record (its strings joined): "v=STSv1;
// id=20240101T000000;" with optional spaces and extension fields. A
// record not starting with v=STSv1 is ErrNoRecord, as RFC 8461 section
// 3.1 says such records are not MTA-STS at all.
func ParseRecord(txt string) (Record, error) {
	fields := strings.Split(txt, ";")
	first := strings.TrimSpace(fields[0])
	if first != "v=STSv1" {
		return Record{}, ErrNoRecord
	}
	var r Record
	seen := false
	for _, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			continue // trailing ";"
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" || !isFieldName(k) {
			return Record{}, fmt.Errorf("mta-sts: record field %q is not name=value", f)
		}
		if k != "id" {
			continue // extensions are ignored
		}
		if seen {
			return Record{}, errors.New("mta-sts: record has two id fields")
		}
		if v == "" || len(v) > 32 || !isAlnum(v) {
			return Record{}, fmt.Errorf("mta-sts: record id %q is not 1 to 32 letters and digits", v)
		}
		r.ID, seen = v, true
	}
	if !seen {
		return Record{}, errors.New("mta-sts: record has no id")
	}
	return r, nil
}

// FindRecord picks the record from the TXT answer for _mta-sts.DOMAIN,
// each element one record's strings joined. Other TXT records there are
// ignored; no STSv1 record is ErrNoRecord, and two of them are an error
// (RFC 8461 section 3.1: then there is no policy).
func FindRecord(txts []string) (Record, error) {
	var found []Record
	for _, t := range txts {
		r, err := ParseRecord(t)
		if errors.Is(err, ErrNoRecord) {
			continue
		}
		if err != nil {
			return Record{}, err
		}
		found = append(found, r)
	}
	switch len(found) {
	case 0:
		return Record{}, ErrNoRecord
	case 1:
		return found[0], nil
	}
	return Record{}, fmt.Errorf("mta-sts: %d STSv1 TXT records", len(found))
}

// Policy is a parsed policy file.
type Policy struct {
	Mode Mode
	// MX are the patterns of the domain's MX hosts: a host name or
	// "*.suffix", lower case, without a trailing dot.
	MX     []string
	MaxAge time.Duration
}

// ParsePolicy parses a policy file (RFC 8461 section 3.2): "key: value"
// lines ending in CRLF or LF, version STSv1, mode, max_age and, unless
// the mode is none, at least one mx. Unknown keys are ignored.
func ParsePolicy(b []byte) (*Policy, error) {
	if len(b) > MaxPolicyBytes {
		return nil, fmt.Errorf("mta-sts: policy of %d bytes is over %d", len(b), MaxPolicyBytes)
	}
	p := &Policy{}
	var version, mode, maxAge bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1024), MaxPolicyBytes+1)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || !isFieldName(k) {
			return nil, fmt.Errorf("mta-sts: policy line %d %q is not key: value", n, trim(line))
		}
		v = strings.Trim(v, " \t")
		switch k {
		case "version":
			if version {
				return nil, errors.New("mta-sts: policy has two version lines")
			}
			if v != "STSv1" {
				return nil, fmt.Errorf("mta-sts: policy version %q is not STSv1", trim(v))
			}
			version = true
		case "mode":
			if mode {
				return nil, errors.New("mta-sts: policy has two mode lines")
			}
			switch Mode(v) {
			case Enforce, Testing, None:
				p.Mode, mode = Mode(v), true
			default:
				return nil, fmt.Errorf("mta-sts: policy mode %q is not enforce, testing or none", trim(v))
			}
		case "max_age":
			if maxAge {
				return nil, errors.New("mta-sts: policy has two max_age lines")
			}
			secs, err := strconv.ParseUint(v, 10, 64)
			if err != nil || len(v) > 10 {
				return nil, fmt.Errorf("mta-sts: policy max_age %q is not a number of seconds", trim(v))
			}
			p.MaxAge = time.Duration(min(secs, uint64(MaxAge/time.Second))) * time.Second
			maxAge = true
		case "mx":
			pat, err := mxPattern(v)
			if err != nil {
				return nil, err
			}
			p.MX = append(p.MX, pat)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mta-sts: policy: %w", err)
	}
	switch {
	case !version:
		return nil, errors.New("mta-sts: policy has no version line")
	case !mode:
		return nil, errors.New("mta-sts: policy has no mode line")
	case !maxAge:
		return nil, errors.New("mta-sts: policy has no max_age line")
	case p.Mode != None && len(p.MX) == 0:
		return nil, errors.New("mta-sts: policy has no mx line")
	}
	return p, nil
}

// mxPattern checks one mx value: a host name, or "*." and a host name.
func mxPattern(v string) (string, error) {
	v = strings.ToLower(strings.TrimSuffix(v, "."))
	name := strings.TrimPrefix(v, "*.")
	if !isHostname(name) {
		return "", fmt.Errorf("mta-sts: policy mx %q is not a host name or *.host name", trim(v))
	}
	return v, nil
}

// Match reports whether host (an MX host name) matches one of the
// policy's mx patterns. A wildcard stands for exactly one leftmost label
// (RFC 8461 section 4.1).
func (p *Policy) Match(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if suffix, ok := strings.CutPrefix(pat, "*."); ok {
			label, rest, found := strings.Cut(host, ".")
			if found && label != "" && rest == suffix {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

// Format writes the policy file as served, CRLF line ends as RFC 8461's
// ABNF has them.
func (p *Policy) Format() []byte {
	var b bytes.Buffer
	b.WriteString("version: STSv1\r\n")
	fmt.Fprintf(&b, "mode: %s\r\n", p.Mode)
	for _, mx := range p.MX {
		fmt.Fprintf(&b, "mx: %s\r\n", mx)
	}
	fmt.Fprintf(&b, "max_age: %d\r\n", int64(p.MaxAge/time.Second))
	return b.Bytes()
}

// isFieldName: sts-field-name / sts-ext-name, letters, digits, "_", "-",
// ".", starting with a letter or digit.
func isFieldName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// isHostname: dot-separated labels of letters, digits and inner hyphens,
// 253 characters at most.
func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// trim bounds remote text quoted in an error.
func trim(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
