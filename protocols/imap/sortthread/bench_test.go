package sortthread

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user and system CPU time so far. On a shared
// machine ns/op is wall time and grows with everyone else's load; the
// CPU time per operation (cpu-ns/op) does not.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bench runs op b.N times and reports its CPU time per operation too.
func bench(b *testing.B, op func()) {
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime(b)
	n := 0
	for b.Loop() {
		op()
		n++
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(n), "cpu-ns/op")
}

// synthetic builds n messages shaped like a mailing-list folder: threads
// of up to 20 replies with trimmed References, list tags, "Re:" and
// "Fwd:" prefixes, a few encoded-word subjects, dates in several zones.
func synthetic(n int) []Message {
	msgs := make([]Message, n)
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	zones := []string{"+0000", "-0500", "+0100", "+0530", "-0800"}
	for i := range msgs {
		thread := i / 20
		pos := i % 20
		m := &msgs[i]
		m.Seq, m.UID = uint32(i+1), uint32(i+1)
		m.InternalDate = base.Add(time.Duration(i) * time.Minute)
		m.Size = int64(1000 + i%5000)
		d := base.Add(time.Duration(i)*time.Minute - time.Duration(i%7)*time.Hour)
		m.Date = d.Format("Mon, 02 Jan 2006 15:04:05 ") + zones[i%len(zones)]
		subj := fmt.Sprintf("[list-%d] Topic number %d about things", thread%10, thread)
		switch {
		case thread%50 == 0:
			subj = fmt.Sprintf("=?UTF-8?Q?Caf=C3=A9_topic_%d?=", thread)
		case pos > 0 && pos%5 == 0:
			subj = "Fwd: " + subj
		case pos > 0:
			subj = "Re: " + subj
		}
		m.Subject = subj
		m.From = fmt.Sprintf("User %d <user%d@example.org>", i%300, i%300)
		m.To = "list@example.org"
		m.MessageID = fmt.Sprintf("<t%d.p%d@example.org>", thread, pos)
		if pos > 0 {
			var refs string
			for p := max(0, pos-8); p < pos; p++ {
				refs += fmt.Sprintf(" <t%d.p%d@example.org>", thread, p)
			}
			m.References = refs
			m.InReplyTo = fmt.Sprintf("<t%d.p%d@example.org>", thread, pos-1)
		}
	}
	return msgs
}

func BenchmarkSortDate100k(b *testing.B) {
	msgs := synthetic(100000)
	bench(b, func() { Sort(msgs, []Criterion{{Key: Date}}) })
}

func BenchmarkSortSubject100k(b *testing.B) {
	msgs := synthetic(100000)
	bench(b, func() { Sort(msgs, []Criterion{{Key: Subject}}) })
}

func BenchmarkThreadReferences100k(b *testing.B) {
	msgs := synthetic(100000)
	bench(b, func() { AppendThreads(nil, Thread(msgs, References), false) })
}

func BenchmarkThreadOrderedSubject100k(b *testing.B) {
	msgs := synthetic(100000)
	bench(b, func() { AppendThreads(nil, Thread(msgs, OrderedSubject), false) })
}
