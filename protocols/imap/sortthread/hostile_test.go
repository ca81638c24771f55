package sortthread

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestHostile feeds folders built to hurt: each must be sorted and
// threaded, every message must come out exactly once, and the work must
// stay bounded. The time bound is generous (a loaded 2-core machine, the
// race detector); the memory bound is relative to the input.
func TestHostile(t *testing.T) {
	if testing.Short() {
		t.Skip("hostile folders take seconds")
	}
	ids := func(prefix string, from, to int) string {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, " <%s%d@h>", prefix, i)
		}
		return b.String()
	}
	for _, tc := range []struct {
		name string
		make func() []Message
	}{
		{"huge References", func() []Message {
			msgs := []Message{{MessageID: "<big@h>", References: ids("r", 0, 50000)}}
			for i := 0; i < 1000; i++ {
				msgs = append(msgs, Message{MessageID: fmt.Sprintf("<reply%d@h>", i), References: "<r49999@h> <big@h>"})
			}
			return msgs
		}},
		{"reply chain 10k deep", func() []Message {
			var msgs []Message
			for i := 0; i < 10000; i++ {
				m := Message{MessageID: fmt.Sprintf("<c%d@h>", i), Subject: "Re: chain"}
				if i > 0 {
					m.References = ids("c", max(0, i-20), i)
				}
				msgs = append(msgs, m)
			}
			return msgs
		}},
		{"reply chain 10k deep, newest first", func() []Message {
			var msgs []Message
			for i := 9999; i >= 0; i-- {
				m := Message{MessageID: fmt.Sprintf("<c%d@h>", i)}
				if i > 0 {
					m.InReplyTo = fmt.Sprintf("<c%d@h>", i-1)
				}
				msgs = append(msgs, m)
			}
			return msgs
		}},
		{"loops against a deep chain", func() []Message {
			var msgs []Message
			for i := 0; i < 5000; i++ {
				m := Message{MessageID: fmt.Sprintf("<c%d@h>", i)}
				if i > 0 {
					m.InReplyTo = fmt.Sprintf("<c%d@h>", i-1)
				}
				msgs = append(msgs, m)
			}
			for i := 0; i < 5000; i++ {
				msgs = append(msgs, Message{References: "<c4999@h> <c0@h>"})
			}
			return msgs
		}},
		{"10k duplicate Message-IDs", func() []Message {
			var msgs []Message
			for i := 0; i < 10000; i++ {
				msgs = append(msgs, Message{MessageID: "<same@h>", References: "<same@h>", Subject: "same"})
			}
			return msgs
		}},
		{"malformed everything", func() []Message {
			var msgs []Message
			junk := []string{
				strings.Repeat("(", 100000),
				strings.Repeat("<(", 50000),
				strings.Repeat("\"<", 50000),
				strings.Repeat("[a]", 30000),
				strings.Repeat("Re: ", 30000) + "x",
				strings.Repeat("[fwd: ", 20000) + strings.Repeat("]", 20000),
				strings.Repeat("x (fwd)", 20000),
				strings.Repeat("=?", 50000),
				strings.Repeat("=?utf-8?q?a?= ", 20000),
				strings.Repeat("a@", 50000),
				strings.Repeat("\xff\xfe", 50000),
			}
			for i, j := range junk {
				msgs = append(msgs, Message{Date: j, Subject: j, From: j, To: j, Cc: j, MessageID: j, References: j, InReplyTo: j})
				msgs = append(msgs, Message{Subject: j, MessageID: fmt.Sprintf("<m%d@h>", i), References: j})
			}
			return msgs
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := tc.make()
			input := 0
			for i := range msgs {
				m := &msgs[i]
				m.Seq, m.UID = uint32(i+1), uint32(i+1)
				input += len(m.Date) + len(m.Subject) + len(m.From) + len(m.To) + len(m.Cc) + len(m.MessageID) + len(m.References) + len(m.InReplyTo)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			for k := Arrival; k <= DisplayTo; k++ {
				if got := len(Sort(msgs, []Criterion{{Key: k}})); got != len(msgs) {
					t.Fatalf("SORT %v: %d of %d messages", k, got, len(msgs))
				}
			}
			for _, alg := range []Algorithm{OrderedSubject, References} {
				checkOnce(t, msgs, Thread(msgs, alg))
				_ = AppendThreads(nil, Thread(msgs, alg), false)
			}
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			if elapsed > 60*time.Second {
				t.Errorf("took %v", elapsed)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(256<<20+200*input) {
				t.Errorf("allocated %d MiB for %d KiB of headers", alloc>>20, input>>10)
			}
			t.Logf("%d messages, %d KiB of headers: %v", len(msgs), input>>10, elapsed)
		})
	}
}

// checkOnce fails unless every message is in the threads exactly once.
func checkOnce(t *testing.T, msgs []Message, threads []*Node) {
	t.Helper()
	seen := make(map[uint32]int, len(msgs))
	stack := append([]*Node(nil), threads...)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.Msg != nil {
			seen[n.Msg.Seq]++
		} else if len(n.Children) < 2 {
			t.Fatalf("a dummy with %d children", len(n.Children))
		}
		stack = append(stack, n.Children...)
	}
	for i := range msgs {
		if c := seen[msgs[i].Seq]; c != 1 {
			t.Fatalf("message %d appears %d times", msgs[i].Seq, c)
		}
	}
}
