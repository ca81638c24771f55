package sortthread

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Key is a SORT key (RFC 5256 section 3, RFC 5957).
type Key uint8

// The sort keys.
const (
	Arrival Key = iota
	Cc
	Date
	From
	Size
	Subject
	To
	DisplayFrom
	DisplayTo
)

var keyNames = [...]string{"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}

func (k Key) String() string {
	if int(k) < len(keyNames) {
		return keyNames[k]
	}
	return fmt.Sprintf("Key(%d)", k)
}

// ParseKey maps a sort-key atom (any case) to its Key.
func ParseKey(name string) (Key, bool) {
	for i, n := range keyNames {
		if strings.EqualFold(n, name) {
			return Key(i), true
		}
	}
	return 0, false
}

// Criterion is one sort-criterion: a key, optionally REVERSE.
type Criterion struct {
	Key     Key
	Reverse bool
}

// Sort orders msgs by the criteria, each one breaking the ties of the one
// before, and the last ties by sequence number, ascending even after a
// REVERSE (as Dovecot does). Strings compare by i;unicode-casemap octet
// order, numbers and dates numerically. msgs is not modified; the result
// holds pointers into it.
func Sort(msgs []Message, criteria []Criterion) []*Message {
	n := len(msgs)
	// Keys are computed once per message and criterion: the comparison
	// function runs n log n times.
	cols := make([]Column, 0, len(criteria)+1)
	for _, c := range criteria {
		col := Column{Reverse: c.Reverse}
		if c.Key.Numeric() {
			col.Num = make([]int64, n)
			for i := range msgs {
				col.Num[i] = NumKey(&msgs[i], c.Key)
			}
		} else {
			col.Str = make([]string, n)
			for i := range msgs {
				col.Str[i] = StringKey(&msgs[i], c.Key)
			}
		}
		cols = append(cols, col)
	}
	if !slices.IsSortedFunc(msgs, func(a, b Message) int { return cmp.Compare(a.Seq, b.Seq) }) {
		// SortColumns breaks the last ties by position.
		seq := make([]int64, n)
		for i := range msgs {
			seq[i] = int64(msgs[i].Seq)
		}
		cols = append(cols, Column{Num: seq})
	}
	idx := SortColumns(n, cols)
	out := make([]*Message, n)
	for i, j := range idx {
		out[i] = &msgs[j]
	}
	return out
}

// Numeric tells the keys that compare as numbers (ARRIVAL, DATE, SIZE).
func (k Key) Numeric() bool { return k == Arrival || k == Date || k == Size }

// NumKey is the number a numeric key compares: the internal date, the
// sent date or the size.
func NumKey(m *Message, k Key) int64 {
	switch k {
	case Arrival:
		return m.InternalDate.Unix()
	case Date:
		return m.sentDate()
	}
	return m.Size
}

// Column is one sort criterion's keys, one per message: Num for a
// numeric key, else Str (StringKey's).
type Column struct {
	Num     []int64
	Str     []string
	Reverse bool
}

// SortColumns orders the positions 0 to n-1 by the columns, each one
// breaking the ties of the one before, and the last ties by position,
// ascending even after a REVERSE: Sort's order when the messages are
// listed by ascending sequence number. A caller that keeps the keys of
// its messages (a cache) sorts with it without building Messages.
func SortColumns(n int, cols []Column) []int32 {
	idx := make([]int32, n)
	if len(cols) == 1 && cols[0].Num != nil && sortOneNum(idx, cols[0]) {
		return idx
	}
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		for _, c := range cols {
			var r int
			if c.Num != nil {
				r = cmp.Compare(c.Num[a], c.Num[b])
			} else {
				r = strings.Compare(c.Str[a], c.Str[b])
			}
			if r != 0 {
				if c.Reverse {
					return -r
				}
				return r
			}
		}
		return cmp.Compare(a, b)
	})
	return idx
}

// sortOneNum is SortColumns for one numeric column whose keys fit in 32
// unsigned bits (dates until 2106, sizes below 4 GiB), the common SORT
// (DATE): key and position make one uint64, which a radix sort on the
// key orders with no comparison at all, ties keeping their positions. It
// reports false, leaving idx alone, for keys that do not fit.
func sortOneNum(idx []int32, c Column) bool {
	packed := make([]uint64, len(idx))
	for i, v := range c.Num {
		if v < 0 || v > math.MaxUint32 {
			return false
		}
		if c.Reverse {
			v = math.MaxUint32 - v
		}
		packed[i] = uint64(v)<<32 | uint64(i)
	}
	packed = radixSortHigh(packed, make([]uint64, len(packed)))
	for i, p := range packed {
		idx[i] = int32(uint32(p))
	}
	return true
}

// StringKey is the folded string a string key compares.
func StringKey(m *Message, k Key) string {
	switch k {
	case Subject:
		s, _ := BaseSubject(m.Subject)
		return s
	case From:
		return casemap(firstAddress(m.From).mailbox)
	case To:
		return casemap(firstAddress(m.To).mailbox)
	case Cc:
		return casemap(firstAddress(m.Cc).mailbox)
	case DisplayFrom:
		return casemap(displayName(firstAddress(m.From)))
	case DisplayTo:
		return casemap(displayName(firstAddress(m.To)))
	}
	return ""
}

// displayName is RFC 5957's display string: the display name when there
// is one, else the address.
func displayName(a address) string {
	switch {
	case !a.ok:
		return ""
	case a.name != "":
		return a.name
	case a.group:
		return a.mailbox
	}
	return a.mailbox + "@" + a.domain
}

// radixSortHigh sorts a by the high 32 bits of its values, stably, using
// tmp (as long as a) as scratch, and returns the sorted slice (a or tmp).
// A byte that every value shares costs no pass.
func radixSortHigh(a, tmp []uint64) []uint64 {
	if len(a) < 2 {
		return a
	}
	for shift := 32; shift < 64; shift += 8 {
		var count [256]int
		for _, v := range a {
			count[byte(v>>shift)]++
		}
		if count[byte(a[0]>>shift)] == len(a) {
			continue
		}
		pos := 0
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, v := range a {
			b := byte(v >> shift)
			tmp[count[b]] = v
			count[b]++
		}
		a, tmp = tmp, a
	}
	return a
}
