package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/internal/testscan"
	"github.com/vmaild/vmaild/internal/testsrv"
)

const (
	gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
	clean = "Hello Alice,\r\n\r\nthe minutes of Tuesday's meeting are below.\r\n"
)

// scanMessage is a message from a remote sender to rcpt with body.
func scanMessage(rcpt, subject, body string) string {
	return "From: <someone@remote.test>\r\nTo: <" + rcpt + ">\r\nSubject: " + subject +
		"\r\nDate: Thu, 03 Dec 2026 15:00:00 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@remote.test>\r\n" +
		"X-Spam-Flag: NO\r\n\r\n" + body + "\r\n"
}

// attachment is a multipart message carrying content as a base64
// attachment (encoded as given: broken base64 stays broken).
func attachment(rcpt, subject, encoded string) string {
	return "From: <someone@remote.test>\r\nTo: <" + rcpt + ">\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=file.com\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		encoded + "\r\n--b1--\r\n"
}

// nestedMIME wraps an EICAR attachment depth multiparts deep.
func nestedMIME(rcpt string, depth int) string {
	inner := "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte(testscan.EICAR)) + "\r\n"
	for i := depth; i > 0; i-- {
		inner = fmt.Sprintf("Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n%s--n%d--\r\n", i, i, inner, i)
	}
	return "From: <someone@remote.test>\r\nTo: <" + rcpt + ">\r\nSubject: nested\r\nMIME-Version: 1.0\r\n" + inner
}

// mailbox lists the messages of a folder ("" INBOX) of a user of
// example.com.
func (d *e2eDaemon) mailbox(user, folder string) []string {
	d.t.Helper()
	dir := filepath.Join(filepath.Dir(d.config), "data", "mail", "example.com", user, "Maildir")
	if folder != "" {
		dir = filepath.Join(dir, "."+folder)
	}
	var out []string
	for _, sub := range []string{"new", "cur"} {
		files, _ := filepath.Glob(filepath.Join(dir, sub, "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				d.t.Fatal(err)
			}
			out = append(out, string(b))
		}
	}
	return out
}

// scanDaemon runs vmaild with the inbound YAML given and users alice and
// bob in example.com.
func scanDaemon(t *testing.T, inbound string) *e2eDaemon {
	t.Helper()
	d := newDaemon(t, "inbound:\n"+inbound)
	d.start()
	t.Cleanup(d.stop)
	d.cli("", "domain", "add", "example.com")
	for _, u := range []string{"alice", "bob"} {
		d.cli(u+"-secret\n", "user", "add", u+"@example.com", "--password-stdin")
	}
	return d
}

