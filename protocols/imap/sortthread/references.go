package sortthread

import (
	"cmp"
	"slices"
)

// tnode is a container of the REFERENCES algorithm: a message, or a dummy
// standing for a Message-ID seen only in References.
type tnode struct {
	msg      int32 // index into msgs, or -1 for a dummy
	parent   int32 // -1: none
	hasChild bool  // some node had this one as parent (may be stale: a hint)
	// The pruned tree (RFC 5256 steps 3 onwards) as first-child and
	// next-sibling lists; -1 ends them.
	firstChild, nextSibling int32
}

// troot is a member of the root set, with what step 5 needs.
type troot struct {
	node       int32
	date       int64
	uid        uint32
	parentRoot int32 // a root this one merges into (step 5), or -1
	dummy      bool
	ignore     bool // merged away, or a dummy left without children
	replyFwd   bool
}

type threader struct {
	msgs  []Message
	date  []int64 // sent date per message
	nodes []tnode
	ids   map[string]int32
	roots []troot
	kids  []int32 // scratch for sortedChildren
}

// references is THREAD=REFERENCES, RFC 5256 section 4, in Dovecot's
// reading of it: see the package comment.
func references(msgs []Message) []*Node {
	t := &threader{
		msgs:  msgs,
		date:  make([]int64, len(msgs)),
		nodes: make([]tnode, 0, len(msgs)+len(msgs)/2),
		ids:   make(map[string]int32, len(msgs)),
	}
	for i := range msgs {
		t.date[i] = msgs[i].sentDate()
	}
	// (1) links, message by message in UID order.
	for i := range msgs {
		t.add(int32(i))
	}
	// (2) the root set, and (3) dummies removed: a message hangs under
	// its nearest real ancestor, or under the topmost dummy.
	t.prune()
	// (4) roots by sent date; a dummy root with one child gives way to it.
	t.sortRoots()
	// (5) threads with the same base subject gathered.
	if t.gatherSubjects() {
		t.sortRoots()
	}
	// (6) children by sent date, as the tree is written out.
	return t.tree()
}

func (t *threader) newNode(msg int32) int32 {
	t.nodes = append(t.nodes, tnode{msg: msg, parent: -1, firstChild: -1, nextSibling: -1})
	return int32(len(t.nodes) - 1)
}

// nodeFor is the container of a Message-ID, a dummy until its message
// comes.
func (t *threader) nodeFor(id string) int32 {
	if n, ok := t.ids[id]; ok {
		return n
	}
	n := t.newNode(-1)
	t.ids[id] = n
	return n
}

func (t *threader) add(i int32) {
	m := &t.msgs[i]
	var self int32
	if id, ok := firstMessageID(m.MessageID); !ok {
		self = t.newNode(i)
	} else if n, ok := t.ids[id]; !ok {
		self = t.newNode(i)
		t.ids[id] = self
	} else if t.nodes[n].msg < 0 {
		self = n
		t.nodes[n].msg = i
	} else {
		// A duplicate Message-ID: the first message keeps it, this one
		// is threaded as if it had none.
		self = t.newNode(i)
	}
	// Each References entry is the parent of the next; the last is the
	// message's parent. Without References, the first In-Reply-To entry.
	parent := int32(-1)
	for j := 0; ; {
		id, next, ok := nextMessageID(m.References, j)
		if !ok {
			break
		}
		c := t.nodeFor(id)
		if parent >= 0 {
			t.link(parent, c)
		}
		parent, j = c, next
	}
	if parent < 0 {
		if id, ok := firstMessageID(m.InReplyTo); ok {
			parent = t.nodeFor(id)
		}
	}
	// The message itself says who its parent is: a parent guessed from
	// other messages' References gives way.
	if p := t.nodes[self].parent; p >= 0 && p != parent {
		t.nodes[self].parent = -1
	}
	if parent >= 0 {
		t.link(parent, self)
	}
}

// link makes p the parent of c unless c has a parent already (the first
// link wins) or c is p or one of its ancestors (a loop).
func (t *threader) link(p, c int32) {
	if p == c || t.nodes[c].parent >= 0 {
		return
	}
	// c is a root here, so it is p's ancestor exactly when it is the root
	// of p's tree; a node nobody points to cannot be.
	if t.nodes[c].hasChild {
		a := p
		for t.nodes[a].parent >= 0 {
			a = t.nodes[a].parent
		}
		if a == c {
			return
		}
	}
	t.nodes[c].parent = p
	t.nodes[p].hasChild = true
}

func (t *threader) addChild(p, c int32) {
	t.nodes[c].nextSibling = t.nodes[p].firstChild
	t.nodes[p].firstChild = c
}

func (t *threader) prune() {
	// up[d] caches, for a dummy d, the node its descendants hang under,
	// so long dummy chains are walked once, not once per message.
	up := make(map[int32]int32)
	var path []int32
	for n := range t.nodes {
		nd := &t.nodes[n]
		if nd.parent < 0 {
			t.roots = append(t.roots, troot{node: int32(n), dummy: nd.msg < 0, parentRoot: -1})
			continue
		}
		if nd.msg < 0 {
			continue
		}
		a := nd.parent
		path = path[:0]
		for t.nodes[a].msg < 0 && t.nodes[a].parent >= 0 {
			if u, ok := up[a]; ok {
				a = u
				break
			}
			path = append(path, a)
			a = t.nodes[a].parent
		}
		for _, d := range path {
			up[d] = a
		}
		t.addChild(a, int32(n))
	}
}

