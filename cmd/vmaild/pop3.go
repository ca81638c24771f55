package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/pop3"
	"github.com/vmaild/vmaild/userdb"
)

// pop3Backend serves POP3 maildrops from the store's INBOX, logging in
// through the user directory.
type pop3Backend struct {
	users  userdb.Directory
	quotas userdb.QuotaStore
	store  *store.Store
}

func (b *pop3Backend) Login(ctx context.Context, _ pop3.ConnInfo, username, password string) (pop3.Maildrop, error) {
	acct, err := b.users.Authenticate(ctx, username, password)
	if err != nil {
		return nil, err
	}
	sa := store.Account{Address: acct.Address, Maildir: acct.Maildir}
	if b.quotas != nil {
		limit, err := b.users.QuotaLimit(ctx, acct.Address)
		if err != nil {
			return nil, err
		}
		sa.Quota = store.UserdbQuota{Store: b.quotas, Address: acct.Address, Limit: limit}
	}
	mb, err := b.store.OpenMailbox(ctx, sa)
	if err != nil {
		return nil, storeErr(err)
	}
	f, err := mb.Select(ctx, "INBOX", false)
	if err != nil {
		return nil, storeErr(err)
	}
	return &maildrop{address: acct.Address, folder: f}, nil
}

// storeErr makes a store failure "try later" for the POP3 layer.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	return userdb.Unavailable("mail store", err)
}

type maildrop struct {
	address string
	folder  *store.Folder
	msgs    []store.Message
	uids    map[string]uint32
}

func (m *maildrop) Account() string { return m.address }

// Messages snapshots INBOX. The POP3 sizes (CRLF form) come from the
// store, which knows them from the file names or its index and reads a
// message only the first time it lacks both.
func (m *maildrop) Messages(ctx context.Context) ([]pop3.Message, error) {
	m.msgs = m.folder.Messages()
	sizes, err := m.folder.VirtualSizes(ctx)
	if err != nil {
		return nil, storeErr(err)
	}
	ids, err := m.folder.UniqueIDs(ctx)
	if err != nil {
		return nil, storeErr(err)
	}
	m.uids = make(map[string]uint32, len(m.msgs))
	out := make([]pop3.Message, 0, len(m.msgs))
	validity := strconv.FormatUint(uint64(m.folder.UIDValidity()), 10) + "."
	for i, msg := range m.msgs {
		uid := validity + strconv.FormatUint(uint64(msg.UID), 10) + "." + ids[i]
		m.uids[uid] = msg.UID
		out = append(out, pop3.Message{UID: uid, Size: sizes[i]})
	}
	return out, nil
}

func (m *maildrop) Open(ctx context.Context, i int) (io.ReadCloser, error) {
	if i < 0 || i >= len(m.msgs) {
		return nil, fmt.Errorf("message %d: %w", i+1, store.ErrNotFound)
	}
	r, err := m.folder.Open(ctx, m.msgs[i].UID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, err // expunged by an IMAP session meanwhile
	}
	return r, storeErr(err)
}

func (m *maildrop) Delete(ctx context.Context, uids []string) error {
	nums := make([]uint32, 0, len(uids))
	for _, u := range uids {
		if n, ok := m.uids[u]; ok {
			nums = append(nums, n)
		}
	}
	_, err := m.folder.Delete(ctx, nums)
	return storeErr(err)
}

func (m *maildrop) Close() error { return m.folder.Close() }
