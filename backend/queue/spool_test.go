package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// TestRestart: what was accepted is delivered by the next Queue on the
// same spool, with its attempt history.
func TestRestart(t *testing.T) {
	t.Run("never started", func(t *testing.T) {
		d := queuetest.NewDNS(t)
		d.A("r.test", "127.0.0.1")
		sink := queuetest.NewSink(t, queuetest.SinkOptions{})
		cfg, _ := testConfig(t, d)
		cfg.Port = sink.Port
		q1, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		msg := testMessage("restart", 5000)
		if _, err := q1.Enqueue(context.Background(), "alice@local.test", []string{"bob@r.test"}, bytes.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		if _, err := New(cfg); !errors.Is(err, ErrLocked) {
			t.Errorf("second queue on a live spool: err = %v, want ErrLocked", err)
		}
		if err := q1.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := q1.EnqueueBytes(context.Background(), "alice@local.test", []string{"bob@r.test"}, msg); !errors.Is(err, ErrClosed) || !Temporary(err) {
			t.Errorf("Enqueue after Shutdown: err = %v, want temporary ErrClosed", err)
		}
		q2 := startQueue(t, cfg)
		got := sink.Wait(t, 1)
		waitEmpty(t, q2)
		if !bytes.Equal(got[0].Data, msg) {
			t.Errorf("message changed across restart")
		}
	})
	t.Run("deferred then restarted", func(t *testing.T) {
		d := queuetest.NewDNS(t)
		d.A("r.test", "127.0.0.1")
		var n atomic.Int32
		sink := queuetest.NewSink(t, queuetest.SinkOptions{Data: func(queuetest.Message) error {
			if n.Add(1) == 1 {
				return err451
			}
			return nil
		}})
		cfg, _ := testConfig(t, d)
		cfg.Port = sink.Port
		cfg.Retry = []time.Duration{time.Hour}
		q1, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		q1.Start(context.Background())
		id, err := q1.EnqueueBytes(context.Background(), "alice@local.test", []string{"bob@r.test", "carol@r.test"}, testMessage("deferred", 100))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the first attempt", func() bool {
			it, err := q1.Get(context.Background(), id)
			return err == nil && it.Recipients[1].Attempts == 1
		})
		if err := q1.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		q2 := startQueue(t, cfg)
		it, err := q2.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range it.Recipients {
			if r.State != Pending || r.Attempts != 1 || !strings.HasPrefix(r.LastReply, "451 4.3.0") || !r.NextAttempt.After(time.Now()) {
				t.Errorf("recipient after restart = %+v", r)
			}
		}
		if err := q2.Flush(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		sink.Wait(t, 1)
		waitEmpty(t, q2)
	})
}

// rawItem builds a .msg file by hand, to write broken ones.
func rawItem(msg []byte, env any) []byte {
	js, _ := json.Marshal(env)
	out := append([]byte(nil), msg...)
	out = append(out, js...)
	out = binary.BigEndian.AppendUint64(out, uint64(len(js)))
	return append(out, footerMagic...)
}

