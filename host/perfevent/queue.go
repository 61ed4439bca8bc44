package perfevent

// item is a record read from a ring (or synthesized), queued for time
// ordering.
type item struct {
	time  uint64
	seq   uint64 // read order: ties in time come out in it
	raw   []byte // the record: in the ring, in its wrap buffer, or synthesized
	ring  int32  // index of its ring; -1 once copied out of it (spilled) or synthesized
	rseq  uint64 // its sequence number in its ring (ring.release)
	pos   uint64 // its position in its ring
	chunk *chunk // the spill chunk holding raw, for a spilled record
	// synth marks a record synthesized at Open: older than any kernel
	// record, it may be delivered at once.
	synth bool
}

func (a *item) less(b *item) bool { return a.time < b.time || a.time == b.time && a.seq < b.seq }

// queue is a binary min-heap of items by (time, seq).
type queue struct{ items []item }

func (q *queue) len() int   { return len(q.items) }
func (q *queue) top() *item { return &q.items[0] }

func (q *queue) push(it item) {
	q.items = append(q.items, it)
	h := q.items
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].less(&h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *queue) pop() item {
	h := q.items
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = item{} // drop the reference to its bytes
	h = h[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h[r].less(&h[l]) {
			m = r
		}
		if !h[m].less(&h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	q.items = h
	return top
}
