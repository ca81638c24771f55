package queue

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// TestConcurrencyPerDomainCap: many messages to several domains, some to
// several domains at once; every recipient arrives exactly once and the
// queue never holds more connections to one destination at a time than
// PerDomain. Connections are counted where the cap applies, on the
// dialling side (Router.Peak): a sink counting its own sessions sees a
// finished session until its goroutine has run the teardown after the 221
// reply, which a busy machine delays past the queue's next connection.
func TestConcurrencyPerDomainCap(t *testing.T) {
	const (
		domains   = 4
		messages  = 120
		perDomain = 2
	)
	d := queuetest.NewDNS(t)
	r := &queuetest.Router{}
	sinks := make([]*queuetest.Sink, domains)
	for i := range sinks {
		dom := fmt.Sprintf("d%d.test", i)
		ip := fmt.Sprintf("192.0.2.%d", i+1)
		d.MX(dom, 10, "mx."+dom)
		d.A("mx."+dom, ip)
		// Holding each DATA reply makes sessions overlap, so the cap is
		// actually exercised.
		sinks[i] = queuetest.NewSink(t, queuetest.SinkOptions{Hold: 2 * time.Millisecond})
		r.Route(ip+":25", sinks[i].Addr)
	}
	cfg, _ := testConfig(t, d)
	cfg.Dial = r.Dial
	cfg.Workers = 6
	cfg.PerDomain = perDomain
	q := startQueue(t, cfg)

	want := make([]map[string]bool, domains)
	for i := range want {
		want[i] = make(map[string]bool)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := g; m < messages; m += 4 {
				rcpts := []string{fmt.Sprintf("u%d@d%d.test", m, m%domains)}
				if m%3 == 0 { // a second domain in the same message
					rcpts = append(rcpts, fmt.Sprintf("v%d@d%d.test", m, (m+1)%domains))
				}
				if _, err := q.EnqueueBytes(context.Background(), "alice@local.test", rcpts, testMessage(fmt.Sprintf("m%d", m), 500)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, rc := range rcpts {
					var dom int
					fmt.Sscanf(rc[len(rc)-len("0.test"):], "%d", &dom)
					want[dom][rc] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	waitEmpty(t, q)
	for i, s := range sinks {
		got := make(map[string]bool)
		for _, m := range s.Messages() {
			for _, rc := range m.Rcpts {
				if got[rc] {
					t.Errorf("d%d: %s delivered twice", i, rc)
				}
				got[rc] = true
			}
		}
		if len(got) != len(want[i]) {
			t.Errorf("d%d: %d recipients delivered, want %d", i, len(got), len(want[i]))
		}
		ip := fmt.Sprintf("192.0.2.%d:25", i+1)
		if p := r.Peak(ip); p > perDomain {
			t.Errorf("d%d: %d concurrent connections, cap is %d", i, p, perDomain)
		}
		t.Logf("d%d: %d sessions, peak concurrency %d", i, s.Sessions(), r.Peak(ip))
	}
}
