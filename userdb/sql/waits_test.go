package sqldir

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	gosql "database/sql"

	"github.com/go-sql-driver/mysql"

	"github.com/vmaild/vmaild/internal/loadburst"
	"github.com/vmaild/vmaild/internal/testsrv"
	"github.com/vmaild/vmaild/userdb"
)

// The bound the issue asks for: every operation answers within
// sql.timeout plus one second, however many run at once and however the
// database fails.
const (
	waitTimeout = 2 * time.Second
	waitSlack   = time.Second
	burst       = 100
)

// burstOp is one kind of directory call a mail server makes under load:
// the lookups of a login and of a RCPT, and the quota reservation of a
// delivery.
type burstOp struct {
	name string
	run  func(ctx context.Context, d *DB, i int) error
}

var burstOps = []burstOp{
	{"lookup account", func(ctx context.Context, d *DB, i int) error {
		_, err := d.LookupAccount(ctx, fmt.Sprintf("user%03d@example.com", i))
		return ignore(err, userdb.ErrNotFound)
	}},
	{"authenticate", func(ctx context.Context, d *DB, i int) error {
		_, err := d.Authenticate(ctx, fmt.Sprintf("user%03d@example.com", i), "pw")
		return ignore(err, userdb.ErrNotFound)
	}},
	{"lookup aliases", func(ctx context.Context, d *DB, i int) error {
		_, err := d.LookupAliases(ctx, fmt.Sprintf("list%03d@example.com", i))
		return err
	}},
	{"reserve usage", func(ctx context.Context, d *DB, i int) error {
		_, err := d.ReserveUsage(ctx, fmt.Sprintf("user%03d@example.com", i), 1, 1, userdb.Limit{})
		return err
	}},
}

// runBurst starts burst calls at the same moment, the kinds of burstOps
// in turn, each for its own address.
func runBurst(d *DB, only func(burstOp) bool) []loadburst.Result {
	var ops []burstOp
	var addrs []int
	var names []string
	for i := 0; i < burst; i++ {
		op := burstOps[i%len(burstOps)]
		if only != nil && !only(op) {
			continue
		}
		ops, addrs, names = append(ops, op), append(addrs, i), append(names, op.name)
	}
	return loadburst.Run(names, func(ctx context.Context, j int) error {
		return ops[j].run(ctx, d, addrs[j])
	})
}

// TestMariaDBWaitsBounded freezes mariadbd (SIGSTOP), kills it, and slows
// it beyond the timeout behind a relaying proxy, under 100 concurrent
// calls each: every one answers "try later" within sql.timeout + 1 s,
// more than the connection pool holds notwithstanding, and the same *DB
// serves them all once the server is back.
func TestMariaDBWaitsBounded(t *testing.T) {
	m := testsrv.StartMariaDB(t)
	proxy := testsrv.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", m.Port))
	tests := []struct {
		name          string
		viaProxy      bool
		fail, restore func()
	}{
		{name: "frozen", fail: m.Pause, restore: m.Resume},
		{name: "refused", fail: m.Stop, restore: m.Start},
		{name: "slower than the timeout", viaProxy: true,
			fail: func() { proxy.SetDelay(waitTimeout + time.Second) }, restore: func() { proxy.SetDelay(0) }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := m.CreateDatabase(fmt.Sprintf("waits%d", i))
			if tt.viaProxy {
				cfg, err := mysql.ParseDSN(dsn)
				if err != nil {
					t.Fatal(err)
				}
				cfg.Addr = proxy.Addr
				dsn = cfg.FormatDSN()
			}
			d := openDB(t, Config{Driver: "mysql", DSN: dsn, Timeout: waitTimeout})
			seed(t, d)
			restore := loadburst.Outage(t, tt.fail, tt.restore)
			slowest := loadburst.Check(t, "call", runBurst(d, nil), waitTimeout+waitSlack, loadburst.TryLater)
			t.Logf("%d concurrent calls: slowest answer %v", burst, slowest.Round(time.Millisecond))
			restore()
			// Connections opened while the server hung finish or fail
			// first; once one call works again, all do.
			waitUntil(t, func() error { _, err := d.LookupAccount(context.Background(), "alice@example.com"); return err })
			// A restarted mariadbd on a loaded machine may still miss
			// a 2 s timeout for a burst of 100 cold connections: the
			// burst is tried a few times, and must come through whole.
			var failed []string
			for try := 0; try < 5; try++ {
				failed = failed[:0]
				for _, r := range runBurst(d, nil) {
					if r.Err != nil {
						failed = append(failed, fmt.Sprintf("%s: %v", r.Who, r.Err))
					}
				}
				if len(failed) == 0 {
					break
				}
			}
			for _, f := range failed {
				t.Errorf("after the server is back: %s", f)
			}
		})
	}
}

// waitUntil retries f until it succeeds, failing the test after a minute.
func waitUntil(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server back for a minute, still: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSQLiteWaitsBounded: another process holds SQLite's write lock (an
// admin's sqlite3 shell in a transaction, a backup): quota reservations
// wait for it no longer than sql.timeout and say "try later", and reads
// go on (WAL).
func TestSQLiteWaitsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmaild.db")
	d := openDB(t, Config{Driver: "sqlite", DSN: path, Timeout: waitTimeout})
	seed(t, d)
	other, err := gosql.Open("sqlite", path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx(t), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	writes := runBurst(d, func(op burstOp) bool { return op.name == "reserve usage" })
	slowest := loadburst.Check(t, "call", writes, waitTimeout+waitSlack, loadburst.TryLater)
	t.Logf("%d concurrent reservations against a held write lock: slowest answer %v", len(writes), slowest.Round(time.Millisecond))
	reads := runBurst(d, func(op burstOp) bool { return op.name != "reserve usage" })
	for _, r := range reads {
		if r.Err != nil {
			t.Errorf("%s while the write lock is held: %v", r.Who, r.Err)
		}
	}
	if _, err := conn.ExecContext(ctx(t), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	for _, r := range runBurst(d, nil) {
		if r.Err != nil {
			t.Errorf("%s after the lock is released: %v", r.Who, r.Err)
		}
	}
}
