package testsrv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDB is a private mariadbd with its own data directory, listening on a
// loopback port and on a Unix socket in a short temporary directory.
type MariaDB struct {
	// DSN connects as the test user to the database "vmaild" over TCP, in
	// go-sql-driver/mysql form.
	DSN string
	// Port is the TCP port on 127.0.0.1; it stays the same across Stop and
	// Start so outage tests can reuse a DSN.
	Port int
	// User and Password are the test user's credentials; it has all
	// privileges on every database made by CreateDatabase.
	User, Password string

	t       testing.TB
	bin     string
	datadir string
	socket  string
	logfile string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// How long mariadbd may take to answer or to shut down before the test
// fails; generous because CI machines are shared.
const mariadbPatience = 90 * time.Second

// StartMariaDB initialises a fresh data directory, starts mariadbd on it,
// creates the database "vmaild" and a user with a random password, and stops
// the server when the test ends.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	bin := RequireBinary(t, "mariadbd")
	install := RequireBinary(t, "mariadb-install-db")

	dir := t.TempDir()
	// The socket lives in its own short directory: t.TempDir paths embed the
	// test name and can exceed the 108-byte sun_path limit.
	sockDir, err := os.MkdirTemp("", "mdb")
	if err != nil {
		t.Fatalf("mariadb socket dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })

	m := &MariaDB{
		t:        t,
		bin:      bin,
		datadir:  filepath.Join(dir, "data"),
		socket:   filepath.Join(sockDir, "s"),
		logfile:  filepath.Join(dir, "mariadbd.log"),
		Port:     FreePort(t),
		User:     "vmaild",
		Password: randomHex(t, 12),
	}
	if err := os.Mkdir(m.tmpdir(), 0o700); err != nil {
		t.Fatalf("mariadb tmpdir: %v", err)
	}

	out, err := exec.Command(install,
		"--no-defaults",
		"--datadir="+m.datadir,
		// Each server its own tmpdir: mariadbd removes "#sql" temporary
		// files it finds in its tmpdir at start, including another
		// instance's that is being installed at the same moment.
		"--tmpdir="+m.tmpdir(),
		"--user=root",
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
		// Without it the script refuses to run when neither the machine's
		// host name nor "localhost" resolves (a container or chroot without
		// /etc/hosts); this server never resolves names anyway.
		"--force",
		"--innodb-buffer-pool-size=16M",
		"--innodb-log-file-size=8M",
	).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}

	t.Cleanup(m.Stop)
	m.Start()
	m.DSN = m.CreateDatabase("vmaild")
	return m
}

// Start runs mariadbd on the existing data directory and port and waits
// until it answers. It is a no-op when the server is already running.
func (m *MariaDB) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return
	}
	cmd := exec.Command(m.bin,
		"--no-defaults",
		"--datadir="+m.datadir,
		"--tmpdir="+m.tmpdir(),
		"--socket="+m.socket,
		"--port="+itoa(m.Port),
		"--bind-address=127.0.0.1",
		"--user=root",
		"--skip-log-bin",
		"--skip-name-resolve",
		"--log-error="+m.logfile,
		"--pid-file="+filepath.Join(filepath.Dir(m.datadir), "mariadbd.pid"),
		"--performance-schema=OFF",
		// Small buffers start fast; durability does not matter in tests.
		"--innodb-buffer-pool-size=16M",
		"--innodb-log-file-size=8M",
		"--innodb-flush-log-at-trx-commit=2",
		"--innodb-doublewrite=0",
		"--max-connections=300",
	)
	// Its own process group, so a test binary's terminal signals do not
	// reach it before Stop has run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start mariadbd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done

	if err := m.waitReady(done); err != nil {
		m.t.Fatalf("mariadbd not ready: %v\n%s", err, m.logTail())
	}
}

// waitReady pings the server as root over the socket until it answers, the
// process exits, or patience runs out.
func (m *MariaDB) waitReady(done <-chan struct{}) error {
	db, err := sql.Open("mysql", m.RootDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(mariadbPatience)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("mariadbd exited: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer after %v: %w", mariadbPatience, err)
		}
	}
}

// Stop shuts mariadbd down cleanly (SIGTERM) and waits for it to exit. The
// data directory is kept, so Start brings the same data back.
func (m *MariaDB) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGCONT) // a paused server cannot handle SIGTERM
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(mariadbPatience):
		m.cmd.Process.Kill()
		<-m.done
		m.t.Errorf("mariadbd did not stop on SIGTERM within %v; killed\n%s", mariadbPatience, m.logTail())
	}
	m.cmd, m.done = nil, nil
}

// Pause freezes mariadbd (SIGSTOP): connections stay open and the port
// keeps accepting, but nothing answers, as with a hung or overloaded
// server. It returns once every thread has stopped. Resume lets it
// continue.
func (m *MariaDB) Pause() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		m.t.Fatal("mariadbd: Pause while stopped")
	}
	if err := Freeze(m.cmd.Process, mariadbPatience); err != nil {
		m.t.Fatalf("mariadbd: %v", err)
	}
}

// Resume continues a paused mariadbd.
func (m *MariaDB) Resume() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		m.t.Fatal("mariadbd: Resume while stopped")
	}
	if err := Thaw(m.cmd.Process); err != nil {
		m.t.Fatalf("mariadbd: %v", err)
	}
}

// RootDSN connects as root over the Unix socket, without a database.
func (m *MariaDB) RootDSN() string {
	c := mysql.NewConfig()
	c.User = "root"
	c.Net = "unix"
	c.Addr = m.socket
	c.Timeout = 2 * time.Second
	return c.FormatDSN()
}

// CreateDatabase creates an empty database, grants the test user everything
// on it, and returns a TCP DSN for it. Tests that need a clean slate on a
// shared server use one database each.
func (m *MariaDB) CreateDatabase(name string) string {
	m.t.Helper()
	if strings.ContainsAny(name, "`'\\\x00") {
		m.t.Fatalf("mariadb: bad database name %q", name)
	}
	db, err := sql.Open("mysql", m.RootDSN())
	if err != nil {
		m.t.Fatalf("mariadb root: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), mariadbPatience)
	defer cancel()
	// The password is random hex, so quoting it in DDL is safe.
	for _, stmt := range []string{
		"CREATE DATABASE IF NOT EXISTS `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
		"CREATE USER IF NOT EXISTS '" + m.User + "'@'127.0.0.1' IDENTIFIED BY '" + m.Password + "'",
		"GRANT ALL PRIVILEGES ON `" + name + "`.* TO '" + m.User + "'@'127.0.0.1'",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			m.t.Fatalf("mariadb setup %q: %v", stmt, err)
		}
	}
	c := mysql.NewConfig()
	c.User = m.User
	c.Passwd = m.Password
	c.Net = "tcp"
	c.Addr = "127.0.0.1:" + itoa(m.Port)
	c.DBName = name
	c.ParseTime = true
	c.Timeout = 5 * time.Second
	return c.FormatDSN()
}

func (m *MariaDB) logTail() string {
	b, err := os.ReadFile(m.logfile)
	if err != nil {
		return "(no mariadbd log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}

// tmpdir is the server's own temporary directory, beside its datadir.
func (m *MariaDB) tmpdir() string { return filepath.Join(filepath.Dir(m.datadir), "tmp") }
