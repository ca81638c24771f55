package sqldir

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/vmaild/vmaild/userdb"
)

func testQuota(t *testing.T, e engine) {
	d := e.open(t, Queries{})
	c := ctx(t)
	const addr = "alice@example.com"
	// Each step runs in order on the same address; want is the usage after.
	steps := []struct {
		name   string
		do     func() (bool, error)
		wantOK bool
		want   userdb.Usage
	}{
		{"no row is zero", func() (bool, error) { return true, nil }, true, userdb.Usage{}},
		{"add", func() (bool, error) { return true, d.AddUsage(c, addr, 300, 3) }, true, userdb.Usage{Bytes: 300, Messages: 3}},
		{"add again", func() (bool, error) { return true, d.AddUsage(c, addr, 200, 1) }, true, userdb.Usage{Bytes: 500, Messages: 4}},
		{"reserve fits", func() (bool, error) { return d.ReserveUsage(c, addr, 400, 1, userdb.Limit{Bytes: 1000, Messages: 10}) }, true, userdb.Usage{Bytes: 900, Messages: 5}},
		{"reserve to exactly the limit", func() (bool, error) { return d.ReserveUsage(c, addr, 100, 1, userdb.Limit{Bytes: 1000}) }, true, userdb.Usage{Bytes: 1000, Messages: 6}},
		{"reserve over bytes", func() (bool, error) { return d.ReserveUsage(c, addr, 1, 0, userdb.Limit{Bytes: 1000}) }, false, userdb.Usage{Bytes: 1000, Messages: 6}},
		{"reserve over messages", func() (bool, error) { return d.ReserveUsage(c, addr, 0, 1, userdb.Limit{Messages: 6}) }, false, userdb.Usage{Bytes: 1000, Messages: 6}},
		{"reserve nothing within limit", func() (bool, error) { return d.ReserveUsage(c, addr, 0, 0, userdb.Limit{Bytes: 1000, Messages: 6}) }, true, userdb.Usage{Bytes: 1000, Messages: 6}},
		{"reserve unlimited", func() (bool, error) { return d.ReserveUsage(c, addr, 5000, 2, userdb.Limit{}) }, true, userdb.Usage{Bytes: 6000, Messages: 8}},
		{"release", func() (bool, error) { return true, d.AddUsage(c, addr, -5000, -2) }, true, userdb.Usage{Bytes: 1000, Messages: 6}},
		{"release too much clamps at zero", func() (bool, error) { return true, d.AddUsage(c, addr, -99999, -99) }, true, userdb.Usage{}},
		{"set", func() (bool, error) { return true, d.SetUsage(c, addr, userdb.Usage{Bytes: 77, Messages: 7}) }, true, userdb.Usage{Bytes: 77, Messages: 7}},
		{"negative reserve refused", func() (bool, error) {
			ok, err := d.ReserveUsage(c, addr, -1, 0, userdb.Limit{})
			return !ok && err != nil, nil
		}, true, userdb.Usage{Bytes: 77, Messages: 7}},
	}
	for _, s := range steps {
		ok, err := s.do()
		if err != nil || ok != s.wantOK {
			t.Fatalf("%s: ok=%v err=%v, want ok=%v", s.name, ok, err, s.wantOK)
		}
		u, err := d.Usage(c, addr)
		if err != nil || u != s.want {
			t.Fatalf("%s: usage %+v, %v; want %+v", s.name, u, err, s.want)
		}
	}

	// A first negative add on an address without a row starts at zero.
	if err := d.AddUsage(c, "new@example.com", -10, -1); err != nil {
		t.Fatal(err)
	}
	if u, _ := d.Usage(c, "new@example.com"); u != (userdb.Usage{}) {
		t.Fatalf("negative first add: %+v", u)
	}
	// A reservation on a fresh address creates the row.
	if ok, err := d.ReserveUsage(c, "fresh@example.com", 10, 1, userdb.Limit{Bytes: 10, Messages: 1}); !ok || err != nil {
		t.Fatalf("fresh reserve: %v %v", ok, err)
	}
	if ok, err := d.ReserveUsage(c, "fresh2@example.com", 11, 1, userdb.Limit{Bytes: 10}); ok || err != nil {
		t.Fatalf("fresh reserve over: %v %v", ok, err)
	}
}

