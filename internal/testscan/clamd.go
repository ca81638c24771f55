package testscan

import (
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// EICAR is the anti-virus test file (eicar.org): harmless, and found by
// every scanner that knows its signature.
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// EICARSignature is the name the private database gives it; clamd adds
// ".UNOFFICIAL" to signatures not from ClamAV's own databases.
const EICARSignature = "Eicar-Test-Signature"

// Clamd is a private ClamAV clamd listening on a socket in its directory,
// with a database holding one signature, EICAR's (written here: no
// download, no ClamAV database needed). AlertExceedsMax is on, as it
// should be in production: a message nested deeper than MaxRecursion, or
// over another scan limit, is reported as Heuristics.Limits.Exceeded
// instead of passing unscanned.
type Clamd struct {
	*Daemon
	// Socket is the path of its local socket.
	Socket string
}

// Clamd returns the pool's clamd, starting it on first use.
func (p *Pool) Clamd(t testing.TB) *Clamd {
	t.Helper()
	bin := require(t, "clamd", "clamav-daemon")
	return p.get(t, "clamd", "", func(dir string) (any, func(), error) {
		c, err := StartClamd(bin, dir)
		if err != nil {
			return nil, nil, err
		}
		return c, c.Stop, nil
	}).(*Clamd)
}

// StartClamd starts clamd from bin with its configuration, database and
// socket in dir.
func StartClamd(bin, dir string) (*Clamd, error) {
	c := &Clamd{Daemon: &Daemon{Name: "clamd", Dir: dir, Log: filepath.Join(dir, "clamd.log")},
		Socket: filepath.Join(dir, "clamd.sock")}
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		return nil, err
	}
	// An extended (.ndb) signature: name, any file type, any offset, the
	// bytes in hex.
	sig := fmt.Sprintf("%s:0:*:%s\n", EICARSignature, hex.EncodeToString([]byte(EICAR)))
	if err := os.WriteFile(filepath.Join(db, "eicar.ndb"), []byte(sig), 0o644); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`DatabaseDirectory %[1]s
LocalSocket %[2]s
Foreground yes
LogFile %[3]s
PidFile %[4]s
TemporaryDirectory %[5]s
StreamMaxLength 8M
MaxThreads 4
AlertExceedsMax yes
`, db, c.Socket, c.Log, filepath.Join(dir, "clamd.pid"), dir)
	cfg := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := c.start(bin, []string{"-c", cfg}, time.Minute, c.ping); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Clamd) ping() error {
	conn, err := net.DialTimeout("unix", c.Socket, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return err
	}
	b := make([]byte, 16)
	n, _ := conn.Read(b)
	if string(b[:n]) != "PONG\x00" {
		return fmt.Errorf("ping: %q", b[:n])
	}
	return nil
}
