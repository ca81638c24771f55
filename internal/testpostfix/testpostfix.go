// Package testpostfix starts a private, real Postfix (Debian's postfix
// package) for tests: its own config_directory, queue_directory and
// data_directory under a temporary folder, services on loopback ports, no
// chroot, logging to a file. The test gives the main.cf and master.cf
// lines under test; this package adds only what makes a private instance
// of them (paths, ports, host name, a certificate).
//
// Postfix's master runs as root and its daemons as the postfix user, so
// the tests need root; without it (or without Postfix) they are skipped,
// and fail when CI is set.
package testpostfix

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testsrv"
)

// Postfix is a running private Postfix.
type Postfix struct {
	// Dir is its config_directory.
	Dir string
	// SMTP is the loopback address of its port-25 smtpd.
	SMTP string
	// Services maps each inet service of the master.cf lines given to
	// Start (by the name they gave it, "submission") to the loopback
	// address it listens on.
	Services map[string]string
	// CAFile is the PEM certificate its smtpd offers (self-signed).
	CAFile string
	// UID and GID are the postfix user's, which its daemons run as: a
	// socket they connect to must let them.
	UID, GID int

	bin string
	log string
}

// Config is the part of the configuration under test.
type Config struct {
	// Main is appended to main.cf.
	Main string
	// Master is appended to master.cf; each inet service in it is moved
	// to a free loopback port and run without chroot.
	Master string
}

// Start configures and starts a Postfix and returns once its port-25
// smtpd accepts connections; it is stopped when the test ends.
func Start(t testing.TB, cfg Config) *Postfix {
	t.Helper()
	bin := testsrv.RequireBinary(t, "postfix")
	if os.Geteuid() != 0 {
		msg := "testpostfix: Postfix's master must run as root"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	u, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("testpostfix: no postfix user: %v", err)
	}
	p := &Postfix{bin: bin, Services: map[string]string{}}
	p.UID, _ = strconv.Atoi(u.Uid)
	p.GID, _ = strconv.Atoi(u.Gid)
	root := ReachableDir(t)
	p.Dir = filepath.Join(root, "etc")
	spool, data := filepath.Join(root, "spool"), filepath.Join(root, "data")
	for _, d := range []string{p.Dir, spool, data} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(data, p.UID, p.GID); err != nil {
		t.Fatal(err)
	}
	if err := testsrv.WriteSelfSigned(root); err != nil {
		t.Fatal(err)
	}
	p.CAFile = filepath.Join(root, "cert.pem")
	p.log = filepath.Join(root, "maillog")
	p.SMTP = "127.0.0.1:" + strconv.Itoa(testsrv.FreePort(t))

	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s
data_directory = %[2]s
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.test
mydomain = postfix.test
myorigin = postfix.test
mydestination =
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
maillog_file = %[3]s
maillog_file_prefixes = %[4]s
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtpd_tls_cert_file = %[4]s/cert.pem
smtpd_tls_key_file = %[4]s/key.pem
smtpd_tls_security_level = may
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
`, spool, data, p.log, root)
	master := p.SMTP + " inet n - n - - smtpd\n" + baseMaster
	extra, err := p.privateServices(t, cfg.Master)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(p.Dir, "main.cf"), main+"\n# Under test:\n"+cfg.Main)
	write(t, filepath.Join(p.Dir, "master.cf"), master+"\n# Under test:\n"+extra)

	out, err := p.postfix("start")
	if err != nil {
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, p.Log())
	}
	t.Cleanup(p.stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.SMTP, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix: %s not accepting: %v\n%s", p.SMTP, err, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// The daemons a private instance needs, none chrooted.
const baseMaster = `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// privateServices moves each inet service of lines to a free loopback
// port and turns its chroot off, keeping everything else.
func (p *Postfix) privateServices(t testing.TB, lines string) (string, error) {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(lines))
	for sc.Scan() {
		l := sc.Text()
		f := strings.Fields(l)
		if len(f) > 0 && !strings.HasPrefix(l, "#") && l[0] != ' ' && l[0] != '\t' {
			if len(f) < 8 {
				return "", fmt.Errorf("master.cf line %q: fewer than 8 fields", l)
			}
			if f[1] == "inet" {
				addr := "127.0.0.1:" + strconv.Itoa(testsrv.FreePort(t))
				p.Services[f[0]] = addr
				f[0] = addr
			}
			f[4] = "n"
			l = strings.Join(f, " ")
		}
		b.WriteString(l + "\n")
	}
	return b.String(), sc.Err()
}

// ReachableDir is a temporary folder of the test that Postfix's daemons
// (the postfix user) may enter, for the sockets they connect to: the
// test's own temporary folders are 0700.
func ReachableDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// postfix runs the postfix command on this instance. Its messages go to
// syslog unless standard error is a terminal, so the test reads them from
// the log file instead.
func (p *Postfix) postfix(args ...string) ([]byte, error) {
	cmd := exec.Command(p.bin, append([]string{"-c", p.Dir}, args...)...)
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+p.Dir)
	return cmd.CombinedOutput()
}

// Log is the instance's log so far.
func (p *Postfix) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Flush asks the queue manager to retry the deferred mail now.
func (p *Postfix) Flush() error {
	out, err := p.postfix("flush")
	if err != nil {
		return fmt.Errorf("postfix flush: %v: %s", err, out)
	}
	return nil
}

// stop stops the master and waits for it to exit.
func (p *Postfix) stop() {
	pid := p.masterPID()
	p.postfix("stop")
	deadline := time.Now().Add(15 * time.Second)
	for pid > 0 && syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			p.postfix("abort")
			syscall.Kill(pid, syscall.SIGKILL)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *Postfix) masterPID() int {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(p.Dir), "spool", "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
