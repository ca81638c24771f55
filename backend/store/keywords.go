package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// loadKeywords rereads dovecot-keywords ("<index> <name>" per line, index
// 0–25 being the maildir letters a–z) when it changed. A missing or bad file
// just means no names; letters without a name are not reported.
func (st *folderState) loadKeywords() {
	p := st.path(kwName)
	fi, err := os.Stat(p)
	if err != nil {
		st.keywords, st.kwStamp = nil, 0
		return
	}
	stamp := fi.ModTime().UnixNano() ^ fi.Size()<<1
	if stamp == st.kwStamp && st.keywords != nil {
		return
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return
	}
	kw := make([]string, maxKeywords)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		idx, name, ok := strings.Cut(sc.Text(), " ")
		i, err := strconv.Atoi(idx)
		if !ok || err != nil || i < 0 || i >= maxKeywords || validKeyword(name) != nil {
			continue
		}
		kw[i] = name
	}
	st.keywords, st.kwStamp = kw, stamp
}

// validKeyword accepts an IMAP flag-keyword atom.
func validKeyword(k string) error {
	if k == "" || len(k) > 128 {
		return fmt.Errorf("%w: keyword length", ErrInvalid)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return fmt.Errorf("%w: keyword %q", ErrInvalid, k)
		}
	}
	return nil
}

// flagsFromNames turns IMAP flag names into Flags. With allocate, unknown
// keywords get a free letter (and dovecot-keywords is rewritten); without,
// they are ignored (removing a keyword nobody has is a no-op). \Recent
// cannot be stored and is ignored. Both locks must be held to allocate.
func (st *folderState) flagsFromNames(names []string, allocate bool) (Flags, error) {
	var f Flags
	changed := false
	for _, n := range names {
		if strings.EqualFold(n, `\Recent`) {
			continue
		}
		if b, ok := systemFlag(n); ok {
			f |= b
			continue
		}
		if strings.HasPrefix(n, `\`) {
			return 0, fmt.Errorf("%w: unknown system flag %q", ErrInvalid, n)
		}
		if err := validKeyword(n); err != nil {
			return 0, err
		}
		if st.keywords == nil {
			st.keywords = make([]string, maxKeywords)
		}
		free := -1
		found := false
		for i, k := range st.keywords {
			if k == "" {
				if free < 0 {
					free = i
				}
				continue
			}
			if strings.EqualFold(k, n) {
				f |= keywordFlag(i)
				found = true
				break
			}
		}
		if found || !allocate {
			continue
		}
		if free < 0 {
			return 0, fmt.Errorf("%w: more than %d keywords in folder", ErrInvalid, maxKeywords)
		}
		st.keywords[free] = n
		f |= keywordFlag(free)
		changed = true
	}
	if changed {
		if err := st.saveKeywords(); err != nil {
			return 0, err
		}
	}
	return f, nil
}

// saveKeywords writes dovecot-keywords atomically.
func (st *folderState) saveKeywords() error {
	var b bytes.Buffer
	for i, k := range st.keywords {
		if k != "" {
			fmt.Fprintf(&b, "%d %s\n", i, k)
		}
	}
	p := st.path(kwName)
	tmp := st.path("tmp/" + kwName + "." + strings.TrimSuffix(st.store.uniqueBase(time.Now(), 0), ",S=0"))
	if _, err := writeDurable(context.Background(), tmp, &b); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return ioError("rename", p, err)
	}
	if fi, err := os.Stat(p); err == nil {
		st.kwStamp = fi.ModTime().UnixNano() ^ fi.Size()<<1
	}
	return nil
}

// flagNames renders Flags as IMAP flag names with the given keyword table.
func flagNames(out []string, f Flags, keywords []string) []string {
	for i, n := range sysNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	for i := 0; i < maxKeywords && i < len(keywords); i++ {
		if f&keywordFlag(i) != 0 && keywords[i] != "" {
			out = append(out, keywords[i])
		}
	}
	return out
}
