package store

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// The index is a text log, one record per line, so an admin can read it
// and a torn write is easy to recognise:
//
//	<crc32 of payload, 8 hex digits> <payload>\n
//
// Payloads:
//
//	H <uidvalidity> <uidnext>               first line; starts a snapshot
//	A <uid> <n|c> <size> <unix date> <name> message added (in new/ or cur/)
//	R <uid> <n|c> <name>                    file renamed (flags, new/ → cur/)
//	X <uid>                                 message expunged
//	M <new/ mtime ns> <cur/ mtime ns>       directory mtimes the index reflects
//	V <uid> <virtual size>                  size in CRLF form, for a message
//	                                        whose name has no W= (computed once)
//	Z <highest modseq> <floor modseq>       the modseq state starts here (below)
//	Q <uid> <modseq>                        uid's last change (A, R with other
//	                                        flags, X) has this modseq
//	B <uid>                                 \Recent boundary: UIDs below it were
//	                                        given to a session already
//
// Appends add records; compaction rewrites the file as H, one A per live
// message, M, the V records still needed, Z, the Q records of changes
// above the floor (ascending modseq) and B, and renames it over the old
// one. V, Z, Q and B came later than the others: an index without them is
// read as before, and an older vmaild that meets them at the end of a
// compacted index takes them for a torn tail and drops them (one that
// meets them between older records takes the index for damaged and
// rebuilds it, under a new UIDVALIDITY).
//
// MODSEQ (RFC 7162): after a Z record, every A, every R that changes a
// message's flags and every X is followed by the Q record giving it its
// modseq; one operation's changes share one modseq, and modseqs grow along
// the file. A message with no Q after the Z has the floor modseq: a
// compaction keeps only the newest changes (maxModLog) and raises older
// ones to the floor, which may only report a message as changed that was
// not, never the reverse. The UIDs of expunges above the floor are kept
// (Q of a UID that is not live), so VANISHED is exact for a client whose
// modseq is at least the floor. An index without Z (an older vmaild's,
// or one just built from the files) starts at the present time in
// microseconds: above any modseq handed out under the same UIDVALIDITY
// before, whoever dropped the records (a rebuild keeping Dovecot's
// UIDVALIDITY, an older vmaild's compaction). A/R/X records without
// their Q (an older vmaild appended them, or a torn write cut between
// them) get one when the tail is read. Records are written after
// the file operation they describe, so a record on disk is always true of
// the files (or was, before another program changed them).
const (
	indexName   = "vmaild.index"
	lockName    = "vmaild.lock"
	uidlistName = "dovecot-uidlist"
	kwName      = "dovecot-keywords"
)

// record is one decoded index line.
type record struct {
	op    byte
	uid   uint32
	inNew bool
	size  int64
	date  int64
	name  string
	a, b  int64 // H: uidvalidity, uidnext; M: new/ and cur/ mtimes; Z: highest, floor; Q: modseq
}

var errBadRecord = errors.New("bad index record")

// appendRecord encodes r as one line onto buf.
func appendRecord(buf []byte, r record) []byte {
	start := len(buf)
	buf = append(buf, "00000000 "...)
	p := len(buf)
	buf = append(buf, r.op)
	switch r.op {
	case 'H', 'M', 'Z':
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, r.a, 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, r.b, 10)
	case 'Q':
		buf = append(buf, ' ')
		buf = strconv.AppendUint(buf, uint64(r.uid), 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, r.a, 10)
	case 'A', 'R':
		buf = append(buf, ' ')
		buf = strconv.AppendUint(buf, uint64(r.uid), 10)
		if r.inNew {
			buf = append(buf, " n "...)
		} else {
			buf = append(buf, " c "...)
		}
		if r.op == 'A' {
			buf = strconv.AppendInt(buf, r.size, 10)
			buf = append(buf, ' ')
			buf = strconv.AppendInt(buf, r.date, 10)
			buf = append(buf, ' ')
		}
		buf = append(buf, r.name...)
	case 'X', 'B':
		buf = append(buf, ' ')
		buf = strconv.AppendUint(buf, uint64(r.uid), 10)
	case 'V':
		buf = append(buf, ' ')
		buf = strconv.AppendUint(buf, uint64(r.uid), 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, r.size, 10)
	}
	sum := crc32.ChecksumIEEE(buf[p:])
	const hexd = "0123456789abcdef"
	for i := 7; i >= 0; i-- {
		buf[start+i] = hexd[sum&0xf]
		sum >>= 4
	}
	return append(buf, '\n')
}

