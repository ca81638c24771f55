package compress

import (
	"bufio"
	"compress/flate"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// TestUnderWire swaps a wire.Reader and wire.Encoder onto the compressed
// halves as the session loop will, after COMPRESS DEFLATE read in clear,
// and serves compressed commands through them. The connection is TCP's,
// buffered as a client's is: the Reader hands a command over before the
// sync marker behind it, which net.Pipe's client would still be blocked
// writing while the server answers.
func TestUnderWire(t *testing.T) {
	cconn, sconn := tcpPair(t)
	defer cconn.Close()
	cconn.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() {
		defer sconn.Close()
		enc := wire.NewEncoder(bufio.NewWriter(sconn))
		r := wire.NewReader(bufio.NewReader(sconn), wire.Limits{}, func() error { enc.Continue(""); return enc.Flush() })
		var zr *Reader
		for {
			if zr != nil {
				zr.Next()
			}
			cmd, err := r.ReadCommand()
			if err != nil {
				errc <- err
				return
			}
			switch args := cmd.Args.(type) {
			case *wire.Compress:
				if args.Mechanism != "DEFLATE" || r.Buffered() != 0 {
					errc <- fmt.Errorf("COMPRESS %q with %d octets behind", args.Mechanism, r.Buffered())
					return
				}
				enc.Status(cmd.Tag, imap.StatusResponseTypeOK, "", "DEFLATE active")
				enc.Flush()
				zr = NewReader(sconn, Limits{})
				zw, _ := NewWriter(sconn, DefaultLevel)
				r.Reset(bufio.NewReader(zr))
				enc.Reset(bufio.NewWriterSize(zw, 64<<10))
			default:
				enc.Status(cmd.Tag, imap.StatusResponseTypeOK, "", cmd.Name+" done")
				enc.Flush()
			}
		}
	}()
	cr := bufio.NewReader(cconn)
	io.WriteString(cconn, "a1 COMPRESS DEFLATE\r\n")
	if line, err := cr.ReadString('\n'); err != nil || line != "a1 OK DEFLATE active\r\n" {
		t.Fatalf("COMPRESS answered %q, %v", line, err)
	}
	if cr.Buffered() != 0 {
		t.Fatal("compressed octets before the client compressed anything")
	}
	fw, _ := flate.NewWriter(cconn, flate.BestSpeed)
	zin := bufio.NewReader(flate.NewReader(cr))
	for i, cmd := range []string{"NOOP", "SELECT INBOX", "UID FETCH 1:* (FLAGS)"} {
		fmt.Fprintf(fw, "b%d %s\r\n", i, cmd)
		fw.Flush()
		line, err := zin.ReadString('\n')
		name, _, _ := strings.Cut(cmd, " ")
		if name == "UID" {
			name = "UID FETCH"
		}
		if want := fmt.Sprintf("b%d OK %s done\r\n", i, name); err != nil || line != want {
			t.Fatalf("%s answered %q, %v; want %q", cmd, line, err, want)
		}
	}
	cconn.Close()
	if err := <-errc; err == nil {
		t.Fatal("no error after the client hung up")
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	return client, server
}
