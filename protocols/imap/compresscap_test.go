package imap

import (
	"strings"
	"testing"
	"time"
)

// TestCompressCap: the compressed sessions of one client network are
// capped (each holds a compressor for its life); past the cap COMPRESS
// is refused with NO [LIMIT] and the session goes on uncompressed, and a
// closed session frees its place.
func TestCompressCap(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.MaxCompressedPerNetwork = 1 })
	first := e.raw(t)
	first.login()
	first.send("Z1 COMPRESS DEFLATE\r\n")
	if l := first.line(); !strings.HasPrefix(l, "Z1 OK") {
		t.Fatalf("first COMPRESS: %q", l)
	}
	second := e.raw(t)
	second.login()
	second.send("Z2 COMPRESS DEFLATE\r\n")
	if l := second.line(); !strings.HasPrefix(l, "Z2 NO [LIMIT]") {
		t.Fatalf("second COMPRESS: %q", l)
	}
	second.send("Z3 NOOP\r\n")
	if l := second.line(); !strings.HasPrefix(l, "Z3 OK") {
		t.Fatalf("NOOP after a refused COMPRESS: %q", l)
	}
	first.c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		second.send("Z4 COMPRESS DEFLATE\r\n")
		l := second.line()
		if strings.HasPrefix(l, "Z4 OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("COMPRESS after the first session closed: %q", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