// parseRecord decodes one line (without its newline).
func parseRecord(line []byte) (record, error) {
	if len(line) < 10 || line[8] != ' ' {
		return record{}, errBadRecord
	}
	var want uint32
	for _, c := range line[:8] {
		switch {
		case c >= '0' && c <= '9':
			want = want<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			want = want<<4 | uint32(c-'a'+10)
		case c >= 'A' && c <= 'F':
			want = want<<4 | uint32(c-'A'+10)
		default:
			return record{}, errBadRecord
		}
	}
	if want != crc32.ChecksumIEEE(line[9:]) {
		return record{}, errBadRecord
	}
	var err error
	payload := string(line[9:])
	r := record{op: payload[0]}
	if len(payload) > 1 && payload[1] != ' ' {
		return record{}, errBadRecord
	}
	var buf [6]string
	var f []string
	split := func(n int) []string { return splitN(buf[:0], payload, n) }
	switch r.op {
	case 'H', 'M', 'Z':
		f = split(4)
		if len(f) != 3 {
			return record{}, errBadRecord
		}
		r.a, err = strconv.ParseInt(f[1], 10, 64)
		if err == nil {
			r.b, err = strconv.ParseInt(f[2], 10, 64)
		}
		if err != nil || (r.op == 'H' && (r.a <= 0 || r.a > 1<<32-1 || r.b <= 0 || r.b > 1<<32-1)) ||
			(r.op == 'Z' && (r.b <= 0 || r.a < r.b)) {
			return record{}, errBadRecord
		}
		return r, nil
	case 'Q':
		f = split(4)
		if len(f) != 3 {
			return record{}, errBadRecord
		}
		if r.a, err = strconv.ParseInt(f[2], 10, 64); err != nil || r.a <= 0 {
			return record{}, errBadRecord
		}
	case 'A':
		f = split(6)
		if len(f) != 6 {
			return record{}, errBadRecord
		}
		if r.size, err = strconv.ParseInt(f[3], 10, 64); err != nil || r.size < 0 {
			return record{}, errBadRecord
		}
		if r.date, err = strconv.ParseInt(f[4], 10, 64); err != nil {
			return record{}, errBadRecord
		}
		r.name = f[5]
	case 'R':
		f = split(4)
		if len(f) != 4 {
			return record{}, errBadRecord
		}
		r.name = f[3]
	case 'X', 'B':
		f = split(3)
		if len(f) != 2 {
			return record{}, errBadRecord
		}
	case 'V':
		f = split(4)
		if len(f) != 3 {
			return record{}, errBadRecord
		}
		if r.size, err = strconv.ParseInt(f[2], 10, 64); err != nil || r.size < 0 {
			return record{}, errBadRecord
		}
	default:
		return record{}, errBadRecord
	}
	uid, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil || uid == 0 {
		return record{}, errBadRecord
	}
	r.uid = uint32(uid)
	if r.op == 'A' || r.op == 'R' {
		switch f[2] {
		case "n":
			r.inNew = true
		case "c":
		default:
			return record{}, errBadRecord
		}
		if !validFileName(r.name) {
			return record{}, errBadRecord
		}
	}
	return r, nil
}

// parseLog decodes the complete lines of data. It returns the number of
// bytes that hold valid records. A bad line followed only by bad lines or
// an unterminated tail is a torn write of an operation that never
// completed (records are fsynced before an operation returns), so it is
// cut off (torn=true); a bad line followed by a good one is damage, and
// the index must be rebuilt (err != nil).
func parseLog(data []byte, apply func(record)) (good int64, torn bool, err error) {
	off := 0
	var firstBad = -1
	for off < len(data) {
		nl := bytes.IndexByte(data[off:], '\n')
		if nl < 0 {
			torn = true
			break
		}
		line := data[off : off+nl]
		r, perr := parseRecord(line)
		if perr != nil {
			if firstBad < 0 {
				firstBad = off
			}
		} else if firstBad >= 0 {
			return 0, false, fmt.Errorf("%w at offset %d", errBadRecord, firstBad)
		} else {
			apply(r)
		}
		off += nl + 1
	}
	if firstBad >= 0 {
		return int64(firstBad), true, nil
	}
	return int64(off), torn, nil
}

// splitN is strings.SplitN(s, " ", n) into dst, without allocating when
// dst has room: indexes are read line by line, many thousands at a time.
func splitN(dst []string, s string, n int) []string {
	for len(dst) < n-1 {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			break
		}
		dst = append(dst, s[:i])
		s = s[i+1:]
	}
	return append(dst, s)
}
