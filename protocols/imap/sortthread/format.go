package sortthread

import "strconv"

// AppendThreads appends the THREAD response data of RFC 5256 for threads,
// "(1 2)(3 (4)(5))", without the "* THREAD " in front: a message with one
// child is followed by it in the same list, one with several opens a
// nested list per child, and a dummy root writes no number. With uid set
// the numbers are UIDs (UID THREAD), else sequence numbers.
func AppendThreads(dst []byte, threads []*Node, uid bool) []byte {
	type frame struct {
		kids []*Node
	}
	var stack []frame
	for _, root := range threads {
		dst = append(dst, '(')
		n := root
		for {
			// Write the chain of only children, then open the
			// branches of the first node with several.
			for {
				if n.Msg != nil {
					if dst[len(dst)-1] != '(' {
						dst = append(dst, ' ')
					}
					if uid {
						dst = strconv.AppendUint(dst, uint64(n.Msg.UID), 10)
					} else {
						dst = strconv.AppendUint(dst, uint64(n.Msg.Seq), 10)
					}
				}
				if len(n.Children) != 1 {
					break
				}
				n = n.Children[0]
			}
			if len(n.Children) > 1 {
				if n.Msg != nil {
					dst = append(dst, ' ')
				}
				stack = append(stack, frame{n.Children[1:]})
				dst = append(dst, '(')
				n = n.Children[0]
				continue
			}
			// A leaf: close lists until a pending sibling is found.
			dst = append(dst, ')')
			for len(stack) > 0 && len(stack[len(stack)-1].kids) == 0 {
				stack = stack[:len(stack)-1]
				dst = append(dst, ')')
			}
			if len(stack) == 0 {
				break
			}
			top := &stack[len(stack)-1]
			n = top.kids[0]
			top.kids = top.kids[1:]
			dst = append(dst, '(')
		}
	}
	return dst
}

// FormatThreads is AppendThreads into a new string.
func FormatThreads(threads []*Node, uid bool) string {
	return string(AppendThreads(nil, threads, uid))
}
