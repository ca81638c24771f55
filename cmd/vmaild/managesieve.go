package main

import (
	"context"
	"errors"
	"sync"

	"github.com/vmaild/vmaild/backend/sieve"
	"github.com/vmaild/vmaild/backend/sievestore"
	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/managesieve"
	"github.com/vmaild/vmaild/userdb"
)

// sieveOptions are the interpreter's options for every script a user
// stores.
func (c Config) sieveOptions() sieve.Options {
	return sieve.Options{Limits: sieve.Limits{MaxScriptSize: int(c.Sieve.MaxScriptSize)}}
}

func (c Config) sieveQuota() sievestore.Quota {
	size := c.Sieve.MaxScriptSize
	if size <= 0 {
		size = sieve.DefaultMaxScriptSize
	}
	return sievestore.Quota{MaxScripts: c.Sieve.MaxScripts, MaxStorage: c.Sieve.MaxStorage, MaxSize: size}
}

// manageSieveBackend serves ManageSieve sessions from the users' mail
// homes (package sievestore), logging in through the user directory.
type manageSieveBackend struct {
	users userdb.Directory
	store *store.Store
	opts  sieve.Options
	quota sievestore.Quota
	// writes serialises the writes of all sessions: a quota check with
	// the write it allows, so two sessions cannot both take a user's last
	// room, and activations, which share a temporary link name.
	writes sync.Mutex
}

func (b *manageSieveBackend) Login(ctx context.Context, _ managesieve.ConnInfo, username, password string) (managesieve.Scripts, error) {
	acct, err := b.users.Authenticate(ctx, username, password)
	if err != nil {
		return nil, err
	}
	maildir, err := b.store.MaildirPath(acct.Address, acct.Maildir)
	if err != nil {
		return nil, storeErr(err)
	}
	return &sieveSession{b: b, account: acct.Address, s: sievestore.Scripts{Home: sievestore.HomeOf(maildir)}}, nil
}

// sieveSession is one logged-in user's scripts.
type sieveSession struct {
	b       *manageSieveBackend
	account string
	s       sievestore.Scripts
}

func (s *sieveSession) Account() string { return s.account }

func (s *sieveSession) List(context.Context) ([]managesieve.Script, error) {
	list, err := s.s.List()
	if err != nil {
		return nil, sieveErr(err)
	}
	out := make([]managesieve.Script, len(list))
	for i, in := range list {
		out[i] = managesieve.Script{Name: in.Name, Active: in.Active}
	}
	return out, nil
}

func (s *sieveSession) Get(_ context.Context, name string) ([]byte, error) {
	src, err := s.s.Get(name)
	return src, sieveErr(err)
}

func (s *sieveSession) Put(_ context.Context, name string, src []byte) error {
	s.b.writes.Lock()
	defer s.b.writes.Unlock()
	if err := s.s.CheckQuota(s.b.quota, name, int64(len(src))); err != nil {
		return sieveErr(err)
	}
	return sieveErr(s.s.Put(name, src, s.b.opts))
}

func (s *sieveSession) Check(_ context.Context, src []byte) error {
	_, err := sieve.Compile(src, s.b.opts)
	return sieveErr(err)
}

func (s *sieveSession) HaveSpace(_ context.Context, name string, size int64) error {
	return sieveErr(s.s.CheckQuota(s.b.quota, name, size))
}

func (s *sieveSession) SetActive(_ context.Context, name string) error {
	s.b.writes.Lock()
	defer s.b.writes.Unlock()
	return sieveErr(s.s.Activate(name))
}

func (s *sieveSession) Delete(_ context.Context, name string) error {
	s.b.writes.Lock()
	defer s.b.writes.Unlock()
	return sieveErr(s.s.Delete(name))
}

func (s *sieveSession) Rename(_ context.Context, oldName, newName string) error {
	s.b.writes.Lock()
	defer s.b.writes.Unlock()
	return sieveErr(s.s.Rename(oldName, newName))
}

func (s *sieveSession) Close() error { return nil }

// sieveErr classifies a script storage error for ManageSieve: the user's
// mistakes by kind, anything else a store failure to try again later.
func sieveErr(err error) error {
	var ce *sieve.Error
	var qe *sievestore.QuotaError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sievestore.ErrNotFound):
		return errors.Join(managesieve.ErrNonExistent, err)
	case errors.Is(err, sievestore.ErrExists):
		return errors.Join(managesieve.ErrAlreadyExists, err)
	case errors.Is(err, sievestore.ErrActive):
		return errors.Join(managesieve.ErrActive, err)
	case errors.Is(err, sievestore.ErrName):
		return &managesieve.ScriptError{Msg: err.Error()}
	case errors.As(err, &ce):
		return &managesieve.ScriptError{Msg: ce.Error()}
	case errors.As(err, &qe):
		limit := map[sievestore.QuotaLimit]managesieve.QuotaLimit{
			sievestore.MaxScripts: managesieve.QuotaMaxScripts,
			sievestore.MaxStorage: managesieve.QuotaMaxStorage,
			sievestore.MaxSize:    managesieve.QuotaMaxSize,
		}[qe.Limit]
		return &managesieve.QuotaError{Limit: limit, Msg: qe.Msg}
	}
	return storeErr(err)
}