// TestCorruptSpool: unreadable items go to corrupt/ with a log line, the
// good ones load and are delivered, and nothing crashes.
func TestCorruptSpool(t *testing.T) {
	d := queuetest.NewDNS(t)
	d.A("c.test", "127.0.0.1")
	sink := queuetest.NewSink(t, queuetest.SinkOptions{})
	cfg, lb := testConfig(t, d)
	cfg.Port = sink.Port
	dir := cfg.Dir

	// Two good items, written by a queue.
	q0, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var good []string
	for i := 0; i < 2; i++ {
		id, err := q0.EnqueueBytes(context.Background(), "alice@local.test", []string{"bob@c.test"}, testMessage("good", 300))
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, id)
	}
	q0.Shutdown(context.Background())
	valid, err := os.ReadFile(filepath.Join(dir, good[0]+msgSuffix))
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now().UTC()
	idOf := func(n int) string { return newID(now.Add(time.Duration(n))) }
	env := func(id string, rcpts ...string) envelope {
		return envelope{Version: envVersion, ID: id, From: "alice@local.test", Rcpts: rcpts, Created: now, Size: 5}
	}
	type file struct{ name, data string }
	var corrupt []string
	cases := []struct {
		name  string
		files func(id string) []file
	}{
		{"empty", func(id string) []file { return []file{{id + msgSuffix, ""}} }},
		{"garbage", func(id string) []file { return []file{{id + msgSuffix, "hello, this is not a queue file at all"}} }},
		{"truncated", func(id string) []file {
			// Same content under its own name, cut short.
			v := rawItem([]byte("hello"), env(id, "bob@c.test"))
			return []file{{id + msgSuffix, string(v[:len(v)-3])}}
		}},
		{"footer length too large", func(id string) []file {
			v := rawItem([]byte("hello"), env(id, "bob@c.test"))
			binary.BigEndian.PutUint64(v[len(v)-footerLen:], 1<<40)
			return []file{{id + msgSuffix, string(v)}}
		}},
		{"envelope not JSON", func(id string) []file {
			v := []byte("hello{not json")
			v = binary.BigEndian.AppendUint64(v, 9)
			return []file{{id + msgSuffix, string(append(v, footerMagic...))}}
		}},
		{"size mismatch", func(id string) []file {
			return []file{{id + msgSuffix, string(rawItem([]byte("hello, more than five"), env(id, "bob@c.test")))}}
		}},
		{"id mismatch", func(id string) []file { return []file{{id + msgSuffix, string(valid)}} }},
		{"bad recipient", func(id string) []file {
			return []file{{id + msgSuffix, string(rawItem([]byte("hello"), env(id, "bob@c.test\r\nDATA")))}}
		}},
		{"no recipients", func(id string) []file { return []file{{id + msgSuffix, string(rawItem([]byte("hello"), env(id)))}} }},
		{"unknown version", func(id string) []file {
			e := env(id, "bob@c.test")
			e.Version = 99
			return []file{{id + msgSuffix, string(rawItem([]byte("hello"), e))}}
		}},
		{"state not JSON", func(id string) []file {
			return []file{{id + msgSuffix, string(rawItem([]byte("hello"), env(id, "bob@c.test")))}, {id + stateSuffix, "{\"v\":1,"}}
		}},
		{"state for other recipients", func(id string) []file {
			st, _ := json.Marshal(stateFile{Version: stateVersion, Recipients: []Recipient{{Addr: "eve@c.test", State: Pending}}})
			return []file{{id + msgSuffix, string(rawItem([]byte("hello"), env(id, "bob@c.test")))}, {id + stateSuffix, string(st)}}
		}},
		{"state with unknown state", func(id string) []file {
			st, _ := json.Marshal(stateFile{Version: stateVersion, Recipients: []Recipient{{Addr: "bob@c.test", State: "lost"}}})
			return []file{{id + msgSuffix, string(rawItem([]byte("hello"), env(id, "bob@c.test")))}, {id + stateSuffix, string(st)}}
		}},
	}
	for i, tc := range cases {
		id := idOf(i + 1)
		for _, f := range tc.files(id) {
			if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.data), 0o600); err != nil {
				t.Fatal(err)
			}
			corrupt = append(corrupt, f.name)
		}
	}
	// Leftovers that are not corruption: an unacknowledged write and the
	// state of an item that finished.
	os.WriteFile(filepath.Join(dir, tmpDir, idOf(100)+msgSuffix), []byte("half a mess"), 0o600)
	os.WriteFile(filepath.Join(dir, idOf(101)+stateSuffix), []byte(`{"v":1,"recipients":[]}`), 0o600)

	q := startQueue(t, cfg)
	items, err := q.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	// The queue may already have delivered a good item when List runs:
	// what it lists must be good, and the sink must get both (below).
	for _, id := range ids {
		if !slices.Contains(good, id) {
			t.Errorf("loaded %s, want only %v", id, good)
		}
	}
	var quarantined []string
	entries, _ := os.ReadDir(filepath.Join(dir, corruptDir))
	for _, e := range entries {
		quarantined = append(quarantined, e.Name())
	}
	slices.Sort(corrupt)
	if !slices.Equal(quarantined, corrupt) {
		t.Errorf("corrupt/ holds %v\nwant %v", quarantined, corrupt)
	}
	if n := strings.Count(lb.String(), "quarantined corrupt spool file"); n != len(corrupt) {
		t.Errorf("%d quarantine log lines, want %d", n, len(corrupt))
	}
	for _, leftover := range []string{filepath.Join(tmpDir, idOf(100)+msgSuffix), idOf(101) + stateSuffix} {
		if _, err := os.Stat(filepath.Join(dir, leftover)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s not cleaned up", leftover)
		}
	}
	sink.Wait(t, 2)
	waitEmpty(t, q)
}

