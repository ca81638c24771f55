package srs

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The real implementations are the oracle: postsrsd (Debian's 1.x, libsrs2
// inside, answering Postfix tcp_table lookups) and Shevek's Mail::SRS
// through its srs command. Each writes addresses that we reverse, and
// reverses ours.

// interopSenders are senders as they arrive in MAIL FROM: case kept,
// sub-addresses, "=" in the local part, another forwarder's SRS0.
var interopSenders = []string{
	"alice@origin.example",
	"Bob.Smith@Origin.Example",
	"carol+list@origin.example",
	"dave=eq@sub.origin.example",
	"SRS0=abcd=2W=first.example=erin@forwarder.example",
}

// requireTool finds a Debian-packaged program; missing, it skips the test,
// or fails it under CI, which must prove the real thing.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	msg := fmt.Sprintf("%s not installed (Debian: apt-get install -y %s)", name, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// postsrsd is a private postsrsd on loopback ports.
type postsrsd struct {
	forward, reverse string // host:port
}

func startPostsrsd(t *testing.T, domain string, secrets []string) *postsrsd {
	bin := requireTool(t, "postsrsd", "postsrsd")
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(strings.Join(secrets, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fwd, rev := freePort(t), freePort(t)
	cmd := exec.Command(bin, "-s"+secretFile, "-d"+domain, "-l127.0.0.1", "-4",
		"-f"+strconv.Itoa(fwd), "-r"+strconv.Itoa(rev), "-t30")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	p := &postsrsd{forward: net.JoinHostPort("127.0.0.1", strconv.Itoa(fwd)), reverse: net.JoinHostPort("127.0.0.1", strconv.Itoa(rev))}
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{p.forward, p.reverse} {
		for {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("postsrsd did not listen on %s: %v", addr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var errNotFound = errors.New("postsrsd: no result")

// lookup asks a postsrsd table over Postfix's tcp_table protocol: "get
// KEY", answered "200 VALUE" or an error code; both sides URL-encode.
func (p *postsrsd) lookup(t *testing.T, table, key string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", table, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "get %s\n", url.PathEscape(key)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("postsrsd reply: %v", err)
	}
	line = strings.TrimRight(line, "\r\n")
	code, val, _ := strings.Cut(line, " ")
	if code != "200" {
		return "", fmt.Errorf("%w: %s", errNotFound, line)
	}
	v, err := url.PathUnescape(val)
	if err != nil {
		t.Fatalf("postsrsd reply %q: %v", line, err)
	}
	return v, nil
}

// mailSRS runs Mail::SRS's srs command.
func mailSRS(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := requireTool(t, "srs", "srs")
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("srs %q: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// asStdBase64 respells our base64url hash in the standard alphabet: the
// same hash, which the 1.x and Perl readers compare byte for byte (case
// aside). postsrsd 2.4 writes base64url and reads both, as we do.
func asStdBase64(addr string) string {
	local, domain, _ := strings.Cut(addr, "@")
	hash, rest, _ := strings.Cut(local[5:], "=")
	return local[:5] + strings.NewReplacer("-", "+", "_", "/").Replace(hash) + "=" + rest + "@" + domain
}

func TestInteropPostsrsd(t *testing.T) {
	const domain = "forwarder.test"
	secrets := []string{"first secret", "older secret"}
	p := startPostsrsd(t, domain, secrets)
	ours := newRewriter(t, Config{Domain: domain, Secrets: secrets, Now: time.Now})
	// Signed with the second secret: both sides verify with every one.
	rotated := newRewriter(t, Config{Domain: domain, Secrets: []string{"older secret"}, Now: time.Now})

	for _, sender := range interopSenders {
		t.Run(sender, func(t *testing.T) {
			theirs, err := p.lookup(t, p.forward, sender)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ours.Forward(sender)
			if err != nil {
				t.Fatal(err)
			}
			if asStdBase64(want) != theirs {
				t.Errorf("forward: postsrsd wrote %q, we write %q", theirs, want)
			}
			back, err := ours.Reverse(theirs)
			if err != nil {
				t.Fatalf("we reverse postsrsd's %q: %v", theirs, err)
			}
			if back != mustReverse(t, p, theirs) {
				t.Errorf("reverse of %q: we say %q, postsrsd %q", theirs, back, mustReverse(t, p, theirs))
			}
			for _, r := range []*Rewriter{ours, rotated} {
				mine, _ := r.Forward(sender)
				got, err := p.lookup(t, p.reverse, asStdBase64(mine))
				if err != nil || got != back {
					t.Errorf("postsrsd reverses our %q to %q, %v; want %q", mine, got, err, back)
				}
			}
			// Case smashed by a hop: both accept it.
			folded := strings.ToLower(theirs)
			if _, err := ours.Reverse(folded); err != nil {
				t.Errorf("we refuse the lower-cased %q: %v", folded, err)
			}
		})
	}
	// Both refuse the same forgery.
	forged := "SRS0=AAAA=2W=origin.example=alice@" + domain
	if _, err := p.lookup(t, p.reverse, forged); err == nil {
		t.Error("postsrsd reversed a forged address")
	}
	if _, err := ours.Reverse(forged); !errors.Is(err, ErrForged) {
		t.Errorf("we reverse a forged address: %v", err)
	}
	// Neither rewrites a sender in its own domain.
	if got, err := p.lookup(t, p.forward, "local@"+domain); err == nil && got != "local@"+domain {
		t.Errorf("postsrsd rewrote a local sender to %q", got)
	}
}

func mustReverse(t *testing.T, p *postsrsd, addr string) string {
	t.Helper()
	v, err := p.lookup(t, p.reverse, addr)
	if err != nil {
		t.Fatalf("postsrsd reverse %q: %v", addr, err)
	}
	return v
}

func TestInteropMailSRS(t *testing.T) {
	requireTool(t, "srs", "srs")
	const domain = "forwarder.test"
	ours := newRewriter(t, Config{Domain: domain, Secrets: []string{"perl secret", "older"}, Separator: "+", Now: time.Now})
	for _, sender := range interopSenders {
		t.Run(sender, func(t *testing.T) {
			theirs, err := mailSRS(t, "--secret=perl secret", "--separator=+", "--alias="+domain, "--forward", sender)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := ours.Forward(sender)
			if asStdBase64(want) != theirs {
				t.Errorf("forward: Mail::SRS wrote %q, we write %q", theirs, want)
			}
			back, err := ours.Reverse(theirs)
			if err != nil {
				t.Fatalf("we reverse Mail::SRS's %q: %v", theirs, err)
			}
			perl, err := mailSRS(t, "--secret=perl secret", "--reverse", asStdBase64(want))
			if err != nil {
				t.Fatalf("Mail::SRS reverses our %q: %v", want, err)
			}
			if perl != back {
				t.Errorf("reverse: Mail::SRS says %q, we say %q", perl, back)
			}
		})
	}
}
