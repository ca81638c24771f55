package main

import (
	"errors"
	"reflect"
	"testing"
)

// TestCheckDisk: a file system below the floor is reported once, by the
// first of its paths, with the space free and the floor in units people
// read; a floor of 0 checks nothing; a path that cannot be examined is a
// failure too.
func TestCheckDisk(t *testing.T) {
	const GiB = 1 << 30
	disks := map[string]diskSpace{
		"/data":       {Free: 120 << 20, Dev: 1},
		"/data/mail":  {Free: 120 << 20, Dev: 1},
		"/spool":      {Free: 5 * GiB, Dev: 2},
		"/tiny":       {Free: 512, Dev: 3},
		"/just-there": {Free: GiB, Dev: 4},
	}
	stat := func(p string) (diskSpace, error) {
		if d, ok := disks[p]; ok {
			return d, nil
		}
		return diskSpace{}, errors.New("statfs " + p + ": no such file or directory")
	}
	tests := []struct {
		name  string
		paths []string
		floor int64
		want  []string
	}{
		{"all above the floor", []string{"/spool", "/just-there"}, GiB, nil},
		{"one file system below, named once", []string{"/data", "/data/mail", "/spool"}, GiB,
			[]string{"disk: 120 MiB free on /data, below the 1 GiB floor (metrics.min_free_bytes)"}},
		{"two file systems below", []string{"/spool", "/tiny", "/data"}, 6 * GiB, []string{
			"disk: 5 GiB free on /spool, below the 6 GiB floor (metrics.min_free_bytes)",
			"disk: 512 B free on /tiny, below the 6 GiB floor (metrics.min_free_bytes)",
			"disk: 120 MiB free on /data, below the 6 GiB floor (metrics.min_free_bytes)",
		}},
		{"fractional sizes", []string{"/spool"}, 5*GiB + GiB/2,
			[]string{"disk: 5 GiB free on /spool, below the 5.5 GiB floor (metrics.min_free_bytes)"}},
		{"floor 0 turns the check off", []string{"/tiny", "/missing"}, 0, nil},
		{"unreadable path", []string{"/missing"}, 1,
			[]string{"disk: statfs /missing: no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, err := range checkDisk(tt.paths, tt.floor, stat) {
				got = append(got, err.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("checkDisk = %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestStatfs: the real statfs answers for an existing folder and fails,
// naming the path, for a missing one.
func TestStatfs(t *testing.T) {
	dir := t.TempDir()
	ds, err := statfs(dir)
	if err != nil || ds.Free == 0 {
		t.Errorf("statfs(%s) = %+v, %v", dir, ds, err)
	}
	if _, err := statfs(dir + "/missing"); err == nil {
		t.Error("statfs of a missing folder succeeded")
	}
}
