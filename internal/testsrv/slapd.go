package testsrv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/vmaild/vmaild/userdb/ldif"
)

// Where Debian's slapd package keeps its loadable modules and schemas.
const (
	slapdModuleDir = "/usr/lib/ldap"
	slapdSchemaDir = "/etc/ldap/schema"
)

// Slapd is a private OpenLDAP server with one mdb database for
// dc=example,dc=com, the standard schemas plus vmaild's, and a rootdn.
type Slapd struct {
	URL           string // ldap://127.0.0.1:<port>, StartTLS offered
	TLSURL        string // ldaps://127.0.0.1:<port>
	CAFile        string // PEM of the self-signed certificate (for 127.0.0.1 and localhost)
	BaseDN        string // dc=example,dc=com
	AdminDN       string // cn=admin,dc=example,dc=com (the rootdn)
	AdminPassword string

	bin     string
	dir     string
	port    int
	tlsPort int

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the running process has been reaped.
	exited chan struct{}
	t      testing.TB
}

// StartSlapd configures and starts a slapd in its own temporary directory
// and returns once a bind as the admin works. The server is stopped when the
// test ends.
func StartSlapd(t testing.TB) *Slapd {
	t.Helper()
	slapd := RequireBinary(t, "slapd")
	slapadd := RequireBinary(t, "slapadd")
	if _, err := os.Stat(filepath.Join(slapdModuleDir, "back_mdb.so")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("slapd back_mdb module missing: %v", err)
		}
		t.Skipf("slapd back_mdb module missing: %v", err)
	}
	s := &Slapd{
		BaseDN:        "dc=example,dc=com",
		AdminDN:       "cn=admin,dc=example,dc=com",
		AdminPassword: "admin-secret",
		bin:           slapd,
		dir:           t.TempDir(),
		port:          FreePort(t),
		tlsPort:       FreePort(t),
		t:             t,
	}
	s.URL = "ldap://127.0.0.1:" + itoa(s.port)
	s.TLSURL = "ldaps://127.0.0.1:" + itoa(s.tlsPort)
	for _, d := range []string{"config", "data"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o700); err != nil {
			t.Fatalf("slapd dir: %v", err)
		}
	}
	if err := writeSelfSigned(s.dir); err != nil {
		t.Fatalf("slapd certificate: %v", err)
	}
	s.CAFile = filepath.Join(s.dir, "cert.pem")
	cfg := filepath.Join(s.dir, "config.ldif")
	text, err := s.configLDIF()
	if err != nil {
		t.Fatalf("slapd config: %v", err)
	}
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatalf("slapd config: %v", err)
	}
	out, err := exec.Command(slapadd, "-n0", "-F", filepath.Join(s.dir, "config"), "-l", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("slapadd -n0: %v\n%s", err, out)
	}
	t.Cleanup(s.Stop)
	// A free port can be taken by another test process between FreePort
	// and slapd's bind; then slapd exits at once, and a new pair of ports
	// is tried.
	for attempt := 1; ; attempt++ {
		err := s.start()
		if err == nil {
			return s
		}
		if !errors.Is(err, errExitedDuringStart) || attempt == 3 {
			t.Fatal(err)
		}
		s.port, s.tlsPort = FreePort(t), FreePort(t)
		s.URL = "ldap://127.0.0.1:" + itoa(s.port)
		s.TLSURL = "ldaps://127.0.0.1:" + itoa(s.tlsPort)
	}
}

var errExitedDuringStart = errors.New("slapd exited during start")

