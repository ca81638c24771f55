package imap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/userdb"
)

// liveQuota charges the store's APPEND and COPY against the limit the
// directory gives now (the directory's cache keeps that cheap), so a limit
// changed by the admin applies to sessions already logged in.
type liveQuota struct {
	dir     userdb.Directory
	quotas  userdb.QuotaStore
	address string
}

func (q *liveQuota) limit(ctx context.Context) (userdb.Limit, error) {
	l, err := q.dir.QuotaLimit(ctx, q.address)
	if err != nil {
		return userdb.Limit{}, fmt.Errorf("quota limit %s: %w: %w", q.address, store.ErrTemporary, err)
	}
	return l, nil
}

func (q *liveQuota) Reserve(ctx context.Context, bytes, messages int64) error {
	l, err := q.limit(ctx)
	if err != nil {
		return err
	}
	return store.UserdbQuota{Store: q.quotas, Address: q.address, Limit: l}.Reserve(ctx, bytes, messages)
}

func (q *liveQuota) Release(ctx context.Context, bytes, messages int64) error {
	return store.UserdbQuota{Store: q.quotas, Address: q.address}.Release(ctx, bytes, messages)
}

// quotaRoot is the one quota root of an account: every folder shares the
// user's quota.
const quotaRoot = ""

// intercept answers the commands go-imap does not dispatch. cmd is the
// whole command with literals inline (already non-synchronizing).
func (f *frontConn) intercept(tag, name string, cmd []byte) (bool, error) {
	switch name {
	case "STARTTLS":
		return true, f.startTLS(tag, argsOf(cmd))
	case "GETQUOTAROOT", "GETQUOTA", "SETQUOTA":
	default:
		return false, nil
	}
	s := f.sess
	if s == nil || !s.loggedIn() {
		f.writeNow(tag + " BAD [CLIENTBUG] This command is only valid in the authenticated state\r\n")
		return true, nil
	}
	args, err := parseAStrings(argsOf(cmd))
	switch {
	case name == "SETQUOTA":
		f.writeNow(tag + " NO [NOPERM] Quota limits are set by the administrator\r\n")
		return true, nil
	case err != nil || len(args) != 1:
		f.writeNow(tag + " BAD [CLIENTBUG] " + name + " takes one argument\r\n")
		return true, nil
	}
	f.writeNow(s.quotaReply(tag, name, args[0]))
	return true, nil
}

// argsOf is what follows "tag NAME " (the CRLF removed).
func argsOf(cmd []byte) []byte {
	cmd = bytes.TrimRight(cmd, "\r\n")
	for i := 0; i < 2; i++ {
		sp := bytes.IndexByte(cmd, ' ')
		if sp < 0 {
			return nil
		}
		cmd = cmd[sp+1:]
	}
	return cmd
}

