package imap

import (
	"context"
	"fmt"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/userdb"
)

// liveQuota charges the store's APPEND and COPY against the limit the
// directory gives now (the directory's cache keeps that cheap), so a limit
// changed by the admin applies to sessions already logged in.
type liveQuota struct {
	dir     userdb.Directory
	quotas  userdb.QuotaStore
	address string
}

func (q *liveQuota) limit(ctx context.Context) (userdb.Limit, error) {
	l, err := q.dir.QuotaLimit(ctx, q.address)
	if err != nil {
		return userdb.Limit{}, fmt.Errorf("quota limit %s: %w: %w", q.address, store.ErrTemporary, err)
	}
	return l, nil
}

func (q *liveQuota) Reserve(ctx context.Context, bytes, messages int64) error {
	l, err := q.limit(ctx)
	if err != nil {
		return err
	}
	return store.UserdbQuota{Store: q.quotas, Address: q.address, Limit: l}.Reserve(ctx, bytes, messages)
}

func (q *liveQuota) Release(ctx context.Context, bytes, messages int64) error {
	return store.UserdbQuota{Store: q.quotas, Address: q.address}.Release(ctx, bytes, messages)
}

// quotaRoot is the one quota root of an account: every folder shares the
// user's quota.
const quotaRoot = ""
