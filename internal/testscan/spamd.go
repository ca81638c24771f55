package testscan

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testsrv"
)

// Spamd is a private SpamAssassin spamd on a loopback port: the rules
// Debian ships in /usr/share/spamassassin, a site configuration of its
// own (only the Check plugin, required_score 5), local tests only (no
// DNS), no user configuration.
type Spamd struct {
	*Daemon
	// Addr is host:port of spamd.
	Addr string
}

// Spamd returns the pool's spamd, starting it on first use.
func (p *Pool) Spamd(t testing.TB) *Spamd {
	t.Helper()
	bin := require(t, "spamd", "spamd spamassassin")
	return p.get(t, "spamd", "", func(dir string) (any, func(), error) {
		s, err := StartSpamd(bin, dir, testsrv.FreePort(t))
		if err != nil {
			return nil, nil, err
		}
		return s, s.Stop, nil
	}).(*Spamd)
}

// spamdRules is where Debian's spamassassin package keeps the rules.
const spamdRules = "/usr/share/spamassassin"

// StartSpamd starts spamd from bin with its site configuration in dir,
// listening on 127.0.0.1:port.
func StartSpamd(bin, dir string, port int) (*Spamd, error) {
	s := &Spamd{Daemon: &Daemon{Name: "spamd"}, Addr: "127.0.0.1:" + strconv.Itoa(port)}
	s.Dir = dir
	if _, err := os.Stat(filepath.Join(spamdRules, "20_body_tests.cf")); err != nil {
		return nil, fmt.Errorf("spamd rules: %w", err)
	}
	// spamd started as root runs as nobody, who must read the site
	// configuration.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	site := filepath.Join(dir, "site")
	home := filepath.Join(dir, "home")
	for _, d := range []string{site, home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"v320.pre": "loadplugin Mail::SpamAssassin::Plugin::Check\n",
		"local.cf": "required_score 5.0\nreport_safe 0\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(site, name), []byte(text), 0o644); err != nil {
			return nil, err
		}
	}
	args := []string{"-x", "-L", "-C", spamdRules, "--siteconfigpath=" + site, "-H", home,
		"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-m", "2", "-r", filepath.Join(dir, "spamd.pid"), "-s", "stderr"}
	if err := s.start(bin, args, 2*time.Minute, s.ping); err != nil {
		return nil, err
	}
	return s, nil
}

// ping is the SPAMC protocol's PING.
func (s *Spamd) ping() error {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("PING SPAMC/1.5\r\n\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.Contains(line, "PONG") {
		return fmt.Errorf("ping: %q", line)
	}
	return nil
}
