// Package testdovecot starts a private Dovecot IMAP server for tests, as
// the oracle vmaild's IMAP answers are compared with: its own dovecot.conf,
// Maildir, passwd-file and logs in a temporary directory, a loopback port,
// no TLS, no chroot, running as the current user, stopped when the test
// ends. Nothing reads /etc/dovecot and the system's dovecot service is
// never involved.
//
// Dovecot's IMAP binaries come with Debian's dovecot-imapd (the master,
// dovecot-core, is not enough). DOVECOT_IMAP_DIR may name another directory
// holding imap and imap-login of the same Dovecot version. A missing binary
// skips the test, or fails it when CI is set, as internal/testsrv does.
package testdovecot

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
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testsrv"
)

// Server is a running private Dovecot with one user.
type Server struct {
	Addr     string // host:port of the plaintext IMAP listener
	User     string
	Password string
	// Maildir is the user's INBOX: messages written to its new/ or cur/
	// before the first login are what the user sees.
	Maildir string
	Dir     string // everything else: config, logs, state
	Log     string
}

// Start starts Dovecot and waits until it accepts connections.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// Options adjust the private instance.
type Options struct {
	// Config is appended to the generated dovecot.conf, e.g. a
	// namespace block with another hierarchy separator or special-use
	// mailboxes.
	Config string
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	master := testsrv.RequireBinary(t, "dovecot")
	libexec := requireIMAP(t)

	dir := t.TempDir()
	u, err := user.Current()
	if err != nil {
		t.Fatalf("current user: %v", err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatalf("current group: %v", err)
	}
	s := &Server{
		User:     "oracle",
		Password: "oracle-pass",
		Dir:      dir,
		Log:      filepath.Join(dir, "dovecot.log"),
	}
	home := filepath.Join(dir, "home")
	s.Maildir = filepath.Join(home, "Maildir")
	for _, d := range []string{"run", "state", "cur", "new", "tmp"} {
		p := filepath.Join(dir, d)
		if d == "cur" || d == "new" || d == "tmp" {
			p = filepath.Join(s.Maildir, d)
		}
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// imap-login refuses to run as root: as root, it runs as an
	// unprivileged user, which must reach base_dir through the temporary
	// directories.
	loginUser := u.Username
	if u.Uid == "0" {
		loginUser = unprivilegedUser(t)
		for d := dir; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The mail user is the current one, but Dovecot never lets mail
	// processes run as root: then it is the unprivileged user, owning
	// the home directory.
	mailUID, mailGID := u.Uid, u.Gid
	if u.Uid == "0" {
		lu, err := user.Lookup(loginUser)
		if err != nil {
			t.Fatal(err)
		}
		mailUID, mailGID = lu.Uid, lu.Gid
		uid, _ := strconv.Atoi(lu.Uid)
		gid, _ := strconv.Atoi(lu.Gid)
		err = filepath.Walk(home, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Chown(p, uid, gid)
		})
		if err != nil {
			t.Fatalf("chown mail home: %v", err)
		}
	}
	passwd := filepath.Join(dir, "passwd")
	line := fmt.Sprintf("%s:{PLAIN}%s:%s:%s::%s::\n", s.User, s.Password, mailUID, mailGID, home)
	if err := os.WriteFile(passwd, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	port := testsrv.FreePort(t)
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(conf, []byte(config(dir, passwd, s.Log, libexec, u.Username, g.Name, loginUser, port)+o.Config), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(master, "-F", "-c", conf)
	out, err := os.Create(filepath.Join(dir, "dovecot.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); out.Close() }()
	t.Cleanup(func() {
		// SIGTERM lets the master stop its children too.
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			greeting, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(greeting, "* OK") {
				return s
			}
		}
		select {
		case err := <-done:
			t.Fatalf("dovecot exited (%v): %s%s", err, readFile(filepath.Join(dir, "dovecot.out")), readFile(s.Log))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot did not listen on %s: %s", s.Addr, readFile(s.Log))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// unprivilegedUser is the account imap-login runs as when the tests run as
// root: Dovecot's own dovenull if the package made it, else nobody.
func unprivilegedUser(t testing.TB) string {
	for _, name := range []string{"dovenull", "nobody"} {
		if _, err := user.Lookup(name); err == nil {
			return name
		}
	}
	t.Fatal("no unprivileged user (dovenull, nobody) for imap-login")
	return ""
}

// requireIMAP finds the directory of Dovecot's imap and imap-login.
func requireIMAP(t testing.TB) string {
	t.Helper()
	dirs := []string{"/usr/lib/dovecot", "/usr/libexec/dovecot"}
	if d := os.Getenv("DOVECOT_IMAP_DIR"); d != "" {
		dirs = append([]string{d}, dirs...)
	}
	for _, d := range dirs {
		if st, err := os.Stat(filepath.Join(d, "imap")); err == nil && !st.IsDir() {
			if _, err := os.Stat(filepath.Join(d, "imap-login")); err == nil {
				return d
			}
		}
	}
	msg := "Dovecot's imap binary not found (Debian: apt-get install -y dovecot-core dovecot-imapd)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// config is a dovecot.conf that reads nothing else. Every service runs as
// the current user (root included: first_valid_uid 0), and each IMAP
// service names its binary, so a DOVECOT_IMAP_DIR outside Dovecot's own
// directory works. The urlauth services are not wanted but are part of
// the imap protocol: they get their binary if it is there, the login one
// otherwise (never started).
func config(dir, passwd, log, libexec, userName, group, loginUser string, port int) string {
	exe := func(name string) string {
		p := filepath.Join(libexec, name)
		if _, err := os.Stat(p); err != nil {
			p = filepath.Join(libexec, "imap-login")
		}
		return p
	}
	return fmt.Sprintf(`# private test instance
base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = vmaild-test-%[8]d
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = %[3]s
mail_location = maildir:~/Maildir
first_valid_uid = 1
first_valid_gid = 1
default_internal_user = %[5]s
default_internal_group = %[6]s
default_login_user = %[7]s
passdb {
  driver = passwd-file
  args = %[2]s
}
userdb {
  driver = passwd-file
  args = %[2]s
}
service imap-login {
  chroot =
  executable = %[9]s
  inet_listener imap {
    address = 127.0.0.1
    port = %[8]d
  }
  inet_listener imaps {
    port = 0
  }
}
service imap {
  executable = %[10]s
}
service imap-urlauth {
  executable = %[11]s
}
service imap-urlauth-login {
  chroot =
  executable = %[12]s
}
service imap-urlauth-worker {
  executable = %[13]s
}
service imap-hibernate {
  executable = %[14]s
}
service anvil {
  chroot =
}
service stats {
  unix_listener stats-writer {
    mode = 0600
  }
}
`, dir, passwd, log, libexec, userName, group, loginUser, port,
		exe("imap-login"), exe("imap"), exe("imap-urlauth"), exe("imap-urlauth-login"), exe("imap-urlauth-worker"), exe("imap-hibernate"))
}
