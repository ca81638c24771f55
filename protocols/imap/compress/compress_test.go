package compress

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

func requirePython(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 not installed (Debian: apt-get install -y python3)")
		}
		t.Skip("python3 not installed")
	}
	return p
}

// serve answers one connection as a server would: COMPRESS DEFLATE in
// clear, then each command compressed. "FETCH n" gets n untagged lines;
// anything else one line giving the command's length.
func serve(conn net.Conn, got chan<- string) error {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "c0 COMPRESS DEFLATE\r\n" {
		return fmt.Errorf("first command %q", line)
	}
	if _, err := io.WriteString(conn, "c0 OK DEFLATE active\r\n"); err != nil {
		return err
	}
	if br.Buffered() != 0 {
		return errors.New("data pipelined behind COMPRESS")
	}
	zr := NewReader(conn, Limits{})
	zw, err := NewWriter(conn, DefaultLevel)
	if err != nil {
		return err
	}
	br = bufio.NewReader(zr)
	bw := bufio.NewWriterSize(zw, 64<<10)
	for {
		zr.Next()
		line, err := br.ReadString('\n')
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		got <- line
		tag, rest, _ := strings.Cut(strings.TrimSuffix(line, "\r\n"), " ")
		var n int
		if _, err := fmt.Sscanf(rest, "FETCH %d", &n); err == nil {
			for i := 1; i <= n; i++ {
				fmt.Fprintf(bw, "* %d FETCH (UID %d FLAGS (\\Seen))\r\n", i, 1000+i)
			}
		} else {
			fmt.Fprintf(bw, "* LEN %d\r\n", len(line))
		}
		fmt.Fprintf(bw, "%s OK done\r\n", tag)
		if err := bw.Flush(); err != nil {
			return err
		}
	}
}

// TestPythonZlibPeer exchanges lines both ways with Python's zlib: what
// zlib deflates, Reader inflates at every flush, sync or partial; what
// Writer sends, zlib inflates at every flush (the peer waits for each
// tagged answer before the next command, so a command or a response left
// in an inflater or a compressor would hang it).
func TestPythonZlibPeer(t *testing.T) {
	py := requirePython(t)
	for _, flush := range []string{"sync", "partial"} {
		t.Run(flush, func(t *testing.T) {
			testPythonZlibPeer(t, py, flush)
		})
	}
}

func testPythonZlibPeer(t *testing.T, py, flush string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmds := []string{
		"a1 NOOP",
		"a2 FETCH 3",
		"a3 SELECT " + strings.Repeat("x", 50000),
		"a4 FETCH 5000",
		"a5 LIST \"\" \"caf\xc3\xa9\"",
		"a6 LOGOUT",
	}
	got := make(chan string, len(cmds)+1)
	errc := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		errc <- serve(conn, got)
	}()
	cmd := exec.Command(py, "testdata/peer.py", fmt.Sprint(ln.Addr().(*net.TCPAddr).Port), flush)
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python peer: %v: %s", err, stderr.String())
	}
	if err := <-errc; err != nil {
		t.Fatalf("server: %v", err)
	}
	close(got)
	i := 0
	for line := range got {
		if want := cmds[i] + "\r\n"; line != want {
			t.Errorf("command %d inflated to %.60q, want %.60q", i, line, want)
		}
		i++
	}
	if i != len(cmds) {
		t.Errorf("server read %d commands, want %d", i, len(cmds))
	}
	var want strings.Builder
	for _, c := range cmds {
		tag, rest, _ := strings.Cut(c, " ")
		var n int
		if _, err := fmt.Sscanf(rest, "FETCH %d", &n); err == nil {
			for j := 1; j <= n; j++ {
				fmt.Fprintf(&want, "* %d FETCH (UID %d FLAGS (\\Seen))\r\n", j, 1000+j)
			}
		} else {
			fmt.Fprintf(&want, "* LEN %d\r\n", len(c)+2)
		}
		fmt.Fprintf(&want, "%s OK done\r\n", tag)
	}
	if string(out) != want.String() {
		t.Errorf("python inflated %d octets, want %d; first difference near %q", len(out), want.Len(), firstDiff(string(out), want.String()))
	}
}

func firstDiff(a, b string) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[max(0, i-20):min(len(a), i+20)]
		}
	}
	return ""
}