// TestServeScanners: the MTA consults real scanners before its reply.
// Viruses and rspamd's reject are refused in-session (554 5.7.1) and
// nothing is delivered; clean mail is delivered with the scanners' fields
// and opendkim's Authentication-Results; spam goes into Junk at the
// configured thresholds; a scanner down or hung is 451 within its timeout
// (fail closed) or a marked delivery (fail open); hostile attachments are
// refused or pass without stalling anything.
func TestServeScanners(t *testing.T) {
	var pool testscan.Pool
	t.Cleanup(pool.Close)
	rspamd, spamd, clamd, opendkim := pool.Rspamd(t), pool.Spamd(t), pool.Clamd(t), pool.OpenDKIM(t)
	closed := "127.0.0.1:" + strconv.Itoa(testsrv.FreePort(t))

	t.Run("refused in session", func(t *testing.T) {
		d := scanDaemon(t, fmt.Sprintf(`  clamd:
    address: %s
  rspamd:
    url: %s
    max_size: 256K
    oversize: reject
  milter:
    sockets: [opendkim=inet:%s]
`, clamd.Socket, rspamd.URL, opendkim.Addr))
		out := d.cli("", "config", "check")
		for _, want := range []string{"clamd " + clamd.Socket + ": reachable", "rspamd " + rspamd.URL + ": reachable",
			"milter opendkim inet:" + opendkim.Addr + ": reachable"} {
			if !strings.Contains(out, want) {
				t.Errorf("config check does not say %q:\n%s", want, out)
			}
		}
		eicar := base64.StdEncoding.EncodeToString([]byte(testscan.EICAR))
		for _, tt := range []struct {
			name, msg, want string
		}{
			{"EICAR", attachment("alice@example.com", "eicar", eicar), "554 5.7.1 Virus found: Eicar-Test-Signature.UNOFFICIAL"},
			{"EICAR nested 40 deep", nestedMIME("alice@example.com", 40), "554 5.7.1 Virus found: Heuristics.Limits.Exceeded"},
			{"GTUBE", scanMessage("alice@example.com", "gtube", gtube), "554 5.7.1 Gtube pattern"},
			{"oversized", scanMessage("alice@example.com", "big", strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 5000)), "552 5.3.4"},
		} {
			err := sendMail(t, d.addr("smtp"), nil, "someone@remote.test", []string{"alice@example.com"}, tt.msg)
			if got := replyOf(err); !strings.HasPrefix(got, tt.want) {
				t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
			}
		}
		if got := d.mailbox("alice", ""); len(got) != 0 {
			t.Fatalf("%d refused messages delivered", len(got))
		}
		// Clean mail and broken base64 pass, with every check's fields.
		for _, msg := range []string{
			scanMessage("alice@example.com", "clean", clean),
			attachment("alice@example.com", "broken", "SGVsbG8g!!!*not base64 at all===\r\nV29ybGQ"),
		} {
			if err := sendMail(t, d.addr("smtp"), nil, "someone@remote.test", []string{"alice@example.com"}, msg); err != nil {
				t.Fatal(err)
			}
		}
		got := d.mailbox("alice", "")
		if len(got) != 2 {
			t.Fatalf("%d messages in INBOX, want 2", len(got))
		}
		for _, m := range got {
			head, _, _ := strings.Cut(m, "\r\n\r\n")
			for _, want := range []string{"X-Virus-Scanned: clamd; clean", "X-Spam-Flag: NO", "X-Spam-Status: No, score=",
				"Authentication-Results: " + opendkim.AuthservID + "; dkim=none"} {
				if !strings.Contains(head, want) {
					t.Errorf("header lacks %q:\n%s", want, head)
				}
			}
			if strings.Count(head, "X-Spam-Flag:") != 1 {
				t.Errorf("the sender's X-Spam-Flag survived:\n%s", head)
			}
		}
		// Submission is not scanned unless a scanner's roles name it.
		login := &[2]string{"alice@example.com", "alice-secret"}
		if err := sendMail(t, d.addr("submission"), login, "alice@example.com", []string{"bob@example.com"},
			strings.Replace(scanMessage("bob@example.com", "submitted", gtube), "someone@remote.test", "alice@example.com", 1)); err != nil {
			t.Fatalf("submission: %v", err)
		}
		if got := d.mailbox("bob", ""); len(got) != 1 || strings.Contains(got[0], "X-Spam-Status") {
			t.Errorf("submitted mail: %q", got)
		}
		out = d.out.String()
		for _, want := range []string{"msg=check", "check=clamd result=reject", "check=rspamd result=reject", "check=opendkim result=accept", "msg=verdict", "action=reject"} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %q", want)
			}
		}
		metrics := httpGet(t, "http://"+d.addr("metrics")+"/metrics")
		for _, want := range []string{`vmaild_inbound_verdicts_total{action="reject"} 4`, `vmaild_inbound_checks_total{check="clamd",result="reject"} 2`,
			`vmaild_inbound_check_seconds_count{check="opendkim"} 2`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})

	t.Run("spam into Junk", func(t *testing.T) {
		d := scanDaemon(t, fmt.Sprintf(`  rspamd:
    url: %s
    reject_as_junk: true
  spamd:
    address: %s
  junk:
    thresholds: [bob@example.com=off]
`, rspamd.URL, spamd.Addr))
		for _, rcpt := range []string{"alice@example.com", "bob@example.com"} {
			for _, msg := range []string{scanMessage(rcpt, "spam", gtube), scanMessage(rcpt, "ham", clean)} {
				if err := sendMail(t, d.addr("smtp"), nil, "someone@remote.test", []string{rcpt}, msg); err != nil {
					t.Fatal(err)
				}
			}
		}
		junk, inbox := d.mailbox("alice", "Junk"), d.mailbox("alice", "")
		if len(junk) != 1 || len(inbox) != 1 || !strings.Contains(junk[0], "Subject: spam") {
			t.Fatalf("alice: %d in Junk, %d in INBOX", len(junk), len(inbox))
		}
		for _, want := range []string{"X-Spam-Flag: YES", "scanner=rspamd", "scanner=spamd", "tests=GTUBE"} {
			if !strings.Contains(junk[0], want) {
				t.Errorf("spam lacks %q:\n%s", want, junk[0])
			}
		}
		if junk, inbox := d.mailbox("bob", "Junk"), d.mailbox("bob", ""); len(junk) != 0 || len(inbox) != 2 {
			t.Errorf("bob (junk off): %d in Junk, %d in INBOX", len(junk), len(inbox))
		}

		// Sieve reads the same verdict (spamtest), and a user's own
		// fileinto wins over Junk; a script that does not file the spam
		// leaves it to Junk (the implicit keep goes there).
		scripts := map[string]string{
			"carol": `require ["spamtest", "relational", "comparator-i;ascii-numeric", "fileinto", "mailbox"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "6" { fileinto :create "Spamtest"; }
`,
			"dave": `if header :contains "subject" "no such subject" { discard; }
`,
		}
		for user, script := range scripts {
			d.cli(user+"-secret\n", "user", "add", user+"@example.com", "--password-stdin")
			file := filepath.Join(t.TempDir(), user+".sieve")
			if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			d.cli("", "sieve", "put", user+"@example.com", "main", file, "--activate")
			for _, msg := range []string{scanMessage(user+"@example.com", "spam", gtube), scanMessage(user+"@example.com", "ham", clean)} {
				if err := sendMail(t, d.addr("smtp"), nil, "someone@remote.test", []string{user + "@example.com"}, msg); err != nil {
					t.Fatal(err)
				}
			}
		}
		if st, junk, inbox := d.mailbox("carol", "Spamtest"), d.mailbox("carol", "Junk"), d.mailbox("carol", ""); len(st) != 1 || len(junk) != 0 || len(inbox) != 1 ||
			!strings.Contains(st[0], "Subject: spam") {
			t.Errorf("carol (spamtest script): %d in Spamtest, %d in Junk, %d in INBOX", len(st), len(junk), len(inbox))
		}
		if junk, inbox := d.mailbox("dave", "Junk"), d.mailbox("dave", ""); len(junk) != 1 || len(inbox) != 1 {
			t.Errorf("dave (script without spam rules): %d in Junk, %d in INBOX", len(junk), len(inbox))
		}
	})

	t.Run("scanner down or hung", func(t *testing.T) {
		d := scanDaemon(t, fmt.Sprintf(`  clamd:
    address: %s
    timeout: 2s
  rspamd:
    url: http://%s
    on_failure: accept
`, clamd.Socket, closed))
		if out, err := d.run("config", "check"); err == nil || !strings.Contains(out, "rspamd http://"+closed+" unreachable") {
			t.Errorf("config check with rspamd down: %v\n%s", err, out)
		}
		msg := scanMessage("alice@example.com", "clean", clean)
		// rspamd is down but fails open: delivered, marked.
		if err := sendMail(t, d.addr("smtp"), nil, "someone@remote.test", []string{"alice@example.com"}, msg); err != nil {
			t.Fatal(err)
		}
		if got := d.mailbox("alice", ""); len(got) != 1 || !strings.Contains(got[0], "X-Vmaild-Unchecked: rspamd: error") {
			t.Fatalf("fail-open delivery: %q", got)
		}
		// clamd hangs and fails closed: 451 within its timeout, nothing
		// delivered; the sender's retry after it is back goes through.
		clamd.Pause(t)
		start := time.Now()
		err := sendMail(t, d.addr("smtp"), nil, "someone@remote.test", []string{"alice@example.com"}, msg)
		took := time.Since(start)
		clamd.Resume()
		if got := replyOf(err); !strings.HasPrefix(got, "451 4.7.1 ") {
			t.Fatalf("hung clamd: %q, want 451 4.7.1", got)
		}
		if took > 30*time.Second {
			t.Errorf("hung clamd answered after %v with a 2s timeout", took)
		}
		if got := d.mailbox("alice", ""); len(got) != 1 {
			t.Fatalf("%d messages after the 451, want the first only", len(got))
		}
		if err := sendMail(t, d.addr("smtp"), nil, "someone@remote.test", []string{"alice@example.com"}, msg); err != nil {
			t.Fatalf("retry: %v", err)
		}
	})
}

// replyOf is the SMTP reply of a refusal as "554 5.7.1 text".
func replyOf(err error) string {
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) {
		return fmt.Sprint(err)
	}
	return fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
