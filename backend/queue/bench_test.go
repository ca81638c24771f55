package queue

import (
	"context"
	"testing"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// BenchmarkEnqueue10KB measures durable enqueues (two fsyncs each, the
// directory one shared between concurrent callers).
func BenchmarkEnqueue10KB(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		name := "serial"
		if parallel {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			d := queuetest.NewDNS(b)
			cfg, _ := testConfig(b, d)
			q, err := New(cfg) // not started: measure the spool alone
			if err != nil {
				b.Fatal(err)
			}
			defer q.Shutdown(context.Background())
			msg := testMessage("bench", 10<<10)
			rcpts := []string{"bob@bench.test"}
			ctx := context.Background()
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			if parallel {
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := q.EnqueueBytes(ctx, "alice@local.test", rcpts, msg); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				for i := 0; i < b.N; i++ {
					if _, err := q.EnqueueBytes(ctx, "alice@local.test", rcpts, msg); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkDeliveryLoopback measures delivery throughput to a sink on
// loopback: DNS lookup, SMTP transaction, removal from the spool.
func BenchmarkDeliveryLoopback(b *testing.B) {
	d := queuetest.NewDNS(b)
	d.A("bench.test", "127.0.0.1")
	sink := queuetest.NewSink(b, queuetest.SinkOptions{})
	cfg, _ := testConfig(b, d)
	cfg.Port = sink.Port
	cfg.PerDomain = 16
	q, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Shutdown(context.Background())
	msg := testMessage("bench", 10<<10)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if _, err := q.EnqueueBytes(ctx, "alice@local.test", []string{"bob@bench.test"}, msg); err != nil {
			b.Fatal(err)
		}
	}
	// Only delivery is timed: the queue starts with b.N messages waiting.
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	if err := q.Start(ctx); err != nil {
		b.Fatal(err)
	}
	sink.Wait(b, b.N)
	waitEmpty(b, q)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
