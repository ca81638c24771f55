// Package testsrv starts private instances of the real servers vmaild talks
// to (OpenLDAP slapd, MariaDB mariadbd) for tests: each in its own temporary
// directory on a free loopback port, stopped when the test ends.
//
// When a server binary is missing the test is skipped on a developer's
// machine, but fails when CI is set: CI must prove the real thing.
package testsrv

import (
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
)

// RequireBinary returns the path of a server binary, looking in PATH and in
// the sbin directories Debian installs daemons to. A missing binary skips
// the test, or fails it when the CI environment variable is set.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/libexec"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	msg := name + " not installed (Debian: apt-get install -y slapd ldap-utils mariadb-server)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server the test starts later. Ports come from below the kernel's
// ephemeral range (ip_local_port_range, 32768–60999 by default), which the
// kernel's own :0 picks come from: a port from there, freed again, can be
// taken meanwhile by the local end of any outgoing connection on the
// machine (a parallel test's client), and the server then fails to bind.
// Below that range only another test could take it: within this process
// no port is handed out twice, and each test process walks the range from
// its own random start, so parallel packages rarely meet.
func FreePort(t testing.TB) int {
	t.Helper()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
		ports.next = rand.IntN(portsHi - portsLo)
	}
	for range portsHi - portsLo {
		port := portsLo + ports.next
		ports.next = (ports.next + 1) % (portsHi - portsLo)
		if ports.given[port] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		ports.given[port] = true
		return port
	}
	t.Fatal("free port: none left below the ephemeral range")
	return 0
}

const portsLo, portsHi = 20000, 32000

// ports is what FreePort has handed out in this process.
var ports struct {
	mu    sync.Mutex
	given map[int]bool
	next  int
}

func itoa(n int) string { return strconv.Itoa(n) }
