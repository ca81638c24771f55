package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzFolderNames: a folder name the store accepts maps to a directory
// name that maps back to it, and that is the only name for the directory;
// a directory entry the store lists as a folder maps to a name that maps
// back to that same entry, so two entries on disk are never one folder.
func FuzzFolderNames(f *testing.F) {
	for _, s := range []string{
		"INBOX", "inbox/Sub", "Archive/2024", "Entwürfe", "Entw&APw-rfe", "a&b", "&-", "日本語/メール",
		".Archive.2024", ".Entw&APw-rfe", ".&AOk-", ".&AOl-", ".&AOk-&AOk-", ".&AOkA6Q-", ".INBOX.x", ".inbox.x",
		"a//b", "a/", "a.b", "*", "%", "a\x00b", "\xff", ".", "..", ".&-", ".&", ".&Jjo-", ".&2D3cAA-",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// s as a name a client asks for.
		dir, canonical, err := folderDir(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("folderDir(%q): %v does not wrap ErrInvalid", s, err)
			}
		} else {
			if canonical == Inbox {
				if dir != "" {
					t.Fatalf("folderDir(%q) = %q for INBOX", s, dir)
				}
			} else if name, ok := folderName(dir); !ok || name != canonical {
				t.Fatalf("folderDir(%q) = %q, %q; back: %q, %v", s, dir, canonical, name, ok)
			}
			if !utf8.ValidString(canonical) || strings.ContainsAny(dir, "/\x00") || len(dir) > maxDirName {
				t.Fatalf("folderDir(%q) = %q, %q", s, dir, canonical)
			}
			if d2, c2, err := folderDir(canonical); err != nil || d2 != dir || c2 != canonical {
				t.Fatalf("folderDir(%q) = %q, %q; folderDir of that = %q, %q, %v", s, dir, canonical, d2, c2, err)
			}
		}
		// s as a directory entry found on disk.
		if name, ok := folderName(s); ok {
			d, c, err := folderDir(name)
			if err != nil || d != s || c != name {
				t.Fatalf("folderName(%q) = %q, which maps to %q, %q, %v", s, name, d, c, err)
			}
		}
	})
}

// FuzzFileName: splitting a maildir file name into base and flags and
// writing it back gives a name that splits the same way, and names the
// store writes split back to what it wrote.
func FuzzFileName(f *testing.F) {
	for _, s := range []string{
		"1700000000.M1P2Q3R4.host,S=123,W=130:2,FRS", "1700000000.M1.host:2,", "1700000000.x,S=5:2,Sab", "a:b:2,S",
		"1.2.host,S=-1:2,T", "x:1,foo", "x:", "1700000000.M1.host,S=99999999999999999999:2,zZ", "", ":2,", ".hidden:2,S",
	} {
		f.Add(s, uint32(0))
	}
	f.Fuzz(func(t *testing.T, name string, bits uint32) {
		base, flags := splitName(name)
		if strings.Contains(base, infoSep) || !strings.HasPrefix(name, base) {
			t.Fatalf("splitName(%q) base %q", name, base)
		}
		again := fileName(base, flags)
		if b2, f2 := splitName(again); b2 != base || f2 != flags {
			t.Fatalf("splitName(%q) = %q, %b; fileName = %q, which splits to %q, %b", name, base, flags, again, b2, f2)
		}
		if fileName(splitName(again)) != again {
			t.Fatalf("fileName is not canonical: %q", again)
		}
		// Flags the store writes, on a base without ":" as it makes them.
		if !strings.Contains(name, ":") {
			written := fileName(name, Flags(bits))
			if b, fl := splitName(written); b != name || fl != Flags(bits) {
				t.Fatalf("fileName(%q, %b) = %q splits to %q, %b", name, bits, written, b, fl)
			}
		}
		if n, ok := sizeFromName(base); ok && n < 0 {
			t.Fatalf("sizeFromName(%q) = %d", base, n)
		}
		timeFromName(base)
		if validFileName(name) && (strings.ContainsAny(name, "/\n\x00") || name[0] == '.') {
			t.Fatalf("validFileName(%q)", name)
		}
	})
}