// TestAdmin: the calls behind `vmaild queue list|show|flush|delete`.
func TestAdmin(t *testing.T) {
	d := queuetest.NewDNS(t)
	cfg, _ := testConfig(t, d)
	q, err := New(cfg) // not started: nothing moves under our feet
	if err != nil {
		t.Fatal(err)
	}
	defer q.Shutdown(context.Background())
	ctx := context.Background()
	msg := testMessage("admin", 1000)
	id1, err := q.EnqueueReaderAt(ctx, "alice@local.test", []string{"bob@x.test", "carol@y.test", "bob@x.test"}, bytes.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	id2, err := q.EnqueueBytes(ctx, "", []string{"dave@z.test"}, msg)
	if err != nil {
		t.Fatal(err)
	}

	items, err := q.List(ctx)
	if err != nil || len(items) != 2 || items[0].ID != id1 || items[1].ID != id2 {
		t.Fatalf("List = %+v, %v", items, err)
	}
	it := items[0]
	if it.From != "alice@local.test" || it.Size != int64(len(msg)) || it.Created.IsZero() || it.NextAttempt.IsZero() {
		t.Errorf("item = %+v", it)
	}
	if len(it.Recipients) != 2 || it.Recipients[0].Addr != "bob@x.test" || it.Recipients[1].State != Pending {
		t.Errorf("recipients = %+v (duplicates must collapse)", it.Recipients)
	}
	if st := q.Stats(); st.Items != 2 || st.Pending != 3 {
		t.Errorf("stats = %+v", st)
	}

	rc, err := q.Message(ctx, id1)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(body, msg) {
		t.Errorf("Message returned %d bytes, want the %d queued", len(body), len(msg))
	}

	for _, bad := range []string{"", "nope", "../../etc/passwd", strings.Repeat("0", 32)} {
		if _, err := q.Get(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) err = %v", bad, err)
		}
		if err := q.Delete(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete(%q) err = %v", bad, err)
		}
	}
	if err := q.Flush(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Flush(unknown) err = %v", err)
	}
	if err := q.Flush(ctx, ""); err != nil {
		t.Errorf("Flush(all) err = %v", err)
	}

	inspected, err := Inspect(ctx, cfg.Dir)
	if err != nil || len(inspected) != 2 || inspected[0].ID != id1 || len(inspected[0].Recipients) != 2 {
		t.Errorf("Inspect = %+v, %v", inspected, err)
	}
	os.WriteFile(filepath.Join(cfg.Dir, newID(time.Now())+msgSuffix), []byte("junk"), 0o600)
	if inspected, err := Inspect(ctx, cfg.Dir); err == nil || len(inspected) != 2 {
		t.Errorf("Inspect with a corrupt file = %d items, err %v; want 2 and an error", len(inspected), err)
	}

	if err := q.Delete(ctx, id1); err != nil {
		t.Fatal(err)
	}
	if q.Len() != 1 {
		t.Errorf("Len after Delete = %d", q.Len())
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, id1+msgSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("spool file survives Delete")
	}
	if err := q.Delete(ctx, id1); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete err = %v", err)
	}
}

// TestExpiry: a recipient that keeps getting 4xx fails after MaxAge, and
// the bounce says so.
func TestExpiry(t *testing.T) {
	d := queuetest.NewDNS(t)
	d.A("slow.test", "127.0.0.1")
	sink := queuetest.NewSink(t, queuetest.SinkOptions{Data: func(queuetest.Message) error { return err451 }})
	cfg, _ := testConfig(t, d)
	cfg.Port = sink.Port
	// Long enough that the DSN itself, spooled with an fsync on a loaded
	// machine, is not expired before its own delivery.
	cfg.MaxAge = time.Second
	var local localSink
	local.install(&cfg, "local.test")
	q := startQueue(t, cfg)
	if _, err := q.EnqueueBytes(context.Background(), "alice@local.test", []string{"bob@slow.test"}, testMessage("expire", 10)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the DSN", func() bool { return len(local.messages()) == 1 })
	waitEmpty(t, q)
	dsn := parseDSN(t, local.messages()[0].Data)
	r := dsn.perRcpt[0]
	// Two ways to expire, both right: an attempt whose next retry would
	// fall past MaxAge gives up with the last reply; an attempt that only
	// starts after MaxAge (a loaded machine runs it late) is not made.
	gaveUp := r.Get("Status") == "4.3.0" && r.Get("Diagnostic-Code") == "smtp; 451 4.3.0 try again later" &&
		strings.Contains(dsn.human, "gave up after")
	expired := r.Get("Status") == "4.4.7" && strings.Contains(dsn.human, "expired in queue")
	if r.Get("Action") != "failed" || !gaveUp && !expired {
		t.Errorf("per-recipient fields = %v\nhuman part:\n%s", r, dsn.human)
	}
}

// TestShutdownAbortsInFlight: past Shutdown's deadline the transaction is
// cut, the recipient stays pending without a counted attempt, and the
// next queue delivers it.
func TestShutdownAbortsInFlight(t *testing.T) {
	d := queuetest.NewDNS(t)
	d.A("hold.test", "127.0.0.1")
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var n atomic.Int32
	sink := queuetest.NewSink(t, queuetest.SinkOptions{Data: func(queuetest.Message) error {
		if n.Add(1) == 1 {
			entered <- struct{}{}
			<-release
			return err451
		}
		return nil
	}})
	t.Cleanup(func() { close(release) }) // before the sink stops
	cfg, _ := testConfig(t, d)
	cfg.Port = sink.Port
	q1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	q1.Start(context.Background())
	id, err := q1.EnqueueBytes(context.Background(), "alice@local.test", []string{"bob@hold.test"}, testMessage("hold", 10))
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace at all
	if err := q1.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown err = %v, want the deadline's", err)
	}
	q2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q2.Shutdown(context.Background()) })
	it, err := q2.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if r := it.Recipients[0]; r.State != Pending || r.Attempts != 0 {
		t.Errorf("recipient after aborted attempt = %+v, want pending, no attempt counted", r)
	}
	q2.Start(context.Background())
	sink.Wait(t, 1)
	waitEmpty(t, q2)
}