// bomb returns a raw DEFLATE stream of size octets of zeros (size a
// multiple of 1 MiB): one sync-flushed block of a megabyte of zeros,
// repeated. The block starts with a literal zero and refers back only to
// zeros, so its copies chain into one valid stream.
func bomb(t testing.TB, size int) []byte {
	t.Helper()
	var block bytes.Buffer
	fw, err := flate.NewWriter(&block, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(make([]byte, 1<<20))
	fw.Flush()
	return bytes.Repeat(block.Bytes(), size>>20)
}

// TestDeflateBomb sends a gigabyte of zeros deflated (about a megabyte)
// and expects the Reader to refuse it after its limits, having inflated
// little and allocated little.
func TestDeflateBomb(t *testing.T) {
	// The stream is what it claims: flate alone inflates 8 of its
	// megabytes to zeros.
	small, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(bomb(t, 8<<20))), 9<<20))
	if len(small) != 8<<20 || bytes.IndexFunc(small, func(r rune) bool { return r != 0 }) >= 0 {
		t.Fatalf("the bomb inflates to %d octets (%v), want 8 MiB of zeros", len(small), err)
	}
	stream := bomb(t, 1<<30)
	t.Logf("bomb: %d compressed octets for 1 GiB", len(stream))
	for _, tc := range []struct {
		name string
		lim  Limits
		max  int64 // inflated octets at most before the refusal
	}{
		{"ratio", Limits{}, 2 << 20},
		{"command", Limits{Command: 256 << 10, Ratio: 1 << 20}, 256 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cconn, sconn := net.Pipe()
			go func() { cconn.Write(stream); cconn.Close() }()
			defer sconn.Close()
			sconn.SetDeadline(time.Now().Add(60 * time.Second))
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			zr := NewReader(sconn, tc.lim)
			n, err := io.Copy(io.Discard, zr)
			runtime.ReadMemStats(&after)
			var le *LimitError
			if !errors.As(err, &le) || !errors.Is(err, ErrLimit) {
				t.Fatalf("after %d octets: err %v, want a *LimitError", n, err)
			}
			if n > tc.max {
				t.Errorf("inflated %d octets before refusing, want at most %d", n, tc.max)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%v; %d octets inflated, %d allocated", err, n, alloc)
			// Generous: flate's window and tables are some 100 KB.
			if alloc > 4<<20 {
				t.Errorf("allocated %d octets refusing a bomb, want under 4 MiB", alloc)
			}
			if _, err2 := zr.Read(make([]byte, 10)); err2 != err {
				t.Errorf("Read after refusal: %v, want the same error", err2)
			}
		})
	}
}

// TestHangUp: a client that closes after a sync flush, or before
// sending anything, ends the stream with io.EOF, as an uncompressed
// connection does; Python's client in TestPythonZlibPeer does the same.
func TestHangUp(t *testing.T) {
	var good bytes.Buffer
	fw, _ := flate.NewWriter(&good, DefaultLevel)
	fw.Write([]byte("a1 NOOP\r\n"))
	fw.Flush()
	for _, stream := range [][]byte{good.Bytes(), nil} {
		got, err := io.ReadAll(NewReader(bytes.NewReader(stream), Limits{}))
		if err != nil || (stream != nil && string(got) != "a1 NOOP\r\n") {
			t.Errorf("inflated %q, %v; want a1 NOOP and io.EOF", got, err)
		}
	}
}

// TestBrokenStreams: a truncated or corrupt stream is an error, never a
// hang (the deadline is the net's, far beyond what the test needs).
func TestBrokenStreams(t *testing.T) {
	var good bytes.Buffer
	fw, _ := flate.NewWriter(&good, DefaultLevel)
	fw.Write([]byte("a1 NOOP\r\na2 FETCH 1:* (FLAGS)\r\n"))
	fw.Flush()
	whole := good.Bytes()
	for _, tc := range []struct {
		name   string
		stream []byte
	}{
		{"empty", nil},
		{"truncated", whole[:len(whole)/2]},
		{"truncated inside the sync marker", whole[:len(whole)-2]},
		{"corrupt block type", []byte{0x07, 0x00}},
		{"stored length mismatch", []byte{0x00, 0x05, 0x00, 0x00, 0x00, 'a'}},
		{"distance before start", []byte{0x63, 0x00, 0x42, 0x00}},
		{"garbage", []byte("a1 NOOP\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cconn, sconn := net.Pipe()
			go func() { cconn.Write(tc.stream); cconn.Close() }()
			defer sconn.Close()
			sconn.SetDeadline(time.Now().Add(10 * time.Second))
			_, err := io.Copy(io.Discard, NewReader(sconn, Limits{}))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("hung until the deadline: %v", err)
			}
			if err == nil && len(tc.stream) > 0 {
				t.Fatalf("no error for a broken stream")
			}
			t.Logf("%v", err)
		})
	}
}
