package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// linkOrCopy makes dst a durable copy of src: a hard link when both are on
// one file system (the data is shared and already on disk), else a copy
// that is fsynced.
func linkOrCopy(ctx context.Context, src, dst string) error {
	err := os.Link(src, dst)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(src); errors.Is(serr, fs.ErrNotExist) {
			return ioError("link", src, err)
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return ioError("open", src, err)
	}
	defer in.Close()
	_, err = writeDurable(ctx, dst, in)
	return err
}

type copySrc struct {
	uid   uint32
	path  string
	flags Flags
	size  int64
	vsize int64 // -1 unknown
	date  int64
}

// Copy copies messages to another folder (IMAP COPY), keeping flags and
// internal dates, and returns the UID mapping for COPYUID. The quota is
// charged for all of them first. Messages expunged meanwhile are skipped.
func (f *Folder) Copy(ctx context.Context, uids []uint32, dest string) (CopyResult, error) {
	if f.closed {
		return CopyResult{}, fmt.Errorf("%w: folder closed", ErrInvalid)
	}
	m := f.mb
	ddir, _, err := m.resolve(dest, true)
	if err != nil {
		return CopyResult{}, err
	}
	st := f.st
	if err := st.lock(ctx); err != nil {
		return CopyResult{}, err
	}
	var srcs []copySrc
	var bytes int64
	for _, uid := range uids {
		if e := st.get(uid); e != nil {
			srcs = append(srcs, copySrc{uid, st.msgPath(e), e.flags, e.size, e.vsize, e.date})
			bytes += e.size
		}
	}
	st.unlock()
	if len(srcs) == 0 {
		return CopyResult{}, nil
	}
	if err := reserve(ctx, m.quota, bytes, int64(len(srcs))); err != nil {
		return CopyResult{}, err
	}
	dst := m.store.acquire(ddir)
	defer m.store.release(dst)

	// Link outside any lock: this is the slow part for a big COPY.
	type staged struct {
		copySrc
		tmp, base string
	}
	var stage []staged
	var failed error
	for _, s := range srcs {
		base := withVSize(m.store.uniqueBase(time.Unix(s.date, 0), s.size), s.vsize)
		tmp := filepath.Join(ddir, "tmp", base)
		if err := linkOrCopy(ctx, s.path, tmp); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // expunged meanwhile
			}
			failed = err
			break
		}
		stage = append(stage, staged{s, tmp, base})
	}
	abort := func(err error) (CopyResult, error) {
		for _, s := range stage {
			os.Remove(s.tmp)
		}
		m.store.releaseQuota(m.quota, bytes, int64(len(srcs)))
		return CopyResult{}, err
	}
	if failed != nil {
		return abort(failed)
	}
	if err := dst.lock(ctx); err != nil {
		return abort(err)
	}
	res := CopyResult{UIDValidity: dst.validity}
	preCur := dst.curBefore()
	done := 0
	for _, s := range stage {
		name := fileName(s.base, s.flags)
		if err := os.Rename(s.tmp, filepath.Join(ddir, "cur", name)); err != nil {
			failed = ioError("rename", s.tmp, err)
			break
		}
		uid := dst.next
		dst.emit(record{op: 'A', uid: uid, size: s.size, date: s.date, name: name})
		res.Source = append(res.Source, s.uid)
		res.Dest = append(res.Dest, uid)
		done++
	}
	if err := syncDir(filepath.Join(ddir, "cur")); err != nil && failed == nil {
		failed = err
	}
	dst.ownCurChange(preCur)
	if err := dst.flush(); err != nil && failed == nil {
		failed = err
	}
	dst.unlock()
	// Release what was charged for messages that were skipped or failed.
	var got int64
	for _, s := range stage[:done] {
		got += s.size
	}
	for _, s := range stage[done:] {
		os.Remove(s.tmp)
	}
	m.store.releaseQuota(m.quota, bytes-got, int64(len(srcs)-done))
	if failed != nil {
		return res, failed
	}
	return res, nil
}

// Move moves messages to another folder (IMAP MOVE): one rename per
// message under both folders' locks, so no message is ever in both or
// neither, and no quota changes hands. It returns the UID mapping and the
// messages removed from this view.
func (f *Folder) Move(ctx context.Context, uids []uint32, dest string) (CopyResult, []Expunged, error) {
	if err := f.writable(); err != nil {
		return CopyResult{}, nil, err
	}
	m := f.mb
	ddir, _, err := m.resolve(dest, true)
	if err != nil {
		return CopyResult{}, nil, err
	}
	src := f.st
	if ddir == src.dir {
		res, err := f.Copy(ctx, uids, dest)
		if err != nil {
			return res, nil, err
		}
		exp, err := f.Delete(ctx, res.Source)
		return res, exp, err
	}
	dst := m.store.acquire(ddir)
	defer m.store.release(dst)
	// A fixed order (by directory) keeps two opposite MOVEs from
	// deadlocking, here and across processes.
	first, second := src, dst
	if dst.dir < src.dir {
		first, second = dst, src
	}
	if err := first.lock(ctx); err != nil {
		return CopyResult{}, nil, err
	}
	if err := second.lock(ctx); err != nil {
		first.unlock()
		return CopyResult{}, nil, err
	}
	res := CopyResult{UIDValidity: dst.validity}
	preSrc, preDst := src.curBefore(), dst.curBefore()
	gone := map[uint32]bool{}
	var failed error
	for _, uid := range uids {
		e := src.get(uid)
		if e == nil {
			continue
		}
		name := fileName(withVSize(m.store.uniqueBase(time.Unix(e.date, 0), e.size), e.vsize), e.flags)
		from := src.msgPath(e)
		if err := os.Rename(from, filepath.Join(ddir, "cur", name)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			failed = ioError("rename", from, err)
			break
		}
		if e.inNew {
			src.newMtime = 0
		}
		duid := dst.next
		dst.emit(record{op: 'A', uid: duid, size: e.size, date: e.date, name: name})
		src.emit(record{op: 'X', uid: uid})
		res.Source = append(res.Source, uid)
		res.Dest = append(res.Dest, duid)
		gone[uid] = true
	}
	// The destination first: a crash between the two leaves the moved
	// files indexed in dest and merely rescanned away from src.
	if err := syncDir(filepath.Join(ddir, "cur")); err != nil && failed == nil {
		failed = err
	}
	dst.ownCurChange(preDst)
	if err := dst.flush(); err != nil && failed == nil {
		failed = err
	}
	src.ownCurChange(preSrc)
	if err := src.flush(); err != nil && failed == nil {
		failed = err
	}
	second.unlock()
	first.unlock()
	return res, f.dropFromView(gone), failed
}
