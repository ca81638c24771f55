package sortthread

import (
	"cmp"
	"fmt"
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
	type column struct {
		str  []string
		num  []int64
		desc bool
	}
	cols := make([]column, 0, len(criteria))
	for _, c := range criteria {
		col := column{desc: c.Reverse}
		switch c.Key {
		case Arrival, Date, Size:
			col.num = make([]int64, n)
			for i := range msgs {
				m := &msgs[i]
				switch c.Key {
				case Arrival:
					col.num[i] = m.InternalDate.Unix()
				case Date:
					col.num[i] = m.sentDate()
				default:
					col.num[i] = m.Size
				}
			}
		default:
			col.str = make([]string, n)
			for i := range msgs {
				col.str[i] = stringKey(&msgs[i], c.Key)
			}
		}
		cols = append(cols, col)
	}
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		for _, c := range cols {
			var r int
			if c.num != nil {
				r = cmp.Compare(c.num[a], c.num[b])
			} else {
				r = strings.Compare(c.str[a], c.str[b])
			}
			if r != 0 {
				if c.desc {
					return -r
				}
				return r
			}
		}
		return cmp.Compare(msgs[a].Seq, msgs[b].Seq)
	})
	out := make([]*Message, n)
	for i, j := range idx {
		out[i] = &msgs[j]
	}
	return out
}

// stringKey is the folded string a string key compares.
func stringKey(m *Message, k Key) string {
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
