package login

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/heapwatch"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
)

// argon2Memory reads m= (KiB) from an Argon2 hash.
func argon2Memory(t *testing.T, stored string) uint64 {
	t.Helper()
	m := regexp.MustCompile(`\$m=(\d+),`).FindStringSubmatch(stored)
	if m == nil {
		t.Fatalf("not an argon2 hash: %s", stored)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n << 10
}

const mib = 1 << 20

// TestBurstOfWrongPasswords: 200 logins with wrong passwords for Argon2id
// accounts arrive at once, from two client networks, against the default
// configuration. The heap stays under a stated bound, the logins beyond
// what the service may verify or queue get ErrBusy (a temporary failure),
// and the owners' correct logins succeed meanwhile: from the network an
// owner used before (trusted, served first) and from a fresh network
// (which finds room, since one network may hold only a share of the
// queue).
//
// The bound: each Argon2 verification allocates its m= memory (M, 19 MiB
// for the default scheme) at once and drops it when done, and at most N
// (max_concurrent_verifications, the CPU count by default) run at once,
// so the live heap is at most the baseline B plus N·M. Objects allocated
// while the garbage collector marks survive that cycle; a cycle is much
// shorter than a verification (Argon2 blocks hold no pointers, so there
// is little to mark), so at most one more round of N verifications
// allocates during it, and the heap a cycle leaves marked is at most
// B + 2·N·M. At GOGC=100 the heap may grow to twice that before the next
// cycle: 2·B + 4·N·M, plus 32 MiB for the 200 attempts' goroutines, SQLite
// and the test's bookkeeping. With N = 2 that is about 184 MiB; without
// the bound, 200 verifications at once would hold 200·M = 3.8 GiB.
func TestBurstOfWrongPasswords(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 200 Argon2id passwords")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	dir := newDirectory(t, password.DefaultScheme, 8)
	ctx := context.Background()
	s := newService(t, Config{DummyScheme: password.DefaultScheme, Canonical: dir.users.LoginAddress})
	n := s.cfg.MaxConcurrentVerifications
	stored, _ := password.Hash(password.DefaultScheme, "x")
	m := argon2Memory(t, stored)

	home := addr("2001:db8:0:1::5")
	if err := s.Attempt(ctx, home, "user0", "pw-user0@example.org", dir.check); err != nil {
		t.Fatalf("owner's earlier login: %v", err)
	}

	// The owner's verified password must not come from the cache: its
	// login during the burst has to queue for a verification like the rest.
	dir.cache.Flush()
	runtime.GC()
	baseline := heapwatch.Now()
	heap := heapwatch.Start()

	const attackers = 200
	networks := []string{"198.51.100.66", "2001:db8:bad:1::%x"}
	var failed, busy atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range attackers {
		client := networks[i%2]
		if i%2 == 1 {
			client = fmt.Sprintf(client, i)
		}
		wg.Go(func() {
			<-start
			login := fmt.Sprintf("user%d@example.org", 2+i%6)
			err := s.Attempt(ctx, netip.MustParseAddr(client), login, fmt.Sprintf("wrong-%d", i), dir.check)
			switch {
			case userdb.Temporary(err):
				// No queue place (ErrBusy), or the directory's whole-call
				// bound ran out while queued on a busy machine: both are
				// "try later", which is what the bound promises.
				busy.Add(1)
			case errors.Is(err, userdb.ErrBadCredentials):
				failed.Add(1)
			default:
				t.Errorf("attacker %d: %v", i, err)
			}
		})
	}
	close(start)
	waitFor(t, "the burst to fill the queue", func() bool { st := s.Stats(); return st.Refused > 0 && st.Waiting > 0 })

	// The owner's usual network has a queue of its own and must get in;
	// from a fresh network the owner competes with the attackers for
	// queue places, so a "try later" is acceptable there, a "no" never.
	owners := []struct {
		name    string
		client  netip.Addr
		login   string
		mayWait bool
	}{
		{"owner from its usual network", home, "user0", false},
		{"owner from a fresh network", addr("192.0.2.200"), "user1@example.org", true},
	}
	var owned sync.WaitGroup
	var loggedIn atomic.Int64
	for _, o := range owners {
		owned.Go(func() {
			begin := time.Now()
			err := s.Attempt(ctx, o.client, o.login, "pw-"+o.login[:5]+"@example.org", dir.check)
			switch {
			case err == nil:
				loggedIn.Add(1)
				t.Logf("%s logged in during the burst in %v", o.name, time.Since(begin).Round(time.Millisecond))
			case o.mayWait && userdb.Temporary(err):
				t.Logf("%s told to try later after %v: %v", o.name, time.Since(begin).Round(time.Millisecond), err)
			default:
				t.Errorf("%s during the burst: %v", o.name, err)
			}
		})
	}
	owned.Wait()
	wg.Wait()
	peak := heap.Stop()

	st := s.Stats()
	bound := 2*baseline + 4*uint64(n)*m + 32*mib
	t.Logf("max_concurrent_verifications %d, max_waiting %d (%d per network), argon2 m=%d MiB", n, s.cfg.MaxWaiting, s.cfg.MaxWaitingPerNetwork, m/mib)
	t.Logf("heap: baseline %.1f MiB, peak %.1f MiB, bound %.1f MiB (unbounded: %d MiB)",
		float64(baseline)/mib, float64(peak)/mib, float64(bound)/mib, attackers*m/mib)
	t.Logf("attackers: %d refused (wrong password), %d busy; stats %+v", failed.Load(), busy.Load(), st)
	if peak > bound {
		t.Errorf("peak heap %.1f MiB over the bound %.1f MiB", float64(peak)/mib, float64(bound)/mib)
	}
	if busy.Load() == 0 {
		t.Error("200 logins at once all got a verification: no bound")
	}
	if st.PeakVerifying > n {
		t.Errorf("%d verifications ran at once, bound %d", st.PeakVerifying, n)
	}
	if st.PeakWaiting > 2*s.cfg.MaxWaiting {
		t.Errorf("%d logins queued, bound %d (and as many trusted)", st.PeakWaiting, s.cfg.MaxWaiting)
	}
	if st.Verifications != uint64(failed.Load())+uint64(loggedIn.Load())+1 {
		t.Errorf("%d verifications for %d refusals and %d logins: one each expected", st.Verifications, failed.Load(), loggedIn.Load()+1)
	}
}
