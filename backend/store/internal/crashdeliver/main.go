// Command crashdeliver drives backend/store in a loop so that the store's
// crash test can kill it with SIGKILL at arbitrary points. It prints one
// line per operation, only after the operation returned successfully:
//
//	D <file name>   a delivery (Store.Deliver) is on disk
//	A <uid>         an append got its UID
//	x <uid>         about to delete a message (it may be gone after a kill)
//	X <uid>         a message was deleted
//
// It is a test helper, not a tool: it runs until it is killed.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/vmaild/vmaild/backend/store"
)

func main() {
	root := flag.String("root", "", "store root")
	mode := flag.String("mode", "deliver", "deliver or index")
	addr := flag.String("addr", "crash@example.org", "account")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	ctx := context.Background()
	s := &store.Store{Root: *root}
	rng := rand.New(rand.NewPCG(*seed, 7))
	body := func(i int) []byte {
		// Sizes up to 256 KB, so a kill often lands inside a write.
		n := 200 + rng.IntN(256<<10)
		b := bytes.Repeat([]byte("x"), n)
		copy(b, fmt.Sprintf("Subject: %d\r\n\r\n", i))
		return b
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crashdeliver:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	if *mode == "deliver" {
		for i := 0; ; i++ {
			d, err := s.Deliver(ctx, store.Recipient{Address: *addr}, bytes.NewReader(body(i)))
			if err != nil {
				fail(err)
			}
			fmt.Println("D", d.Name)
		}
	}
	mb, err := s.OpenMailbox(ctx, store.Account{Address: *addr})
	if err != nil {
		fail(err)
	}
	f, err := mb.Select(ctx, "INBOX", false)
	if err != nil {
		fail(err)
	}
	for i := 0; ; i++ {
		switch op := rng.IntN(10); {
		case op < 4:
			r, err := f.Append(ctx, bytes.NewReader(body(i)), store.AppendOptions{Flags: []string{`\Seen`}})
			if err != nil {
				fail(err)
			}
			fmt.Println("A", r.UID)
		case op < 5:
			d, err := s.Deliver(ctx, store.Recipient{Address: *addr}, bytes.NewReader(body(i)))
			if err != nil {
				fail(err)
			}
			fmt.Println("D", d.Name)
		case op < 8:
			if _, err := f.Poll(ctx); err != nil {
				fail(err)
			}
			if n := f.Len(); n > 0 {
				uid := f.Messages()[rng.IntN(n)].UID
				flags := []string{`\Flagged`, "$Label1", `\Answered`}[rng.IntN(3):]
				ops := []store.FlagOp{store.FlagsAdd, store.FlagsRemove, store.FlagsReplace}
				if _, err := f.SetFlags(ctx, []uint32{uid}, ops[rng.IntN(3)], flags); err != nil {
					fail(err)
				}
			}
		default:
			if _, err := f.Poll(ctx); err != nil {
				fail(err)
			}
			if n := f.Len(); n > 0 {
				uid := f.Messages()[rng.IntN(n)].UID
				fmt.Println("x", uid)
				if _, err := f.Delete(ctx, []uint32{uid}); err != nil {
					fail(err)
				}
				fmt.Println("X", uid)
			}
		}
	}
}
