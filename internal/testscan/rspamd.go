package testscan

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testsrv"
)

// Rspamd is a private rspamd: one normal worker on a loopback port, no
// Lua rules (a fast start; GTUBE is in rspamd's core) and the test
// patterns on, so that GTUBE's "XJS*…" is rejected and its "YJS*…"
// variant gets "add header". Actions: reject at 15, add header at 6.
type Rspamd struct {
	*Daemon
	// URL is the normal worker's base URL.
	URL string
}

// Rspamd returns the pool's rspamd, starting it on first use.
func (p *Pool) Rspamd(t testing.TB) *Rspamd {
	t.Helper()
	bin := require(t, "rspamd", "rspamd")
	return p.get(t, "rspamd", "", func(dir string) (any, func(), error) {
		r, err := StartRspamd(bin, dir, testsrv.FreePort(t))
		if err != nil {
			return nil, nil, err
		}
		return r, r.Stop, nil
	}).(*Rspamd)
}

// StartRspamd starts rspamd from bin with its configuration and data in
// dir, listening on 127.0.0.1:port.
func StartRspamd(bin, dir string, port int) (*Rspamd, error) {
	r := &Rspamd{Daemon: &Daemon{Name: "rspamd", Dir: dir, Log: filepath.Join(dir, "rspamd.log")},
		URL: "http://127.0.0.1:" + strconv.Itoa(port)}
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		return nil, err
	}
	// A short public-suffix list: the full one takes seconds to compile.
	tld := filepath.Join(dir, "tld.dat")
	if err := os.WriteFile(tld, []byte("com\norg\nnet\ntest\n"), 0o600); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`options {
  pidfile = "%[1]s/rspamd.pid";
  dbdir = "%[1]s/db";
  tempdir = "%[1]s";
  url_tld = "%[2]s";
  enable_test_patterns = true;
}
logging { type = "file"; filename = "%[1]s/rspamd.log"; level = "info"; }
worker "normal" { bind_socket = "127.0.0.1:%[3]d"; count = 1; }
actions { reject = 15; add_header = 6; greylist = 4; }
`, dir, tld, port)
	cfg := filepath.Join(dir, "rspamd.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	// -f: foreground, so the process is ours to stop; -i: workers may
	// run as root (test machines and containers).
	err := r.start(bin, []string{"-f", "-i", "-c", cfg}, time.Minute, func() error {
		resp, err := http.Get(r.URL + "/ping")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("ping: %s %s", resp.Status, b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}
