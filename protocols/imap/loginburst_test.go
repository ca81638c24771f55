package imap

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/heapwatch"
	"github.com/vmaild/vmaild/internal/testusers"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
)

// sqliteUsers is a real directory as `vmaild serve` builds it, SQLite
// behind the cache, with testUser and six more accounts whose passwords
// are hashed in the default scheme (Argon2id, 19 MiB).
func sqliteUsers(t *testing.T) (*userdb.Users, *userdb.Cache) {
	t.Helper()
	db := testusers.SQLite(t)
	if err := db.AddDomain(context.Background(), userdb.Domain{Name: "example.org", Active: true}); err != nil {
		t.Fatal(err)
	}
	accounts := map[string]string{testUser: testPass}
	for i := 1; i <= 6; i++ {
		accounts[fmt.Sprintf("u%d@example.org", i)] = fmt.Sprintf("pw-%d", i)
	}
	testusers.AddAccounts(t, db, password.DefaultScheme, accounts)
	cache := userdb.NewCache(db, db, userdb.CacheConfig{})
	return &userdb.Users{Accounts: cache.Accounts(), Domains: cache.Domains()}, cache
}

// TestLoginBurst: 200 IMAP clients send LOGIN with a wrong password for
// Argon2id accounts at once, through the default login service. The
// logins beyond what it may verify or queue are answered NO [UNAVAILABLE]
// (try later), the others NO [AUTHENTICATIONFAILED]; the heap stays under
// the bound protocols/login's TestBurstOfWrongPasswords states and
// justifies (2·B + 4·N·M + 32 MiB); and the account owner, who logged in
// before from the same client network, logs in meanwhile.
func TestLoginBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes Argon2id passwords for 200 logins")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	users, cache := sqliteUsers(t)
	logins, err := login.New(login.Config{DummyScheme: password.DefaultScheme, Canonical: users.LoginAddress})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(s *Server) { s.Directory = users; s.Logins = logins })
	owner := e.dial(t, nil)
	if err := owner.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("owner's earlier login: %v", err)
	}
	owner.Logout().Wait()
	cache.Flush() // the owner's login during the burst must verify too

	runtime.GC()
	baseline := heapwatch.Now()
	watch := heapwatch.Start()
	const clients = 200
	var failed, unavailable atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			reply, err := rawLogin(e.addr, fmt.Sprintf("u%d@example.org", 1+i%6), fmt.Sprintf("wrong-%d", i), start)
			switch {
			case err != nil:
				t.Errorf("client %d: %v", i, err)
			case strings.HasPrefix(reply, "a NO [UNAVAILABLE]"):
				unavailable.Add(1)
			case strings.HasPrefix(reply, "a NO [AUTHENTICATIONFAILED]"):
				failed.Add(1)
			default:
				t.Errorf("client %d: %q", i, reply)
			}
		})
	}
	close(start)
	deadline := time.Now().Add(time.Minute)
	for st := logins.Stats(); st.Refused == 0 || st.Waiting == 0; st = logins.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("the burst never filled the queue: %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
	begin := time.Now()
	owner = e.dial(t, nil)
	if err := owner.Login(testUser, testPass).Wait(); err != nil {
		t.Errorf("owner during the burst: %v", err)
	}
	t.Logf("owner logged in during the burst in %v", time.Since(begin).Round(time.Millisecond))
	wg.Wait()
	peak := watch.Stop()

	n, waiting, perNetwork := logins.Limits()
	const m = 19 << 20 // the default Argon2id's m=19456 KiB
	bound := 2*baseline + 4*uint64(n)*m + 32<<20
	st := logins.Stats()
	t.Logf("%d NO [AUTHENTICATIONFAILED], %d NO [UNAVAILABLE]; slots %d, queue %d (%d per network); login stats %+v",
		failed.Load(), unavailable.Load(), n, waiting, perNetwork, st)
	t.Logf("heap: baseline %.1f MiB, peak %.1f MiB, bound %.1f MiB", float64(baseline)/(1<<20), float64(peak)/(1<<20), float64(bound)/(1<<20))
	if peak > bound {
		t.Errorf("peak heap %.1f MiB over the bound %.1f MiB", float64(peak)/(1<<20), float64(bound)/(1<<20))
	}
	if unavailable.Load() == 0 {
		t.Error("200 logins at once were all verified: no bound")
	}
	if st.PeakVerifying > n {
		t.Errorf("%d verifications at once, bound %d", st.PeakVerifying, n)
	}
}

// rawLogin connects, waits for start, sends LOGIN and returns the tagged
// reply.
func rawLogin(addr, user, pass string, start <-chan struct{}) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		return "", fmt.Errorf("greeting: %w", err)
	}
	<-start
	if _, err := fmt.Fprintf(c, "a LOGIN %s %s\r\n", user, pass); err != nil {
		return "", err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(line, "a ") {
			return strings.TrimRight(line, "\r\n"), nil
		}
	}
}
