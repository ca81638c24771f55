package store

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Delimiter is the IMAP hierarchy delimiter of folder names. "Archive/2024"
// is stored as the Maildir++ folder ".Archive.2024", so "." cannot appear
// inside a name component (it is the on-disk separator) and is refused,
// as Dovecot refuses it when its namespace separator is "/".
const Delimiter = "/"

// Inbox is the name of the account's main folder; it matches
// case-insensitively, as IMAP requires.
const Inbox = "INBOX"

// maxDirName bounds the on-disk folder name below NAME_MAX (255) with room
// for our temporary names during rename and delete.
const maxDirName = 200

// folderDir maps an IMAP folder name (UTF-8, "/"-separated) to the Maildir++
// directory name relative to the account's Maildir: "" for INBOX,
// ".Archive.2024" for "Archive/2024". Components are stored in modified
// UTF-7 as Dovecot stores them, so a migrated tree's "Entw&APw-rfe" is the
// client's "Entwürfe". The canonical name (INBOX upper-cased) is returned
// too, so that two spellings of one folder never become two folders.
func folderDir(name string) (dir, canonical string, err error) {
	if name == "" {
		return "", "", fmt.Errorf("%w: empty folder name", ErrInvalid)
	}
	if !utf8.ValidString(name) {
		return "", "", fmt.Errorf("%w: folder name is not UTF-8", ErrInvalid)
	}
	parts := strings.Split(name, Delimiter)
	if strings.EqualFold(parts[0], Inbox) {
		parts[0] = Inbox
		if len(parts) == 1 {
			return "", Inbox, nil
		}
	}
	var b strings.Builder
	for _, p := range parts {
		if err := checkComponent(p); err != nil {
			return "", "", fmt.Errorf("folder %q: %w", name, err)
		}
		b.WriteByte('.')
		b.WriteString(encodeMUTF7(p))
	}
	if b.Len() > maxDirName {
		return "", "", fmt.Errorf("%w: folder name %q too long", ErrInvalid, name)
	}
	return b.String(), strings.Join(parts, Delimiter), nil
}

// checkComponent refuses what could escape the tree, collide with another
// folder or confuse IMAP clients: empty components ("a//b", a trailing "/"),
// the on-disk separator ".", control characters and NUL, and the LIST
// wildcards.
func checkComponent(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty hierarchy level", ErrInvalid)
	}
	for _, r := range p {
		switch {
		case r == '.':
			return fmt.Errorf("%w: %q may not contain \".\"", ErrInvalid, p)
		case string(r) == Delimiter:
			// Only reachable from a directory name: a name is split
			// at the delimiter before its components are checked.
			return fmt.Errorf("%w: %q may not contain %q", ErrInvalid, p, Delimiter)
		case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
			return fmt.Errorf("%w: control character in %q", ErrInvalid, p)
		case r == '*', r == '%':
			return fmt.Errorf("%w: wildcard in %q", ErrInvalid, p)
		case r == utf8.RuneError:
			return fmt.Errorf("%w: bad UTF-8 in %q", ErrInvalid, p)
		}
	}
	return nil
}

// folderName is the inverse of folderDir for a directory entry of the
// Maildir; ok is false for entries that are not folders we can name (cur,
// tmp, Dovecot's and our own files, undecodable names) and for a second
// spelling of a folder's directory (modified UTF-7 split into two runs or
// with stray low bits, "inbox" for "INBOX", ".INBOX" for the Maildir
// itself), and for entries longer than folderDir ever writes: folderDir would map the name to the first spelling, so the
// entry would show up as a folder that every operation misses.
func folderName(dir string) (name string, ok bool) {
	if len(dir) < 2 || dir[0] != '.' || dir == ".." || len(dir) > maxDirName {
		// Longer than folderDir writes: no name of ours maps to it.
		return "", false
	}
	parts := strings.Split(dir[1:], ".")
	for i, p := range parts {
		n, err := decodeMUTF7(p)
		if err != nil || checkComponent(n) != nil || encodeMUTF7(n) != p {
			return "", false
		}
		parts[i] = n
	}
	if strings.EqualFold(parts[0], Inbox) && (parts[0] != Inbox || len(parts) == 1) {
		// ".INBOX" is not INBOX, which is the Maildir itself.
		return "", false
	}
	return strings.Join(parts, Delimiter), true
}

// mutf7 is RFC 3501's modified base64: "," instead of "/", no padding.
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// encodeMUTF7 encodes a UTF-8 name component as IMAP modified UTF-7
// (RFC 3501 5.1.3), the on-disk form Dovecot uses for Maildir folders.
func encodeMUTF7(s string) string {
	var b strings.Builder
	var run []uint16
	flush := func() {
		if len(run) == 0 {
			return
		}
		buf := make([]byte, 0, 2*len(run))
		for _, u := range run {
			buf = append(buf, byte(u>>8), byte(u))
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(buf))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = utf16.AppendRune(run, r)
	}
	flush()
	return b.String()
}

// decodeMUTF7 decodes a modified UTF-7 component strictly enough that
// decode∘encode is the identity for everything folderDir accepts.
func decodeMUTF7(s string) (string, error) {
	if !strings.Contains(s, "&") {
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("%w: bad UTF-8", ErrInvalid)
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '&' {
			b.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", fmt.Errorf("%w: unterminated modified UTF-7", ErrInvalid)
		}
		enc := s[i+1 : i+1+end]
		i += end + 2
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := mutf7.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", fmt.Errorf("%w: bad modified UTF-7", ErrInvalid)
		}
		u := make([]uint16, len(raw)/2)
		for j := range u {
			u[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		for _, r := range utf16.Decode(u) {
			if r == utf8.RuneError || (r >= 0x20 && r <= 0x7e) {
				return "", fmt.Errorf("%w: bad modified UTF-7", ErrInvalid)
			}
			b.WriteRune(r)
		}
	}
	if !utf8.ValidString(b.String()) {
		return "", fmt.Errorf("%w: bad UTF-8", ErrInvalid)
	}
	return b.String(), nil
}
