package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
	"github.com/vmaild/vmaild/internal/testsrv"
)

// These tests build the vmaild binary and drive `vmaild serve` and the
// admin commands as an admin would, with real clients over real sockets.

var e2eBuild struct {
	once sync.Once
	path string
	err  error
}

func e2eBinary(t testing.TB) string {
	t.Helper()
	e2eBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "vmaild-e2e-bin")
		if err != nil {
			e2eBuild.err = err
			return
		}
		e2eBuild.path = filepath.Join(dir, "vmaild")
		out, err := exec.Command("go", "build", "-o", e2eBuild.path, ".").CombinedOutput()
		if err != nil {
			e2eBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if e2eBuild.err != nil {
		t.Fatal(e2eBuild.err)
	}
	return e2eBuild.path
}

// e2eDaemon is one running `vmaild serve`.
type e2eDaemon struct {
	t      testing.TB
	bin    string
	config string
	ports  map[string]int
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var e2eListeners = []string{"smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "managesieve", "metrics"}

// newDaemon writes a configuration on free loopback ports plus extra YAML
// (the directory backends), ready to start.
func newDaemon(t testing.TB, extra string) *e2eDaemon {
	dir := t.TempDir()
	d := &e2eDaemon{t: t, bin: e2eBinary(t), ports: map[string]int{}, out: &lockedBuffer{}}
	var cfg strings.Builder
	cfg.WriteString("hostname: mx.example.com\nlog:\n  level: debug\nlisten:\n")
	if !strings.Contains(extra, "data_dir:") {
		extra += "data_dir: " + filepath.Join(dir, "data") + "\n"
	}
	for _, name := range e2eListeners {
		d.ports[name] = testsrv.FreePort(t)
		if name != "metrics" {
			fmt.Fprintf(&cfg, "  %s:\n    address: 127.0.0.1:%d\n", name, d.ports[name])
		}
	}
	// A disk floor of one byte: /healthz runs the disk check without the
	// tests depending on how much space the machine has.
	fmt.Fprintf(&cfg, "metrics:\n  address: 127.0.0.1:%d\n  min_free_bytes: 1\nshutdown_timeout: 20s\n", d.ports["metrics"])
	cfg.WriteString(extra)
	d.config = filepath.Join(dir, "vmaild.yaml")
	if err := os.WriteFile(d.config, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *e2eDaemon) addr(name string) string { return "127.0.0.1:" + strconv.Itoa(d.ports[name]) }

func (d *e2eDaemon) start() {
	t := d.t
	t.Helper()
	// A port that was free when the configuration was written can be
	// taken by another test's server before the daemon binds it: a first
	// start that fails to bind moves to new ports and starts again.
	for try := 1; !d.startOnce(); try++ {
		if try == 3 {
			t.Fatalf("vmaild serve could not bind its ports\n%s", d.out.String())
		}
		t.Logf("a port was taken before vmaild bound it; moving:\n%s", d.out.String())
		d.out = &lockedBuffer{}
		d.movePorts()
	}
	d.waitReady()
}

// startOnce starts the daemon; false when it exited at once because a
// port was in use (only on a first start: a restarted daemon keeps its
// ports, which tests hold on to).
func (d *e2eDaemon) startOnce() bool {
	t := d.t
	t.Helper()
	first := d.exited == nil
	cmd := exec.Command(d.bin, "-c", d.config, "serve")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = io.MultiWriter(d.out, out), io.MultiWriter(d.out, out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if first {
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), "vmaild is running") && time.Now().Before(deadline) {
			select {
			case err := <-exited:
				if strings.Contains(out.String(), "address already in use") {
					return false
				}
				t.Fatalf("vmaild serve exited: %v\n%s", err, d.out.String())
			default:
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	d.cmd, d.exited = cmd, exited
	return true
}

// movePorts gives the daemon new ports and rewrites its configuration.
func (d *e2eDaemon) movePorts() {
	t := d.t
	t.Helper()
	cfg, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	text := string(cfg)
	for name, old := range d.ports {
		p := testsrv.FreePort(t)
		text = strings.ReplaceAll(text, "127.0.0.1:"+strconv.Itoa(old)+"\n", "127.0.0.1:"+strconv.Itoa(p)+"\n")
		d.ports[name] = p
	}
	if err := os.WriteFile(d.config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits for the started daemon to serve.
func (d *e2eDaemon) waitReady() {
	t := d.t
	t.Helper()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("vmaild output:\n%s", d.out.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	// Ports are bound before the directory and store are opened: wait for
	// the line saying everything is up.
	for !strings.Contains(d.out.String(), "vmaild is running") {
		select {
		case err := <-d.exited:
			t.Fatalf("vmaild serve exited: %v\n%s", err, d.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vmaild did not start\n%s", d.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, name := range []string{"smtp", "metrics"} {
		for {
			c, err := net.DialTimeout("tcp", d.addr(name), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-d.exited:
				t.Fatalf("vmaild serve exited: %v\n%s", err, d.out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("vmaild did not listen on %s\n%s", name, d.out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *e2eDaemon) stop() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		if err != nil {
			d.t.Errorf("vmaild serve exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		d.t.Fatal("vmaild serve did not stop on SIGTERM")
	}
}

// cli runs an admin command with the daemon's configuration.
func (d *e2eDaemon) cli(stdin string, args ...string) string {
	d.t.Helper()
	cmd := exec.Command(d.bin, append([]string{"-c", d.config}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("vmaild %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var insecureTLS = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}

func sendMail(t *testing.T, addr string, login *[2]string, from string, to []string, msg string) error {
	t.Helper()
	dial := gosmtp.Dial
	if login != nil {
		dial = func(addr string) (*gosmtp.Client, error) { return gosmtp.DialStartTLS(addr, insecureTLS) }
	}
	c, err := dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		return err
	}
	if login != nil {
		if err := c.Auth(sasl.NewPlainClient("", login[0], login[1])); err != nil {
			return err
		}
	}
	if err := c.SendMail(from, to, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// pop3Retrieve logs in over STLS and returns every message.
func pop3Retrieve(t *testing.T, addr, user, pass string) []string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tp := textproto.NewConn(conn)
	expect := func(c *textproto.Conn, cmd string) string {
		t.Helper()
		if cmd != "" {
			c.PrintfLine("%s", cmd)
		}
		line, err := c.ReadLine()
		if err != nil || !strings.HasPrefix(line, "+OK") {
			t.Fatalf("POP3 %q: %q %v", cmd, line, err)
		}
		return line
	}
	expect(tp, "")
	expect(tp, "STLS")
	tc := tls.Client(conn, insecureTLS)
	tp = textproto.NewConn(tc)
	expect(tp, "USER "+user)
	expect(tp, "PASS "+pass)
	stat := strings.Fields(expect(tp, "STAT"))
	n, _ := strconv.Atoi(stat[1])
	var msgs []string
	for i := 1; i <= n; i++ {
		expect(tp, fmt.Sprintf("RETR %d", i))
		lines, err := tp.ReadDotLines()
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, strings.Join(lines, "\n"))
	}
	expect(tp, "QUIT")
	return msgs
}

func metricValue(t *testing.T, addr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return 0
}

// TestServeEndToEnd: the quickstart path an admin takes, on the embedded
// default and on LDAP + MariaDB.
func TestServeEndToEnd(t *testing.T) {
	for name, backend := range e2eBackends {
		t.Run(name, func(t *testing.T) {
			testServe(t, name, backend)
		})
	}
}

// e2eBackends return the configuration of each directory setup, starting
// the servers they need.
var e2eBackends = map[string]func(t testing.TB) string{
	"embedded": func(t testing.TB) string { return "" },
	"ldap+mariadb": func(t testing.TB) string {
		var m *testsrv.MariaDB
		var sl *testsrv.Slapd
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); m = testsrv.StartMariaDB(t) }()
		go func() { defer wg.Done(); sl = testsrv.StartSlapd(t) }()
		wg.Wait()
		if m == nil || sl == nil {
			t.FailNow()
		}
		return fmt.Sprintf(`userdb:
  accounts: ldap
sql:
  driver: mysql
  dsn: %q
ldap:
  urls: [%q]
  bind_dn: %q
  bind_password: %q
  base_dn: %q
  attributes:
    quota_bytes: vmailQuotaBytes
    quota_messages: vmailQuotaMessages
    active: vmailActive
    maildir: vmailMaildir
`, m.CreateDatabase("vmaild_e2e"), sl.URL, sl.AdminDN, sl.AdminPassword, sl.BaseDN)
	},
}

func testServe(t *testing.T, name string, backend func(testing.TB) string) {
	dns := queuetest.NewDNS(t)
	sink := queuetest.NewSink(t, queuetest.SinkOptions{})
	dns.MX("remote.test", 10, "mx.remote.test")
	dns.A("mx.remote.test", "127.0.0.1")
	extra := backend(t) + fmt.Sprintf("queue:\n  resolver: %s\n  port: %d\n", dns.Addr, sink.Port)
	d := newDaemon(t, extra)
	if name != "embedded" {
		d.cli("", "db", "migrate")
	}
	d.start()
	// The banner says where the directory lives; each listener is logged
	// once.
	banner := map[string]string{
		"embedded":     "accounts, domains, aliases and quotas in SQLite",
		"ldap+mariadb": "accounts in LDAP; domains, aliases and quotas in MySQL/MariaDB",
	}[name]
	if out := d.out.String(); !strings.Contains(out, banner) {
		t.Errorf("the banner does not say %q:\n%s", banner, out)
	}
	for _, l := range []string{"smtp", "submission", "submissions", "imap", "pop3"} {
		if n := strings.Count(d.out.String(), "msg=listening listener="+l+" "); n != 1 {
			t.Errorf("listener %s logged %d times as listening, want once", l, n)
		}
	}
	d.cli("", "domain", "add", "example.com")
	// The example directory (base entries and users) goes in with
	// the LDIF importer, then a new user with the CLI.
	if out := d.cli("", "ldif", "import", "--add-domains", "../../ldif/example.ldif"); !strings.Contains(out, "0 failed") {
		t.Errorf("ldif import: %s", out)
	}
	d.cli("zoe-secret\n", "user", "add", "zoe@example.com", "--password-stdin", "--name", "Zoe")
	if out := d.cli("", "user", "list"); !strings.Contains(out, "zoe@example.com") || !strings.Contains(out, "bob@example.com") {
		t.Errorf("user list: %s", out)
	}
	if out := d.cli("", "config", "check"); !strings.Contains(out, "reachable") {
		t.Errorf("config check: %s", out)
	}

	// Inbound on the MTA port, read back on POP3.
	msg := "From: someone@remote.test\r\nTo: zoe@example.com\r\nSubject: e2e\r\n\r\nHello Zoe \xc3\xa9\r\n.leading dot\r\n"
	if err := sendMail(t, d.addr("smtp"), nil, "someone@remote.test", []string{"zoe@example.com"}, msg); err != nil {
		t.Fatalf("deliver on 25: %v", err)
	}
	if err := sendMail(t, d.addr("smtp"), nil, "someone@remote.test", []string{"nobody@example.com"}, msg); err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("unknown local user: %v", err)
	}
	got := pop3Retrieve(t, d.addr("pop3"), "zoe@example.com", "zoe-secret")
	if len(got) != 1 || !strings.Contains(got[0], "Hello Zoe \xc3\xa9") || !strings.Contains(got[0], "\n.leading dot") || !strings.Contains(got[0], "Delivered-To: zoe@example.com") {
		t.Fatalf("POP3 read: %q", got)
	}
	imapRead(t, d.addr("imap"), "zoe@example.com", "zoe-secret", "Hello Zoe \xc3\xa9\r\n.leading dot\r\n")
	// An imported user logs in too ({SSHA} from the LDIF).
	if got := pop3Retrieve(t, d.addr("pop3"), "bob@example.com", "bob-secret"); len(got) != 0 {
		t.Errorf("bob has %d messages", len(got))
	}

	// Submission with AUTH to a remote domain whose MX is the sink.
	out := "From: zoe@example.com\r\nTo: bob@remote.test\r\nSubject: out\r\n\r\nHi Bob\r\n"
	if err := sendMail(t, d.addr("submission"), &[2]string{"zoe@example.com", "zoe-secret"}, "zoe@example.com", []string{"bob@remote.test"}, out); err != nil {
		t.Fatalf("submit on 587: %v", err)
	}
	if err := sendMail(t, d.addr("submission"), &[2]string{"zoe@example.com", "wrong"}, "zoe@example.com", []string{"bob@remote.test"}, out); err == nil {
		t.Error("submission with a wrong password accepted")
	}
	sent := sink.Wait(t, 1)
	if len(sent[0].Rcpts) != 1 || sent[0].Rcpts[0] != "bob@remote.test" || !bytes.Contains(sent[0].Data, []byte("Hi Bob")) {
		t.Errorf("sink got %+v", sent[0])
	}
	for _, h := range []string{"Message-ID:", "Date:"} {
		if !bytes.Contains(bytes.ToLower(sent[0].Data), bytes.ToLower([]byte(h))) {
			t.Errorf("submitted message lacks %s", h)
		}
	}

	// The counters moved.
	for series, min := range map[string]float64{
		`vmaild_messages_total{outcome="delivered"}`:      1,
		`vmaild_messages_total{outcome="queued"}`:         1,
		`vmaild_messages_total{outcome="rejected"}`:       1,
		`vmaild_authentications_total{result="ok"}`:       2,
		`vmaild_authentications_total{result="failed"}`:   1,
		`vmaild_login_verifications_total`:                2,
		`vmaild_connections_total{listener="smtp"}`:       3,
		`vmaild_connections_total{listener="submission"}`: 2,
		`vmaild_connections_total{listener="pop3"}`:       1,
		`vmaild_queue_delivered_total`:                    1,
	} {
		if v := metricValue(t, d.addr("metrics"), series); v < min {
			t.Errorf("%s = %v, want at least %v", series, v, min)
		}
	}
	resp, err := http.Get("http://" + d.addr("metrics") + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v %v", resp, err)
	}
	d.stop()
}

// imapRead logs in over STARTTLS, reads the first INBOX message and the
// quota root, as a mail client would.
func imapRead(t *testing.T, addr, user, pass, want string) {
	t.Helper()
	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: insecureTLS})
	if err != nil {
		t.Fatalf("IMAP dial: %v", err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("IMAP login: %v", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Fatalf("IMAP select: %+v, %v", sel, err)
	}
	section := &imap.FetchItemBodySection{}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("IMAP fetch: %v", err)
	}
	if body := string(msgs[0].FindBodySection(section)); !strings.Contains(body, want) {
		t.Errorf("IMAP body %q lacks %q", body, want)
	}
	if _, err := c.GetQuotaRoot("INBOX").Wait(); err != nil {
		t.Errorf("GETQUOTAROOT: %v", err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("IMAP logout: %v", err)
	}
}

// TestServeHealthDiskFloor: with less space free than metrics.min_free_bytes
// (a floor no disk reaches), /healthz is 503 and says it is the disk, where,
// and the floor; the other checks still pass and are not named.
func TestServeHealthDiskFloor(t *testing.T) {
	t.Setenv("VMAILD_METRICS_MIN_FREE_BYTES", strconv.FormatInt(1<<62, 10))
	d := newDaemon(t, "")
	d.start()
	resp, err := http.Get("http://" + d.addr("metrics") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/healthz status %d, want 503\n%s", resp.StatusCode, body)
	}
	data := filepath.Join(filepath.Dir(d.config), "data")
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	want := []string{"unhealthy:", "disk: ", " free on " + data + ", below the 4 EiB floor (metrics.min_free_bytes)"}
	if len(lines) != 2 || lines[0] != want[0] || !strings.HasPrefix(lines[1], want[1]) || !strings.HasSuffix(lines[1], want[2]) {
		t.Errorf("/healthz body %q, want %q then one line %q…%q", body, want[0], want[1], want[2])
	}
	d.stop()
}

// TestServeSIGTERMLosesNothing: SIGTERM during a stream of deliveries;
// every message answered 250 is in the mailbox afterwards.
func TestServeSIGTERMLosesNothing(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	d.cli("", "domain", "add", "example.com")
	d.cli("alice-secret\n", "user", "add", "alice@example.com", "--password-stdin")

	var mu sync.Mutex
	var accepted []string
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 500; i++ {
				token := fmt.Sprintf("token-%d-%d", w, i)
				msg := "From: s@remote.test\r\nSubject: " + token + "\r\n\r\nbody " + token + "\r\n"
				if err := sendMail(t, d.addr("smtp"), nil, "s@remote.test", []string{"alice@example.com"}, msg); err != nil {
					return // the daemon is going away
				}
				mu.Lock()
				accepted = append(accepted, token)
				mu.Unlock()
			}
		}()
	}
	for {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		if n >= 20 || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.stop()
	wg.Wait()
	if len(accepted) < 20 {
		t.Fatalf("only %d messages accepted before SIGTERM", len(accepted))
	}

	// Read the Maildir directly: the daemon is gone.
	root := filepath.Join(filepath.Dir(d.config), "data", "mail", "example.com", "alice", "Maildir")
	var all strings.Builder
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(root, sub))
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(root, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			all.Write(b)
		}
	}
	for _, tok := range accepted {
		if n := len(regexp.MustCompile(`body `+tok+`\r\n`).FindAllStringIndex(all.String(), -1)); n != 1 {
			t.Errorf("%s: answered 250 but found %d times after SIGTERM", tok, n)
		}
	}
	t.Logf("%d messages answered 250 before SIGTERM, all on disk", len(accepted))
}

// TestServeReloadsCertificateOnSIGHUP: a renewed certificate is served to
// new connections after SIGHUP, without a restart.
func TestServeReloadsCertificateOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "mail.crt"), filepath.Join(dir, "mail.key")
	if err := writeSelfSigned(dir, certFile, keyFile, "old.example.com"); err != nil {
		t.Fatal(err)
	}
	d := newDaemon(t, fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n", certFile, keyFile))
	d.start()
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", d.addr("submissions"), insecureTLS)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "old.example.com" {
		t.Fatalf("served %q", cn)
	}
	if err := writeSelfSigned(dir, certFile, keyFile, "new.example.com"); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for served() != "new.example.com" {
		if time.Now().After(deadline) {
			t.Fatalf("still serving the old certificate after SIGHUP\n%s", d.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.stop()
}

// TestServeDropsPrivileges: started as root with run_as, vmaild binds and
// then runs as that user, and still delivers.
func TestServeDropsPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	// The data folder must be reachable by the unprivileged user.
	base, err := os.MkdirTemp("", "vmaild-runas")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	data := filepath.Join(base, "data")
	if err := os.Mkdir(data, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, uid, gid); err != nil {
		t.Fatal(err)
	}
	d := newDaemon(t, "run_as: nobody\ndata_dir: "+data+"\n")
	d.start()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^Uid:\s+` + nobody.Uid + `\s+` + nobody.Uid).Match(status) {
		t.Fatalf("vmaild runs as %s, want uid %s", regexp.MustCompile(`(?m)^Uid:.*$`).Find(status), nobody.Uid)
	}
	// The control socket is the unprivileged user's, 0600; root reaches it.
	if fi, err := os.Lstat(filepath.Join(data, "control.sock")); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		t.Errorf("control socket: mode %v, owner %d; want 0600 owned by uid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, uid)
	}
	if out := d.cli("", "status"); !strings.Contains(out, "imap") {
		t.Errorf("status as root: %s", out)
	}
	d.stop()
}

// TestServeSharedGate: one gate counts a client network over every
// listener of the daemon; each protocol refuses in its own words, the
// refusals are counted in the metrics, and SIGTERM ends idle clients with
// a goodbye.
func TestServeSharedGate(t *testing.T) {
	// The test's clients come from loopback, which is exempt by default.
	d := newDaemon(t, "limits:\n  max_per_network: 3\n  exempt_networks: []\n")
	d.start()
	// start's probe of the smtp port must have left the gate.
	for deadline := time.Now().Add(10 * time.Second); metricValue(t, d.addr("metrics"), `vmaild_connections_open{listener="smtp"}`) != 0; {
		if time.Now().After(deadline) {
			t.Fatal("probe connection still open")
		}
		time.Sleep(20 * time.Millisecond)
	}
	type conn struct {
		c  net.Conn
		tp *textproto.Reader
	}
	dial := func(listener string) conn {
		c, err := net.Dial("tcp", d.addr(listener))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		return conn{c, textproto.NewReader(bufio.NewReader(c))}
	}
	line := func(c conn) string {
		l, err := c.tp.ReadLine()
		if err != nil {
			return "error: " + err.Error()
		}
		return l
	}
	var open []conn
	for _, l := range []struct{ listener, greeting string }{{"imap", "* OK"}, {"pop3", "+OK"}, {"smtp", "220 "}} {
		c := dial(l.listener)
		if got := line(c); !strings.HasPrefix(got, l.greeting) {
			t.Fatalf("%s greeting: %q", l.listener, got)
		}
		open = append(open, c)
	}
	for _, l := range []struct{ listener, refusal string }{
		{"pop3", "-ERR [SYS/TEMP] Too many connections from your network"},
		{"smtp", "421 4.7.0 mx.example.com Too many connections from your network"},
		{"submission", "421 4.7.0 mx.example.com Too many connections from your network"},
		{"imap", "* BYE [UNAVAILABLE] Too many connections from your network"},
	} {
		if got := line(dial(l.listener)); !strings.HasPrefix(got, l.refusal) {
			t.Errorf("%s over the network's limit: %q, want %q", l.listener, got, l.refusal)
		}
	}
	for _, listener := range []string{"pop3", "smtp", "submission", "imap"} {
		series := `vmaild_connections_refused_total{listener="` + listener + `",reason="max_per_network"}`
		if v := metricValue(t, d.addr("metrics"), series); v != 1 {
			t.Errorf("%s = %v, want 1", series, v)
		}
	}
	if !strings.Contains(d.out.String(), "network=127.0.0.1/32 limit=max_per_network") {
		t.Error("refusal not logged with the client network and the limit")
	}
	d.stop()
	for i, want := range []string{"* BYE Server shutting down", "-ERR [SYS/TEMP] Server shutting down", "421 "} {
		if got := line(open[i]); !strings.HasPrefix(got, want) {
			t.Errorf("idle client at SIGTERM: %q, want %q", got, want)
		}
	}
}

// TestHarnessMovesTakenPorts: when another process takes one of the
// daemon's ports between the configuration and the start, the harness
// starts it on new ports instead of failing the test.
func TestHarnessMovesTakenPorts(t *testing.T) {
	d := newDaemon(t, "")
	taken, err := net.Listen("tcp", d.addr("metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	old := d.addr("metrics")
	d.start()
	if d.addr("metrics") == old {
		t.Fatalf("the daemon kept the taken port %s", old)
	}
	if out := d.cli("", "domain", "list"); out == "" {
		t.Error("no answer from the CLI")
	}
}