// quotaReply builds the whole answer to GETQUOTAROOT or GETQUOTA
// (RFC 9208): STORAGE in units of 1024 octets (usage rounded up, so a
// nearly full account never looks roomier than it is) and MESSAGE, each
// only when limited. An account without limits has no quota root.
func (s *session) quotaReply(tag, name string, arg astring) string {
	var b strings.Builder
	if s.srv.Quotas == nil {
		return tag + " NO [NONEXISTENT] No quota on this server\r\n"
	}
	if name == "GETQUOTAROOT" {
		mailbox, err := mailboxName(arg.text, false)
		if err != nil {
			return tag + " BAD [CLIENTBUG] Mailbox name is not valid modified UTF-7\r\n"
		}
		if err := s.folderExists(mailbox); err != nil {
			return tag + " " + replyOf(err) + "\r\n"
		}
	} else if arg.text != quotaRoot {
		return tag + " NO [NONEXISTENT] No such quota root\r\n"
	}
	limit, err := s.srv.Directory.QuotaLimit(s.ctx, s.user)
	if err != nil {
		s.log.Warn("imap quota limit", "err", err)
		return tag + " NO [UNAVAILABLE] Quota information unavailable, try again later\r\n"
	}
	var usage userdb.Usage
	if !limit.Unlimited() {
		usage, err = s.srv.Quotas.Usage(s.ctx, s.user)
		if err != nil {
			s.log.Warn("imap quota usage", "err", err)
			return tag + " NO [UNAVAILABLE] Quota information unavailable, try again later\r\n"
		}
	}
	if name == "GETQUOTAROOT" {
		b.WriteString("* QUOTAROOT ")
		b.WriteString(arg.raw)
		if !limit.Unlimited() {
			b.WriteString(` ""`)
		}
		b.WriteString("\r\n")
	} else if limit.Unlimited() {
		return tag + " NO [NONEXISTENT] No quota for this account\r\n"
	}
	if !limit.Unlimited() {
		var res []string
		if limit.Bytes > 0 {
			res = append(res, fmt.Sprintf("STORAGE %d %d", (max(usage.Bytes, 0)+1023)/1024, limit.Bytes/1024))
		}
		if limit.Messages > 0 {
			res = append(res, fmt.Sprintf("MESSAGE %d %d", max(usage.Messages, 0), limit.Messages))
		}
		b.WriteString(`* QUOTA "" (` + strings.Join(res, " ") + ")\r\n")
	}
	b.WriteString(tag + " OK " + name + " completed\r\n")
	return b.String()
}

// folderExists checks a folder without creating or indexing it.
func (s *session) folderExists(name string) error {
	folders, err := s.mb.ListFolders(s.ctx)
	if err != nil {
		return s.storeError("getquotaroot", err)
	}
	for _, fi := range folders {
		if fi.Name == name && !hasAttr(fi.Attrs, `\Noselect`) {
			return nil
		}
	}
	return no("NONEXISTENT", "No such mailbox")
}

// replyOf renders an *imap.Error as "NO [CODE] text".
func replyOf(err error) string {
	var ie *goimap.Error
	if errors.As(err, &ie) {
		r := string(ie.Type)
		if ie.Code != "" {
			r += " [" + string(ie.Code) + "]"
		}
		return r + " " + ie.Text
	}
	return "NO " + err.Error()
}

// astring is one parsed argument: its value and how the client wrote it
// (echoed back, so a mailbox name keeps its encoding).
type astring struct {
	text string
	raw  string
}

var errSyntax = errors.New("syntax error")

// parseAStrings splits arguments that are atoms, quoted strings or
// non-synchronizing literals (the front has rewritten every literal so).
func parseAStrings(b []byte) ([]astring, error) {
	var out []astring
	for len(b) > 0 {
		switch {
		case b[0] == ' ':
			b = b[1:]
		case b[0] == '"':
			var v []byte
			i := 1
			for ; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' && i+1 < len(b) {
					i++
				}
				if b[i] == '\r' || b[i] == '\n' {
					// Not in a quoted string (RFC 9051), and echoed
					// back it would end the response line.
					return nil, errSyntax
				}
				v = append(v, b[i])
			}
			if i == len(b) {
				return nil, errSyntax
			}
			out = append(out, astring{text: string(v), raw: string(b[:i+1])})
			b = b[i+1:]
		case b[0] == '{':
			end := bytes.Index(b, []byte("+}\r\n"))
			if end < 0 {
				return nil, errSyntax
			}
			n, err := strconv.Atoi(string(b[1:end]))
			if err != nil || n < 0 || end+4+n > len(b) {
				return nil, errSyntax
			}
			v := string(b[end+4 : end+4+n])
			out = append(out, astring{text: v, raw: strconv.Quote(v)})
			if strings.ContainsAny(v, "\r\n\"\\") || !isPrintable(v) {
				out[len(out)-1].raw = "{" + strconv.Itoa(n) + "}\r\n" + v
			}
			b = b[end+4+n:]
		default:
			i := 0
			for i < len(b) && (isAtomChar(b[i]) || b[i] == ']') {
				i++
			}
			if i == 0 {
				return nil, errSyntax
			}
			out = append(out, astring{text: string(b[:i]), raw: string(b[:i])})
			b = b[i:]
		}
	}
	return out, nil
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
