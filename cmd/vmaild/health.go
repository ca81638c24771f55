package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vmaild/vmaild/userdb"
)

// health checks what mail needs: the directory answers (not the cache),
// the store and queue folders are writable, and their file systems have
// room. Every check runs; the error has one line per failure, each starting
// with the check's name (sql, ldap, store, disk).
func (s *server) health(ctx context.Context) error {
	var failed []error
	if err := s.dir.sql.Ping(ctx); err != nil {
		failed = append(failed, fmt.Errorf("sql: %w", err))
	}
	if s.dir.ldap != nil {
		if _, err := s.dir.ldap.LookupAccount(ctx, "postmaster@vmaild.invalid"); err != nil && !errors.Is(err, userdb.ErrNotFound) {
			failed = append(failed, fmt.Errorf("ldap: %w", err))
		}
	}
	for _, dir := range []string{s.cfg.Store.Root, s.cfg.Queue.Dir} {
		f, err := os.CreateTemp(dir, ".healthz-*")
		if err != nil {
			failed = append(failed, fmt.Errorf("store: %w", err))
			continue
		}
		f.Close()
		os.Remove(f.Name())
	}
	failed = append(failed, checkDisk(s.diskPaths(), s.cfg.Metrics.MinFreeBytes, statfs)...)
	return errors.Join(failed...)
}

// diskPaths are the folders whose file systems take writes for mail: the
// data folder (database, spool for large messages), the store and the
// queue.
func (s *server) diskPaths() []string {
	return []string{s.cfg.DataDir, s.cfg.Store.Root, s.cfg.Queue.Dir}
}

// diskSpace is what the disk check needs from statfs(2) and stat(2).
type diskSpace struct {
	Free uint64 // bytes an unprivileged user may still write
	Dev  uint64 // device, so a file system shared by several paths is reported once
}

func statfs(path string) (diskSpace, error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(path, &fs); err != nil {
		return diskSpace{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return diskSpace{}, err
	}
	var dev uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		dev = uint64(sys.Dev)
	}
	// Bavail, not Bfree: the blocks reserved for root (5 % on ext4) are
	// no use to a daemon that has dropped its privileges.
	return diskSpace{Free: uint64(fs.Bavail) * uint64(fs.Bsize), Dev: dev}, nil
}

// checkDisk reports each file system under paths with less than floor
// bytes free, once, naming the first path on it. A floor of 0 turns the
// check off.
func checkDisk(paths []string, floor int64, stat func(string) (diskSpace, error)) []error {
	if floor <= 0 {
		return nil
	}
	var failed []error
	seen := map[uint64]bool{}
	for _, p := range paths {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		ds, err := stat(p)
		if err != nil {
			failed = append(failed, fmt.Errorf("disk: %w", err))
			continue
		}
		if seen[ds.Dev] {
			continue
		}
		seen[ds.Dev] = true
		if ds.Free < uint64(floor) {
			failed = append(failed, fmt.Errorf("disk: %s free on %s, below the %s floor (metrics.min_free_bytes)",
				formatBytes(ds.Free), p, formatBytes(uint64(floor))))
		}
	}
	return failed
}

// formatBytes writes a size for people: "120 MiB", "1.5 GiB", "512 B".
func formatBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 {
		return strconv.FormatUint(n, 10) + " B"
	}
	return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + " " + units[u]
}
