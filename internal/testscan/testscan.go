// Package testscan starts private instances of the scanners the inbound
// checks talk to (rspamd, SpamAssassin's spamd, ClamAV's clamd, OpenDKIM
// as a milter) for tests: each with its own configuration and data in a
// temporary directory, on a loopback port or a socket in that directory,
// never the system's configuration or instance.
//
// Scanners are slow to start (rspamd compiles its maps, spamd its rules),
// so a test package starts each at most once, through a Pool that its
// TestMain closes. A missing binary skips the test, or fails it when CI is
// set, as with testsrv.RequireBinary.
package testscan

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testsrv"
)

// Daemon is one running scanner process (and the children it forks).
type Daemon struct {
	Name string
	// Dir is its private directory (configuration, data, sockets, log).
	Dir string
	// Log is the file its log goes to, for failure messages.
	Log string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *bytes.Buffer
	frozen []*os.Process
}

// start runs the command in its own process group and waits until ready
// says so, or the process exits, or patience runs out.
func (d *Daemon) start(bin string, args []string, patience time.Duration, ready func() error) error {
	d.out = &bytes.Buffer{}
	cmd := exec.Command(bin, args...)
	cmd.Dir = d.Dir
	cmd.Stdout, cmd.Stderr = d.out, d.out
	cmd.Env = append(os.Environ(), "HOME="+d.Dir, "TMPDIR="+d.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", d.Name, err)
	}
	d.cmd, d.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(d.exited)
	}()
	deadline := time.Now().Add(patience)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("%s exited during start: %v\n%s", d.Name, cmd.ProcessState, d.logs())
		default:
		}
		if time.Now().After(deadline) {
			d.Stop()
			return fmt.Errorf("%s not ready after %v: %v\n%s", d.Name, patience, err, d.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logs is what the daemon printed and the end of its log file.
func (d *Daemon) logs() string {
	s := d.out.String()
	if d.Log != "" {
		if b, err := os.ReadFile(d.Log); err == nil {
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			s += "\n" + string(b)
		}
	}
	return s
}

// Stop ends the daemon and its children and waits for it. It is given a
// second to exit on SIGTERM (opendkim takes four), then killed: nothing
// of a test's scanner is worth waiting for.
func (d *Daemon) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return
	}
	pgid := d.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGCONT)
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-d.exited
	}
	// Children that outlived their parent.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	d.cmd = nil
}

// Pause freezes the daemon and every process it forked (SIGSTOP), and
// returns once all their threads have stopped: connections are still
// accepted into the listen backlog, but nothing answers, as with a hung
// scanner. Resume undoes it.
func (d *Daemon) Pause(t testing.TB) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		t.Fatalf("%s: Pause while stopped", d.Name)
	}
	for _, pid := range family(d.cmd.Process.Pid) {
		p, err := os.FindProcess(pid)
		if err != nil {
			continue
		}
		if err := testsrv.Freeze(p, 10*time.Second); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatalf("%s: %v", d.Name, err)
		}
		d.frozen = append(d.frozen, p)
	}
}

// Resume continues a paused daemon.
func (d *Daemon) Resume() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.frozen {
		_ = testsrv.Thaw(p)
	}
	d.frozen = nil
}

// family is pid and its descendants, read from /proc/PID/task/*/children.
func family(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(out[i]), "task", "*", "children"))
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			for _, s := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(s); err == nil {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

// Pool starts each scanner at most once and stops them all on Close;
// its zero value is ready. A test package keeps one and closes it in
// TestMain after m.Run.
type Pool struct {
	mu      sync.Mutex
	started map[string]*pooled
}

type pooled struct {
	once sync.Once
	d    any
	err  error
	stop func()
}

// get returns the scanner called name, starting it on first use.
// Its directory is made in base ("" is os.TempDir).
func (p *Pool) get(t testing.TB, name, base string, start func(dir string) (any, func(), error)) any {
	t.Helper()
	p.mu.Lock()
	if p.started == nil {
		p.started = map[string]*pooled{}
	}
	e := p.started[name]
	if e == nil {
		e = &pooled{}
		p.started[name] = e
	}
	p.mu.Unlock()
	e.once.Do(func() {
		// A port free when picked can be taken by another test process
		// before the daemon binds it; it then exits at once, and a new
		// directory and port are tried.
		for attempt := 1; attempt <= 3; attempt++ {
			dir, err := os.MkdirTemp(base, "vmaild-"+name+"-")
			if err != nil {
				e.err = err
				return
			}
			var stop func()
			e.d, stop, e.err = start(dir)
			if e.err != nil {
				os.RemoveAll(dir)
				continue
			}
			e.stop = func() {
				stop()
				os.RemoveAll(dir)
			}
			return
		}
	})
	if e.err != nil {
		t.Fatalf("%s: %v", name, e.err)
	}
	return e.d
}

// Close stops every scanner the pool started and removes their
// directories.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.started {
		if e.stop != nil {
			e.stop()
		}
	}
	p.started = nil
}

// privateBase is a directory no other user can write to, nor any
// directory above it, for daemons that refuse to read configuration or
// keys from a world-writable /tmp (opendkim): the user's cache directory.
func privateBase() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	base := filepath.Join(cache, "vmaild-test")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", err
	}
	return base, nil
}

// require is testsrv.RequireBinary with the Debian package to install
// named: a missing scanner skips the test, or fails it when CI is set.
func require(t testing.TB, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil && !st.IsDir() {
			return filepath.Join(dir, name)
		}
	}
	msg := name + " not installed (Debian: apt-get install -y " + pkg + "; ./test.sh installs it)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