// sortedChildren returns the children of n by sent date then UID, in a
// scratch slice valid until the next call.
func (t *threader) sortedChildren(n int32) []int32 {
	t.kids = t.kids[:0]
	for c := t.nodes[n].firstChild; c >= 0; c = t.nodes[c].nextSibling {
		t.kids = append(t.kids, c)
	}
	if len(t.kids) > 1 {
		t.sortNodes(t.kids)
	}
	return t.kids
}

func (t *threader) sortNodes(s []int32) {
	slices.SortFunc(s, func(a, b int32) int {
		ma, mb := t.nodes[a].msg, t.nodes[b].msg
		if r := cmp.Compare(t.date[ma], t.date[mb]); r != 0 {
			return r
		}
		return cmp.Compare(t.msgs[ma].UID, t.msgs[mb].UID)
	})
}

func (t *threader) sortRoots() {
	for i := range t.roots {
		r := &t.roots[i]
		if r.ignore {
			continue
		}
		if r.dummy {
			kids := t.sortedChildren(r.node)
			switch len(kids) {
			case 0:
				r.ignore = true
				continue
			case 1:
				r.node = kids[0]
				r.dummy = false
			}
			m := t.nodes[kids[0]].msg
			r.date, r.uid = t.date[m], t.msgs[m].UID
			continue
		}
		m := t.nodes[r.node].msg
		r.date, r.uid = t.date[m], t.msgs[m].UID
	}
	slices.SortFunc(t.roots, func(a, b troot) int {
		if r := cmp.Compare(a.date, b.date); r != 0 {
			return r
		}
		return cmp.Compare(a.uid, b.uid)
	})
}

// gatherSubjects is step 5: roots whose thread subjects match are merged.
// It reports whether any were.
func (t *threader) gatherSubjects() bool {
	table := make(map[string]int32, len(t.roots))
	for i := range t.roots {
		r := &t.roots[i]
		if r.ignore {
			continue
		}
		m := t.nodes[r.node].msg
		if r.dummy {
			m = t.nodes[t.sortedChildren(r.node)[0]].msg
		}
		base, rf := BaseSubject(t.msgs[m].Subject)
		if base == "" {
			continue
		}
		if h, ok := table[base]; !ok {
			table[base] = int32(i)
		} else if hr := &t.roots[h]; !hr.dummy && (r.dummy || (hr.replyFwd && !rf)) {
			hr.parentRoot = int32(i)
			table[base] = int32(i)
		} else {
			r.parentRoot = h
		}
		r.replyFwd = rf
	}
	changed := false
	for i := 0; i < len(t.roots); i++ {
		if t.roots[i].parentRoot >= 0 && !t.roots[i].ignore {
			t.merge(int32(i))
			changed = true
		}
	}
	return changed
}

func (t *threader) merge(ci int32) {
	ri := t.roots[ci].parentRoot
	for t.roots[ri].parentRoot >= 0 {
		ri = t.roots[ri].parentRoot
	}
	cur, root := &t.roots[ci], &t.roots[ri]
	switch {
	case cur.dummy:
		// Both dummies: the children of both become siblings.
		for c := t.nodes[cur.node].firstChild; c >= 0; {
			next := t.nodes[c].nextSibling
			t.addChild(root.node, c)
			c = next
		}
		t.nodes[cur.node].firstChild = -1
		cur.ignore = true
	case root.dummy || (cur.replyFwd && !root.replyFwd):
		t.addChild(root.node, cur.node)
		cur.ignore = true
	default:
		// Neither is the other's reply: a new dummy holds both.
		d := t.newNode(-1)
		t.addChild(d, root.node)
		t.addChild(d, cur.node)
		root.parentRoot = int32(len(t.roots))
		root.ignore = true
		cur.ignore = true
		t.roots = append(t.roots, troot{node: d, dummy: true, parentRoot: -1})
	}
}

// tree writes the result out as Nodes, children sorted (step 6).
func (t *threader) tree() []*Node {
	pool := make([]Node, 0, len(t.msgs)+len(t.roots))
	ptrs := make([]*Node, 0, len(t.msgs)+len(t.roots))
	// Nodes and child lists come from a few large slices instead of one
	// allocation each; a full slice starts a new one, so pointers handed
	// out stay valid.
	alloc := func(n int32) *Node {
		if len(pool) == cap(pool) {
			pool = make([]Node, 0, 1024)
		}
		pool = append(pool, Node{})
		nd := &pool[len(pool)-1]
		if m := t.nodes[n].msg; m >= 0 {
			nd.Msg = &t.msgs[m]
		}
		return nd
	}
	var out []*Node
	type item struct {
		node int32
		nd   *Node
	}
	var stack []item
	for _, r := range t.roots {
		if r.ignore {
			continue
		}
		nd := alloc(r.node)
		out = append(out, nd)
		stack = append(stack[:0], item{r.node, nd})
		for len(stack) > 0 {
			it := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			kids := t.sortedChildren(it.node)
			if len(kids) == 0 {
				continue
			}
			if cap(ptrs)-len(ptrs) < len(kids) {
				ptrs = make([]*Node, 0, max(1024, len(kids)))
			}
			start := len(ptrs)
			for _, k := range kids {
				c := alloc(k)
				ptrs = append(ptrs, c)
				stack = append(stack, item{k, c})
			}
			it.nd.Children = ptrs[start:len(ptrs):len(ptrs)]
		}
	}
	return out
}
