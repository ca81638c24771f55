package imap

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzSession feeds arbitrary client octets to a real connection of the
// command loop, not logged in, logged in, or with INBOX selected (start
// modulo 3), then half-closes it. Properties:
//
//   - the server neither panics (the fuzzing process would die) nor waits:
//     it answers and closes once the client's stream ends;
//   - no goroutine outlives the connection;
//   - the server answers only tags the client sent at the start of a
//     command: no octets of a literal, or of the rest of a refused line,
//     are ever taken for a command (smuggling);
//   - no command gets two tagged answers.
//
// Where a command starts depends on the server for synchronizing literals
// (its "+" or its refusal), so the client's stream is read as every
// framing it allows: a line ending in {n+} is followed by n octets of
// literal; one ending in {n} either by n octets (accepted) or by the next
// command (refused). A tag is legitimate if some framing starts a command
// with it, and answered at most as often as such starts.
func FuzzSession(f *testing.F) {
	for _, tc := range hostileCases() {
		in := tc.send + tc.extra
		if len(in) > 8<<10 {
			continue
		}
		start := byte(0)
		switch {
		case tc.select_:
			start = 2
		case tc.login:
			start = 1
		}
		f.Add(start, []byte(in))
	}
	e := newEnv(f)
	e.deliver(f, "", msg1)
	f.Fuzz(func(t *testing.T, start byte, data []byte) {
		fuzzSession(t, e, int(start%3), data)
	})
}

func fuzzSession(t *testing.T, e *env, start int, data []byte) {
	base := runtime.NumGoroutine()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	prefix := []string{}
	if start >= 1 {
		prefix = append(prefix, "L0 LOGIN "+testUser+" "+testPass)
	}
	if start == 2 {
		prefix = append(prefix, "S0 SELECT INBOX")
	}
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	for _, cmd := range prefix {
		fmt.Fprintf(c, "%s\r\n", cmd)
		tag := cmd[:2] + " "
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if strings.HasPrefix(l, tag) {
				break
			}
		}
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		c.Write(data) // the server may close before reading it all
		c.(*net.TCPConn).CloseWrite()
	}()
	out, err := io.ReadAll(br)
	<-written
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server neither closed nor ended after the client's stream ended; it sent %q", out)
	}
	if err := checkAnswers(data, out); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// Every goroutine of the connection ends with it.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines after the connection, %d before:\n%s", runtime.NumGoroutine(), base, buf.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// checkAnswers checks the server's output against the command starts of
// the client's input (see FuzzSession).
func checkAnswers(in, out []byte) error {
	starts := commandStarts(in)
	answered := map[string]int{}
	for _, l := range serverLines(out) {
		// Outside literals, a response is one line of text.
		if strings.ContainsAny(l, "\x00\r") {
			return fmt.Errorf("response line %q holds NUL or CR\nin: %q\nout: %q", l, in, out)
		}
		if strings.HasPrefix(l, "* ") || strings.HasPrefix(l, "+") {
			continue
		}
		tag, rest, _ := strings.Cut(l, " ")
		if starts[tag] == 0 {
			return fmt.Errorf("answer %q to a tag the client never sent as a command start\nin: %q\nout: %q", l, in, out)
		}
		answered[tag]++
		if answered[tag] > starts[tag] {
			return fmt.Errorf("%d answers to %q, sent at most %d times\nin: %q\nout: %q", answered[tag], tag, starts[tag], in, out)
		}
		if rest == "OK DEFLATE active" {
			return nil // what follows is compressed
		}
	}
	return nil
}

// serverLines splits the server's output into response lines, skipping
// the literals they announce.
func serverLines(out []byte) []string {
	var lines []string
	cont := false // the response goes on after a literal
	for len(out) > 0 {
		l := string(out)
		out = nil
		if i := strings.IndexByte(l, '\n'); i >= 0 {
			l, out = strings.TrimSuffix(l[:i], "\r"), []byte(l[i+1:])
		}
		if !cont {
			lines = append(lines, l)
		}
		cont = false
		if n, _, ok := literalMarker(l); ok {
			out = out[min(n, uint64(len(out))):]
			cont = true
		}
	}
	return lines
}

// literalMarker parses a literal marker ending line as the wire reader
// does: {n}, {n+}, ~{n}, ~{n+}, at most 19 digits.
func literalMarker(line string) (size uint64, sync bool, ok bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false, false
	}
	digits := line[i+1 : len(line)-1]
	sync = true
	if strings.HasSuffix(digits, "+") {
		digits, sync = digits[:len(digits)-1], false
	}
	if len(digits) == 0 || len(digits) > 19 || strings.Trim(digits, "0123456789") != "" {
		return 0, false, false
	}
	size, err := strconv.ParseUint(digits, 10, 64)
	return size, sync, err == nil
}

