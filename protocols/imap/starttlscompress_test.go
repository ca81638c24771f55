package imap

import (
	"bufio"
	"compress/flate"
	"io"
	"strings"
	"testing"
	"time"
)

// TestSTARTTLSUnderCompress: after COMPRESS and UNAUTHENTICATE on a
// listener that allows plaintext logins, the session is not
// authenticated again but deflated. STARTTLS would put TLS under the
// inflater for reads only, and the session would be garbage: it is
// refused, and not offered in CAPABILITY.
func TestSTARTTLSUnderCompress(t *testing.T) {
	e := newEnv(t, withTLS(true))
	r := e.raw(t)
	r.login()
	r.send("C1 COMPRESS DEFLATE\r\n")
	if l := r.line(); l != "C1 OK DEFLATE active" {
		t.Fatalf("COMPRESS: %q", l)
	}
	zw, err := flate.NewWriter(r.c, flate.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	zr := bufio.NewReader(flate.NewReader(r.br))
	cmd := func(tag, line string) []string {
		t.Helper()
		r.c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(zw, tag+" "+line+"\r\n")
		zw.Flush()
		var out []string
		for {
			l, err := zr.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v (have %q)", line, err, out)
			}
			out = append(out, strings.TrimRight(l, "\r\n"))
			if strings.HasPrefix(l, tag+" ") {
				return out
			}
		}
	}
	if l := cmd("U1", "UNAUTHENTICATE"); !strings.HasPrefix(l[len(l)-1], "U1 OK") {
		t.Fatalf("UNAUTHENTICATE: %q", l)
	}
	if l := cmd("C2", "CAPABILITY"); strings.Contains(strings.Join(l, "\n"), "STARTTLS") {
		t.Errorf("CAPABILITY under COMPRESS offers STARTTLS: %q", l)
	}
	if l := cmd("S1", "STARTTLS"); !strings.HasPrefix(l[len(l)-1], "S1 BAD") {
		t.Fatalf("STARTTLS under COMPRESS: %q", l)
	}
	if l := cmd("L2", "LOGIN "+testUser+" "+testPass); !strings.HasPrefix(l[len(l)-1], "L2 OK") {
		t.Fatalf("LOGIN after the refused STARTTLS: %q", l)
	}
}
