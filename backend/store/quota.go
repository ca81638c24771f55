package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"

	"github.com/vmaild/vmaild/userdb"
)

// Quota is charged before a message is stored and credited when one is
// removed. Reserve fails with an error wrapping ErrOverQuota when the
// message would not fit and changes nothing then; both must be atomic
// against concurrent callers (the usage lives in SQL, not in this process).
type Quota interface {
	Reserve(ctx context.Context, bytes, messages int64) error
	Release(ctx context.Context, bytes, messages int64) error
}

// UserdbQuota charges an account's usage in a userdb.QuotaStore against
// its limit. The MDA builds one per recipient from Directory.QuotaLimit.
type UserdbQuota struct {
	Store   userdb.QuotaStore
	Address string
	Limit   userdb.Limit
}

// Reserve adds usage when it fits the limit, in one atomic database step.
func (q UserdbQuota) Reserve(ctx context.Context, bytes, messages int64) error {
	ok, err := q.Store.ReserveUsage(ctx, q.Address, bytes, messages, q.Limit)
	return q.result(ok, err, bytes, messages)
}

// result is the error of one reservation, however it was made.
func (q UserdbQuota) result(ok bool, err error, bytes, messages int64) error {
	if err != nil {
		return fmt.Errorf("quota reserve %s: %w: %w", q.Address, ErrTemporary, err)
	}
	if !ok {
		return fmt.Errorf("quota %s: %d bytes, %d messages: %w", q.Address, bytes, messages, ErrOverQuota)
	}
	return nil
}

// Release subtracts usage.
func (q UserdbQuota) Release(ctx context.Context, bytes, messages int64) error {
	if err := q.Store.AddUsage(ctx, q.Address, -bytes, -messages); err != nil {
		return fmt.Errorf("quota release %s: %w: %w", q.Address, ErrTemporary, err)
	}
	return nil
}

func reserve(ctx context.Context, q Quota, bytes, messages int64) error {
	if q == nil || (bytes == 0 && messages == 0) {
		return nil
	}
	if err := q.Reserve(ctx, bytes, messages); err != nil {
		if errors.Is(err, ErrOverQuota) || errors.Is(err, ErrTemporary) {
			return err
		}
		return fmt.Errorf("quota: %w: %w", ErrTemporary, err)
	}
	return nil
}

// reserveAll reserves bytes[i] and messages on each qs[i] (nil: no
// quota) and returns each one's error. The UserdbQuotas of one QuotaStore
// are charged together, in one transaction when the store can
// (userdb.QuotaBatcher).
func reserveAll(ctx context.Context, qs []Quota, bytes []int64, messages int64) []error {
	errs := make([]error, len(qs))
	var batch []int // indexes of UserdbQuotas on the first one's store
	var store userdb.QuotaStore
	for i, q := range qs {
		uq, ok := q.(UserdbQuota)
		if ok && uq.Store != nil && reflect.TypeOf(uq.Store).Comparable() && (store == nil || uq.Store == store) {
			store = uq.Store
			batch = append(batch, i)
			continue
		}
		errs[i] = reserve(ctx, q, bytes[i], messages)
	}
	if len(batch) < 2 {
		for _, i := range batch {
			errs[i] = reserve(ctx, qs[i], bytes[i], messages)
		}
		return errs
	}
	rs := make([]userdb.Reservation, len(batch))
	for k, i := range batch {
		uq := qs[i].(UserdbQuota)
		rs[k] = userdb.Reservation{Address: uq.Address, Bytes: bytes[i], Messages: messages, Limit: uq.Limit}
	}
	ok, err := userdb.ReserveUsages(ctx, store, rs)
	for k, i := range batch {
		fit := err == nil && ok[k]
		errs[i] = qs[i].(UserdbQuota).result(fit, err, bytes[i], messages)
	}
	return errs
}

// release credits the quota. Its failure is not the operation's failure
// (the mail is gone either way); the drift is what `vmaild quota recalc`
// repairs, so it is logged, not returned.
func (s *Store) releaseQuota(q Quota, bytes, messages int64) {
	if q == nil || (bytes == 0 && messages == 0) {
		return
	}
	// Not the caller's ctx: a client that hangs up after EXPUNGE must not
	// leave the usage charged.
	if err := q.Release(context.Background(), bytes, messages); err != nil {
		s.logger().Warn("store: quota release failed", "bytes", bytes, "messages", messages, "err", err)
	}
}

// Recalc measures what an account's Maildir holds (every folder, new/ and
// cur/), for `vmaild quota recalc`. Sizes come from the S= in the file
// names; files without one are stat'ed.
func (s *Store) Recalc(ctx context.Context, address, maildir string) (bytes, messages int64, err error) {
	dir, err := s.MaildirPath(address, maildir)
	if err != nil {
		return 0, 0, err
	}
	if _, err := os.Stat(dir); err != nil {
		return 0, 0, ioError("stat", dir, err)
	}
	dirs := []string{dir}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, ioError("readdir", dir, err)
	}
	for _, de := range ents {
		if _, ok := folderName(de.Name()); ok && de.IsDir() {
			dirs = append(dirs, filepath.Join(dir, de.Name()))
		}
	}
	for _, d := range dirs {
		b, m, err := measureFolder(ctx, d)
		if err != nil {
			return 0, 0, err
		}
		bytes += b
		messages += m
	}
	return bytes, messages, nil
}

// measureFolder sums the messages of one maildir.
func measureFolder(ctx context.Context, dir string) (bytes, messages int64, err error) {
	for _, sub := range []string{"cur", "new"} {
		p := filepath.Join(dir, sub)
		ents, err := os.ReadDir(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, 0, ioError("readdir", p, err)
		}
		for _, de := range ents {
			if err := ctx.Err(); err != nil {
				return 0, 0, err
			}
			if !de.Type().IsRegular() || !validFileName(de.Name()) {
				continue
			}
			base, _ := splitName(de.Name())
			n, ok := sizeFromName(base)
			if !ok {
				fi, err := de.Info()
				if err != nil {
					continue
				}
				n = fi.Size()
			}
			bytes += n
			messages++
		}
	}
	return bytes, messages, nil
}