// configLDIF is the cn=config tree slapadd -n0 turns into the config
// directory: modules, schemas, and the mdb database with relaxed durability
// (tests need speed, not crash safety).
func (s *Slapd) configLDIF() (string, error) {
	vmaildSchema, err := vmaildSchemaPath()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: %[1]s/slapd.pid
olcArgsFile: %[1]s/slapd.args
olcTLSCertificateFile: %[1]s/cert.pem
olcTLSCertificateKeyFile: %[1]s/key.pem

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: %[2]s
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

`, s.dir, slapdModuleDir)
	for _, f := range []string{
		filepath.Join(slapdSchemaDir, "core.ldif"),
		filepath.Join(slapdSchemaDir, "cosine.ldif"),
		filepath.Join(slapdSchemaDir, "nis.ldif"),
		filepath.Join(slapdSchemaDir, "inetorgperson.ldif"),
		vmaildSchema,
	} {
		fmt.Fprintf(&b, "include: file://%s\n\n", f)
	}
	// userPassword is readable only by the rootdn (which bypasses ACLs) and
	// usable for binds, as on a real server; everything else is readable by
	// anybody bound.
	fmt.Fprintf(&b, `dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: 500

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbDirectory: %[1]s/data
olcSuffix: %[2]s
olcRootDN: %[3]s
olcRootPW: %[4]s
olcDbNoSync: TRUE
olcDbMaxSize: 67108864
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: mail eq,sub
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by * read
`, s.dir, s.BaseDN, s.AdminDN, s.AdminPassword)
	return b.String(), nil
}

// vmaildSchemaPath finds schema/ldap/vmaild.ldif relative to this source
// file, so tests of any package in the module can start a server.
func vmaildSchemaPath() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate testsrv source")
	}
	p := filepath.Join(filepath.Dir(file), "..", "..", "schema", "ldap", "vmaild.ldif")
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("vmaild schema: %w", err)
	}
	return p, nil
}

// Start runs slapd (again) on the same port and data, and returns once a
// bind as the admin works. Outage tests call Stop then Start.
func (s *Slapd) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Slapd) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	// -d 0 keeps slapd in the foreground, so the process is ours to stop
	// and reap; running as root needs no -u: the files are ours either way.
	var logs bytes.Buffer
	cmd := exec.Command(s.bin, "-d", "0", "-F", filepath.Join(s.dir, "config"), "-h", s.URL+"/ "+s.TLSURL+"/")
	cmd.Stdout = &logs
	cmd.Stderr = &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start slapd: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.bindOnce()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("%w: %v\n%s", errExitedDuringStart, cmd.ProcessState, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("slapd not answering on %s: %v\n%s", s.URL, err, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Slapd) bindOnce() error {
	c, err := goldap.DialURL(s.URL, goldap.DialWithDialer(newDialer()))
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Bind(s.AdminDN, s.AdminPassword)
}

// Stop terminates slapd and waits for it to exit; connections clients hold
// are closed by the server. Calling it on a stopped server does nothing.
func (s *Slapd) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused server cannot handle SIGTERM
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Pause freezes slapd (SIGSTOP): the port keeps accepting connections into
// its backlog, but nothing answers, as with a hung server. It returns once
// every thread has stopped (see Freeze), so requests sent right after it
// are never answered. Resume lets it continue.
func (s *Slapd) Pause() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatal("slapd: Pause while stopped")
	}
	if err := Freeze(s.cmd.Process, 10*time.Second); err != nil {
		s.t.Fatalf("slapd: %v", err)
	}
}

// Resume continues a paused slapd.
func (s *Slapd) Resume() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatal("slapd: Resume while stopped")
	}
	if err := Thaw(s.cmd.Process); err != nil {
		s.t.Fatalf("slapd: %v", err)
	}
}

// Load adds the entries of an LDIF text as the admin. Entries are added in
// order, so parents must come before children, as with ldapadd.
func (s *Slapd) Load(t testing.TB, ldifText string) {
	t.Helper()
	entries, err := ldif.Parse(strings.NewReader(ldifText))
	if err != nil {
		t.Fatalf("load ldif: %v", err)
	}
	c, err := goldap.DialURL(s.URL, goldap.DialWithDialer(newDialer()))
	if err != nil {
		t.Fatalf("load ldif: dial %s: %v", s.URL, err)
	}
	defer c.Close()
	if err := c.Bind(s.AdminDN, s.AdminPassword); err != nil {
		t.Fatalf("load ldif: bind: %v", err)
	}
	for _, e := range entries {
		req := goldap.NewAddRequest(e.DN, nil)
		for _, a := range e.Attrs {
			req.Attribute(a.Name, a.Values)
		}
		if err := c.Add(req); err != nil {
			t.Fatalf("load ldif: add %q (line %d): %v", e.DN, e.Line, err)
		}
	}
}

// newDialer bounds connection attempts so a wedged server fails the test
// instead of hanging it.
func newDialer() *net.Dialer { return &net.Dialer{Timeout: 2 * time.Second} }
