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
// server the test starts later. It is drawn at random below the kernel's
// ephemeral range (ip_local_port_range), which the kernel's own :0 picks
// come from: a port from there, freed again, can be taken meanwhile by the
// local end of any outgoing connection on the machine (a parallel test's
// client), and the server then fails to bind. Below that range only
// another FreePort caller could take it, and random draws make that rare.
func FreePort(t testing.TB) int {
	t.Helper()
	const lo, hi = 20000, 32000 // below Linux's default 32768–60999
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func itoa(n int) string { return strconv.Itoa(n) }