// commandStarts counts, for each tag, the positions of in where some
// framing starts a command with it. The tag is the line's first word.
// After AUTHENTICATE and IDLE come lines that are not commands (SASL
// responses, DONE), read whole with no literal; whether they come depends
// on the server too, so both readings are followed.
func commandStarts(in []byte) map[string]int {
	const (
		start = iota // a command starts here
		cont         // a command goes on after a literal
		plain        // a SASL response or DONE
	)
	type state struct{ pos, kind int }
	seen := map[state]bool{}
	starts := map[string]int{}
	todo := []state{{0, start}}
	for len(todo) > 0 {
		s := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if s.pos >= len(in) || seen[s] {
			continue
		}
		seen[s] = true
		end := len(in)
		next := len(in)
		if i := bytes.IndexByte(in[s.pos:], '\n'); i >= 0 {
			end, next = s.pos+i, s.pos+i+1
		}
		line := strings.TrimSuffix(string(in[s.pos:end]), "\r")
		switch s.kind {
		case plain:
			todo = append(todo, state{next, start}, state{next, plain})
			continue
		case start:
			tag, rest, _ := strings.Cut(line, " ")
			starts[tag]++
			name, _, _ := strings.Cut(rest, " ")
			if strings.EqualFold(name, "AUTHENTICATE") || strings.EqualFold(name, "IDLE") {
				todo = append(todo, state{next, plain})
			}
		}
		size, sync, ok := literalMarker(line)
		if !ok {
			todo = append(todo, state{next, start})
			continue
		}
		if size <= uint64(len(in)) {
			todo = append(todo, state{next + int(size), cont})
		}
		if sync {
			todo = append(todo, state{next, start})
		}
	}
	return starts
}

// TestSessionOracle: FuzzSession's check tells smuggled and repeated
// answers from legitimate ones.
func TestSessionOracle(t *testing.T) {
	tests := []struct {
		in, out string
		ok      bool
	}{
		{"A1 NOOP\r\nA2 NOOP\r\n", "A1 OK\r\nA2 OK\r\n", true},
		{"A1 NOOP\r\n", "A1 OK\r\nA1 OK\r\n", false},
		{"A1 NOOP\r\nA1 NOOP\r\n", "A1 OK\r\nA1 OK\r\n", true},
		// Non-synchronizing literal: its octets are never a command.
		{"A1 NOOP x{11+}\r\nA2 LOGOUT\r\n\r\n", "A1 BAD x\r\n", true},
		{"A1 NOOP x{11+}\r\nA2 LOGOUT\r\n\r\n", "A1 BAD x\r\n* BYE\r\nA2 OK\r\n", false},
		// Synchronizing literal: accepted or refused, both framings.
		{"A1 NOOP x{11}\r\nA2 LOGOUT\r\n\r\n", "A1 BAD x\r\nA2 OK\r\n", true},
		{"A1 LOGIN {3}\r\nA2  x\r\n", "+ go\r\nA1 NO x\r\n", true},
		// A SASL response is a line: a marker ending it announces nothing.
		{"A1 AUTHENTICATE PLAIN\r\nxx{11+}\r\nA2 LOGOUT\r\n", "+ \r\nA1 BAD x\r\n* BYE\r\nA2 OK\r\n", true},
		{"A1 IDLE\r\nDONE {11+}\r\nA2 LOGOUT\r\n", "+ idling\r\nA1 OK\r\n* BYE\r\nA2 OK\r\n", true},
		{"A1 NOOP\r\nDONE {11+}\r\nA2 LOGOUT\r\n", "A1 OK\r\n* BYE\r\nA2 OK\r\n", false},
		// Literals in the output are skipped.
		{"A1 FETCH 1 BODY[]\r\n", "* 1 FETCH (BODY[] {7}\r\nA9 OK\r\n)\r\nA1 OK\r\n", true},
		{"A1 FETCH 1 BODY[]\r\n", "* 1 FETCH (BODY[] {2}\r\nA9 OK\r\n)\r\nA1 OK\r\n", false},
		{"A1 NOOP\r\n", "* OK a\rb\r\nA1 OK\r\n", false},
	}
	for _, tc := range tests {
		if err := checkAnswers([]byte(tc.in), []byte(tc.out)); (err == nil) != tc.ok {
			t.Errorf("in %q out %q: %v, want ok %v", tc.in, tc.out, err, tc.ok)
		}
	}
}
