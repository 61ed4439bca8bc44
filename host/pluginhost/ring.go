package pluginhost

import (
	"sync/atomic"
)

// ring is a plugin's outbox: a bounded multi-producer, single-consumer
// queue of items (D. Vyukov's bounded queue). A push takes no lock and never
// blocks: it claims a position with one compare-and-swap and publishes the
// item with its slot's sequence number; a full ring refuses. The consumer
// (the sender goroutine) pops without a lock or a compare-and-swap. A
// channel did the same with a lock taken by both sides for every item,
// which was a fifth of the host's delivery CPU (BenchmarkDeliver/interned's
// profile).
//
// The consumer sleeps on ready when the ring is empty: it sets sleeping,
// looks again, and only then waits; a producer signals ready after a push
// only if sleeping is set. Go's atomics are sequentially consistent, so
// either the consumer's second look sees the item or the producer sees
// sleeping.
type ring struct {
	slots []ringSlot
	n     uint64

	_        [64]byte // keep the producers' line apart from the consumer's
	tail     atomic.Uint64
	_        [56]byte
	head     uint64        // the consumer's next position
	headPub  atomic.Uint64 // head, for len
	sleeping atomic.Bool
	ready    chan struct{} // cap 1
}

type ringSlot struct {
	seq atomic.Uint64 // pos: free for the push at pos; pos+1: holds the item pushed at pos
	it  item
}

func newRing(n int) *ring {
	r := &ring{slots: make([]ringSlot, n), n: uint64(n), ready: make(chan struct{}, 1)}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// push queues it, or reports false if the ring is full.
func (r *ring) push(it *item) bool {
	pos := r.tail.Load()
	for {
		s := &r.slots[pos%r.n]
		switch d := int64(s.seq.Load() - pos); {
		case d == 0:
			if r.tail.CompareAndSwap(pos, pos+1) {
				s.it = *it
				s.seq.Store(pos + 1)
				if r.sleeping.Load() {
					select {
					case r.ready <- struct{}{}:
					default:
					}
				}
				return true
			}
			pos = r.tail.Load()
		case d < 0:
			return false // the slot still holds the item pushed a lap ago
		default:
			pos = r.tail.Load() // another producer took pos
		}
	}
}

// pop takes the oldest item, if any. Only the consumer calls it.
func (r *ring) pop(it *item) bool {
	s := &r.slots[r.head%r.n]
	if s.seq.Load() != r.head+1 {
		return false
	}
	*it = s.it
	s.it = item{} // let its strings and stack go
	s.seq.Store(r.head + r.n)
	r.head++
	r.headPub.Store(r.head)
	return true
}

// sleep prepares the consumer to wait on r.ready: it reports false, and
// the consumer must not wait, if an item arrived meanwhile. After waking,
// the consumer calls awake.
func (r *ring) sleep() bool {
	r.sleeping.Store(true)
	if r.slots[r.head%r.n].seq.Load() == r.head+1 {
		r.sleeping.Store(false)
		return false
	}
	return true
}

func (r *ring) awake() { r.sleeping.Store(false) }

// len is the number of items queued (approximate while pushes and pops run).
func (r *ring) len() int {
	t, h := r.tail.Load(), r.headPub.Load()
	if t < h {
		return 0
	}
	return int(t - h)
}

func (r *ring) cap() int { return int(r.n) }