// testQuotaConcurrent: 50 goroutines reserve and add on the same rows at
// once; the limit must hold exactly and no increment may be lost.
func testQuotaConcurrent(t *testing.T, e engine) {
	d := e.open(t, Queries{})
	c := ctx(t)
	const (
		workers  = 50
		attempts = 6
		size     = 10
		limit    = 1000 // fits exactly 100 of the 300 reservations
	)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		reserved int
		errs     []error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < attempts; i++ {
				ok, err := d.ReserveUsage(c, "full@example.com", size, 1, userdb.Limit{Bytes: limit})
				err2 := d.AddUsage(c, "counter@example.com", 3, 1)
				mu.Lock()
				if ok {
					reserved++
				}
				for _, e := range []error{err, err2} {
					if e != nil {
						errs = append(errs, e)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if reserved != limit/size {
		t.Errorf("%d reservations succeeded, want %d", reserved, limit/size)
	}
	if u, err := d.Usage(c, "full@example.com"); err != nil || u != (userdb.Usage{Bytes: limit, Messages: limit / size}) {
		t.Errorf("reserved usage %+v, %v", u, err)
	}
	if u, err := d.Usage(c, "counter@example.com"); err != nil || u != (userdb.Usage{Bytes: 3 * workers * attempts, Messages: workers * attempts}) {
		t.Errorf("added usage %+v, %v", u, err)
	}
}

// testQuotaBatch: a batch charges what fits and only that, in one
// transaction; batches over the same accounts in opposite orders, racing,
// neither deadlock nor break a limit.
func testQuotaBatch(t *testing.T, e engine) {
	d := e.open(t, Queries{})
	c := ctx(t)
	if err := d.SetUsage(c, "b@example.com", userdb.Usage{Bytes: 95, Messages: 1}); err != nil {
		t.Fatal(err)
	}
	rs := []userdb.Reservation{
		{Address: "a@example.com", Bytes: 10, Messages: 1, Limit: userdb.Limit{Bytes: 100}},
		{Address: "B@Example.com", Bytes: 10, Messages: 1, Limit: userdb.Limit{Bytes: 100}}, // over
		{Address: "c@example.com", Bytes: 10, Messages: 1},                                  // unlimited
		{Address: "d@example.com", Bytes: 10, Messages: 1, Limit: userdb.Limit{Messages: 1}},
	}
	ok, err := d.ReserveUsages(c, rs)
	if err != nil || !slices.Equal(ok, []bool{true, false, true, true}) {
		t.Fatalf("batch: %v, %v; want [true false true true]", ok, err)
	}
	for addr, want := range map[string]userdb.Usage{
		"a@example.com": {Bytes: 10, Messages: 1},
		"b@example.com": {Bytes: 95, Messages: 1},
		"c@example.com": {Bytes: 10, Messages: 1},
		"d@example.com": {Bytes: 10, Messages: 1},
	} {
		if u, err := d.Usage(c, addr); err != nil || u != want {
			t.Errorf("%s: usage %+v, %v; want %+v", addr, u, err, want)
		}
	}
	if _, err := d.ReserveUsages(c, []userdb.Reservation{{Address: "a@example.com", Bytes: 1}, {Address: "e@example.com", Bytes: -1}}); err == nil {
		t.Error("a batch with a negative reservation was accepted")
	}
	if u, _ := d.Usage(c, "a@example.com"); u.Bytes != 10 {
		t.Errorf("a refused batch charged a@: %+v", u)
	}

	// Racing batches: each charges 1 message to ten accounts limited to
	// 20 messages, half of them listing the accounts backwards.
	const workers, rounds, limit = 10, 4, 20
	var addrs []string
	for i := range 10 {
		addrs = append(addrs, fmt.Sprintf("race%d@example.com", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]userdb.Reservation, len(addrs))
			for i, a := range addrs {
				batch[i] = userdb.Reservation{Address: a, Bytes: 1, Messages: 1, Limit: userdb.Limit{Messages: limit}}
			}
			if w%2 == 1 {
				slices.Reverse(batch)
			}
			for range rounds {
				if _, err := d.ReserveUsages(c, batch); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, a := range addrs {
		if u, err := d.Usage(c, a); err != nil || u.Messages != limit {
			t.Errorf("%s: usage %+v, %v; want exactly the limit, %d messages", a, u, err, limit)
		}
	}
}