// FuzzIndexLog: parseLog accepts a prefix of whole, valid lines (or
// reports damage), every record it applies encodes to a line that decodes
// to the same record, and replaying them keeps the folder's invariants:
// UIDs ascending and unique, none zero, UIDNEXT above every UID (or zero,
// "exhausted").
func FuzzIndexLog(f *testing.F) {
	var seed []byte
	for _, r := range []record{
		{op: 'H', a: 1700000000, b: 5},
		{op: 'A', uid: 1, inNew: true, size: 10, date: 1700000000, name: "1700000000.M1.h,S=10"},
		{op: 'A', uid: 3, size: 20, date: 1700000001, name: "1700000001.M2.h,S=20:2,S"},
		{op: 'R', uid: 1, name: "1700000000.M1.h,S=10:2,RS"},
		{op: 'X', uid: 3},
		{op: 'A', uid: 4294967295, size: 1, date: 1, name: "last"},
		{op: 'M', a: 1, b: 2},
		{op: 'Z', a: 1700000000000000, b: 1700000000000000},
		{op: 'A', uid: 5, size: 30, date: 1700000002, name: "1700000002.M3.h,S=30"},
		{op: 'Q', uid: 5, a: 1700000000000001},
		{op: 'R', uid: 5, name: "1700000002.M3.h,S=30:2,S"},
		{op: 'Q', uid: 5, a: 1700000000000002},
		{op: 'X', uid: 1},
		{op: 'Q', uid: 1, a: 1700000000000003},
		{op: 'B', uid: 5},
	} {
		seed = appendRecord(seed, r)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-5])
	f.Add(append(append([]byte(nil), seed...), "00000000 A 1 n 1 1 x\n"...))
	// A snapshot as a compaction writes it: Q of an expunge before the
	// message's own, Q out of order, a Z below its floor (bad).
	var snap []byte
	for _, r := range []record{
		{op: 'H', a: 1700000000, b: 9},
		{op: 'A', uid: 2, size: 10, date: 1700000000, name: "1700000000.M1.h,S=10:2,S"},
		{op: 'M', a: 1, b: 2},
		{op: 'Z', a: 50, b: 40},
		{op: 'Q', uid: 7, a: 45},
		{op: 'Q', uid: 2, a: 48},
		{op: 'Q', uid: 3, a: 41},
		{op: 'B', uid: 2},
	} {
		snap = appendRecord(snap, r)
	}
	f.Add(snap)
	f.Add(append(append([]byte(nil), snap...), appendRecord(nil, record{op: 'Z', a: 1, b: 2})...))
	f.Fuzz(func(t *testing.T, data []byte) {
		st := newFolderState(nil, "")
		var records []record
		good, torn, err := parseLog(data, func(r record) {
			records = append(records, r)
			st.apply(r)
		})
		if err != nil {
			if !errors.Is(err, errBadRecord) {
				t.Fatalf("parseLog: %v", err)
			}
			return
		}
		if good < 0 || good > int64(len(data)) || torn != (good < int64(len(data))) {
			t.Fatalf("parseLog of %d octets: good %d, torn %v", len(data), good, torn)
		}
		if n := bytes.Count(data[:good], []byte("\n")); n != len(records) {
			t.Fatalf("%d records from %d lines", len(records), n)
		}
		for _, r := range records {
			line := appendRecord(nil, r)
			back, err := parseRecord(line[:len(line)-1])
			if err != nil || back != r {
				t.Fatalf("record %+v encodes to %q, which decodes to %+v, %v", r, line, back, err)
			}
		}
		for i := 1; i < len(st.modLog); i++ {
			if st.modLog[i].ms < st.modLog[i-1].ms {
				t.Fatalf("modseq log out of order at %d: %v", i, st.modLog)
			}
		}
		for _, e := range st.msgs {
			if e.modseq > st.highest {
				t.Fatalf("uid %d modseq %d above HIGHESTMODSEQ %d", e.uid, e.modseq, st.highest)
			}
		}
		var prev uint32
		for i, e := range st.msgs {
			if e.uid == 0 || i > 0 && e.uid <= prev || st.next != 0 && e.uid >= st.next {
				t.Fatalf("after replay: message %d has UID %d (previous %d, UIDNEXT %d)", i, e.uid, prev, st.next)
			}
			prev = e.uid
		}
	})
}

// FuzzDovecotFiles reads the same bytes as Dovecot's dovecot-uidlist and
// dovecot-keywords: a uidlist that is believed has a UIDVALIDITY, a
// UIDNEXT above every UID it maps, and only valid file bases, each the
// base of the files it names; keywords are valid atoms at letters a–z.
func FuzzDovecotFiles(f *testing.F) {
	for _, s := range []string{
		"3 V1700000000 N5 Gabc\n1 :1700000000.M1.h,S=10:2,S\n4 W20 :1700000001.M2.h\n",
		"1 1700000000 3\n1 1700000000.M1.h\n2 1700000001.M2.h:2,RS\n",
		"3 V1 N1\n4294967295 :x\n",
		"3 V0 N1\n",
		"0 $Forwarded\n1 Junk\n25 last\n26 out\n-1 neg\nx bad\n3 (paren\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range []string{uidlistName, kwName} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if validity, next, m, ok := readUIDList(filepath.Join(dir, uidlistName)); ok {
			if validity == 0 || next == 0 {
				t.Fatalf("uidlist believed with UIDVALIDITY %d, UIDNEXT %d", validity, next)
			}
			for base, uid := range m {
				if b, _ := splitName(base + infoSep); uid == 0 || uid >= next || !validFileName(base) || b != base {
					t.Fatalf("uidlist maps %q to %d (UIDNEXT %d)", base, uid, next)
				}
			}
		}
		st := newFolderState(nil, dir)
		st.loadKeywords()
		if len(st.keywords) > maxKeywords {
			t.Fatalf("%d keywords", len(st.keywords))
		}
		for _, k := range st.keywords {
			if k != "" && validKeyword(k) != nil {
				t.Fatalf("keyword %q", k)
			}
		}
	})
}
