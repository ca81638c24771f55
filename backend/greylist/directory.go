package greylist

import (
	"context"
	"time"

	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

// Directory keeps triplets in the SQL directory's greylist table, which
// every instance sharing the database sees.
type Directory struct{ DB *sqldir.DB }

// Get implements Store.
func (s Directory) Get(ctx context.Context, t Triplet) (Entry, bool, error) {
	e, found, err := s.DB.GreylistGet(ctx, t.Client, t.Sender, t.Recipient)
	return Entry{FirstSeen: e.FirstSeen, LastSeen: e.LastSeen, Passed: e.Passed}, found, err
}

// Put implements Store.
func (s Directory) Put(ctx context.Context, t Triplet, e Entry) error {
	return s.DB.GreylistPut(ctx, t.Client, t.Sender, t.Recipient, sqldir.GreylistEntry{FirstSeen: e.FirstSeen, LastSeen: e.LastSeen, Passed: e.Passed})
}

// Expire implements Store.
func (s Directory) Expire(ctx context.Context, before time.Time) (int64, error) {
	return s.DB.GreylistExpire(ctx, before)
}
