package sortthread

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Algorithm is a THREAD algorithm (RFC 5256 section 3).
type Algorithm uint8

// The threading algorithms.
const (
	OrderedSubject Algorithm = iota
	References
)

func (a Algorithm) String() string {
	switch a {
	case OrderedSubject:
		return "ORDEREDSUBJECT"
	case References:
		return "REFERENCES"
	}
	return fmt.Sprintf("Algorithm(%d)", a)
}

// ParseAlgorithm maps a thread algorithm atom (any case) to its Algorithm.
func ParseAlgorithm(name string) (Algorithm, bool) {
	switch {
	case strings.EqualFold(name, "ORDEREDSUBJECT"):
		return OrderedSubject, true
	case strings.EqualFold(name, "REFERENCES"):
		return References, true
	}
	return 0, false
}

// Node is one message of a thread tree; Msg is nil for a dummy: the
// missing common parent of a thread's first messages, which only a root
// can be. Children are ordered by sent date, then UID.
type Node struct {
	Msg      *Message
	Children []*Node
}

// Thread groups msgs into threads with the algorithm and returns the roots
// in order. msgs must be in mailbox order (ascending sequence numbers and
// UIDs); it is not modified, and the nodes point into it.
func Thread(msgs []Message, alg Algorithm) []*Node {
	if alg == OrderedSubject {
		return orderedSubject(msgs)
	}
	return references(msgs)
}

// orderedSubject: threads are runs of the same base subject in
// (subject, sent date, sequence) order; each thread is its first message
// with the others as its children, and threads go by their first
// message's sent date.
func orderedSubject(msgs []Message) []*Node {
	n := len(msgs)
	subj := make([]string, n)
	date := make([]int64, n)
	for i := range msgs {
		subj[i], _ = BaseSubject(msgs[i].Subject)
		date[i] = msgs[i].sentDate()
	}
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		if r := strings.Compare(subj[a], subj[b]); r != 0 {
			return r
		}
		if r := cmp.Compare(date[a], date[b]); r != 0 {
			return r
		}
		return cmp.Compare(msgs[a].Seq, msgs[b].Seq)
	})
	nodes := make([]Node, n)
	kids := make([]*Node, n)
	var first []int32
	for i := 0; i < n; {
		j := i + 1
		for j < n && subj[idx[j]] == subj[idx[i]] {
			j++
		}
		root := &nodes[idx[i]]
		root.Msg = &msgs[idx[i]]
		root.Children = kids[i+1 : j : j]
		for k := i + 1; k < j; k++ {
			c := &nodes[idx[k]]
			c.Msg = &msgs[idx[k]]
			kids[k] = c
		}
		first = append(first, idx[i])
		i = j
	}
	slices.SortFunc(first, func(a, b int32) int {
		if r := cmp.Compare(date[a], date[b]); r != 0 {
			return r
		}
		return cmp.Compare(msgs[a].Seq, msgs[b].Seq)
	})
	roots := make([]*Node, len(first))
	for i, f := range first {
		roots[i] = &nodes[f]
	}
	return roots
}
