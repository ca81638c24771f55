package testscan

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testsrv"
)

// OpenDKIM is a private opendkim running as a milter on a loopback port,
// in sign-and-verify mode: mail from Domain sent by an internal host
// (127.0.0.1) is signed with Selector's key, and every other message gets
// an Authentication-Results field from AuthservID, even unsigned ones.
type OpenDKIM struct {
	*Daemon
	// Addr is the milter's host:port.
	Addr string
	// Domain, Selector and AuthservID are what it signs for, with and
	// reports as.
	Domain, Selector, AuthservID string
}

// OpenDKIM returns the pool's opendkim, starting it on first use.
func (p *Pool) OpenDKIM(t testing.TB) *OpenDKIM {
	t.Helper()
	bin := require(t, "opendkim", "opendkim")
	base, err := privateBase()
	if err != nil {
		t.Fatalf("opendkim: %v", err)
	}
	return p.get(t, "opendkim", base, func(dir string) (any, func(), error) {
		o, err := StartOpenDKIM(bin, dir, testsrv.FreePort(t))
		if err != nil {
			return nil, nil, err
		}
		return o, o.Stop, nil
	}).(*OpenDKIM)
}

// StartOpenDKIM starts opendkim from bin with its configuration and key
// in dir, as a milter on 127.0.0.1:port. opendkim refuses files in a
// directory others can write to, or below one: dir must not be in /tmp.
func StartOpenDKIM(bin, dir string, port int) (*OpenDKIM, error) {
	o := &OpenDKIM{Daemon: &Daemon{Name: "opendkim", Dir: dir}, Addr: "127.0.0.1:" + strconv.Itoa(port),
		Domain: "example.org", Selector: "test", AuthservID: "mx.example.org"}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	keyFile := filepath.Join(dir, "test.private")
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`Socket inet:%[1]d@127.0.0.1
Mode sv
Domain %[2]s
Selector %[3]s
KeyFile %[4]s
AuthservID %[5]s
AlwaysAddARHeader yes
InternalHosts 127.0.0.1
Canonicalization relaxed/relaxed
Background no
Syslog no
PidFile %[6]s
`, port, o.Domain, o.Selector, keyFile, o.AuthservID, filepath.Join(dir, "opendkim.pid"))
	cfg := filepath.Join(dir, "opendkim.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	// -f: foreground, so the process is ours to stop.
	err = o.start(bin, []string{"-f", "-x", cfg}, time.Minute, func() error {
		c, err := net.DialTimeout("tcp", o.Addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}
