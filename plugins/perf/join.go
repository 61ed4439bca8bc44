package main

import "github.com/unwindd/unwindd/sdk"

// sample is one cpu-clock sample, waiting for its stack or written out.
type sample struct {
	Name   string // the event's name ("cpu-clock")
	Comm   string
	PID    int32
	TID    int32
	CPU    int32
	Time   uint64 // ns, the host's event clock
	Period uint64 // ns
}

// sink receives samples as the joiner releases them: with the stack of
// their kernel entry, or with st nil when that stack never came. samples
// is only valid during the call.
type sink func(samples []sample, st *sdk.Stack)

// joinStats counts what the joiner did with the samples it was given. Every
// sample ends up in exactly one of Joined, Lost, Unjoined or Pending.
type joinStats struct {
	Samples      uint64 // samples given to add
	Stacks       uint64 // stacks given to stack
	Joined       uint64 // samples released with their stack
	Lost         uint64 // samples dropped because a lost notice named their cookie
	Unjoined     uint64 // samples released without a stack (NoCookie + Evicted + AtClose)
	NoCookie     uint64 // … because no stack was requested for them (cookie 0)
	Evicted      uint64 // … because they waited too long or too many were waiting
	AtClose      uint64 // … because their stack had not come when the plugin closed
	OrphanStacks uint64 // stacks with no pending sample (lost, evicted, or none taken)
	Pending      int    // samples waiting now
}

// pendingEntry is the samples of one kernel entry waiting for its stack.
type pendingEntry struct {
	samples []sample
	gen     uint64 // tells this entry from an older use of it in the queue; 0 once released
}

// queued is one entry of the joiner's arrival queue.
type queued struct {
	e      *pendingEntry
	cookie uint64
	gen    uint64
	first  uint64 // the entry's first sample time
}

// joiner joins samples to stacks by cookie. The host sends every event of
// a cookie before its stack, so samples wait in a map until the stack
// comes; a lost notice drops the cookies it names. The map is bounded: an
// entry whose first sample is older than maxWait (in sample time: the
// newest event time seen; a stack's time is the host's clock, not the
// source's, so it does not advance it) or, beyond maxPending waiting samples,
// the oldest entry, is released without a stack and counted as evicted.
//
// A joiner is not safe for concurrent use.
type joiner struct {
	maxPending int
	maxWait    uint64 // ns
	out        sink

	pending map[uint64]*pendingEntry
	queue   []queued // entries in arrival order; may hold entries since joined or dropped
	head    int      // queue[:head] is consumed
	gen     uint64
	now     uint64 // newest event time seen
	stats   joinStats

	free []*pendingEntry // released entries, for reuse
	one  [1]sample       // scratch: a sample released alone
}

func newJoiner(maxPending int, maxWait uint64, out sink) *joiner {
	return &joiner{maxPending: maxPending, maxWait: maxWait, out: out, pending: make(map[uint64]*pendingEntry)}
}

// add takes one sample of the kernel entry cookie (0: no stack was
// requested, so the sample is released at once without one).
func (j *joiner) add(cookie uint64, s sample) {
	j.stats.Samples++
	j.advance(s.Time)
	if cookie == 0 {
		j.stats.NoCookie++
		j.stats.Unjoined++
		j.one[0] = s
		j.out(j.one[:], nil)
		j.one[0] = sample{}
		return
	}
	e := j.pending[cookie]
	if e == nil {
		j.gen++
		if n := len(j.free); n > 0 {
			e, j.free = j.free[n-1], j.free[:n-1]
			e.gen = j.gen
		} else {
			e = &pendingEntry{gen: j.gen}
		}
		j.pending[cookie] = e
		j.queue = append(j.queue, queued{e: e, cookie: cookie, gen: e.gen, first: s.Time})
	}
	e.samples = append(e.samples, s)
	j.stats.Pending++
	j.evict()
}

// stack releases the samples waiting for st's cookie with it.
func (j *joiner) stack(st *sdk.Stack) {
	j.stats.Stacks++
	e := j.pending[st.Cookie]
	if e == nil {
		j.stats.OrphanStacks++
		j.evict()
		return
	}
	delete(j.pending, st.Cookie)
	j.stats.Pending -= len(e.samples)
	j.stats.Joined += uint64(len(e.samples))
	j.out(e.samples, st)
	j.recycle(e)
	j.evict()
}

// recycle keeps e, released and out of the map, for a later entry.
func (j *joiner) recycle(e *pendingEntry) {
	e.gen = 0
	if cap(e.samples) > 64 || len(j.free) >= 1024 {
		return // let an unusually large or surplus entry go
	}
	clear(e.samples)
	e.samples = e.samples[:0]
	j.free = append(j.free, e)
}

// lost drops the samples waiting for the named cookies.
func (j *joiner) lost(cookies []uint64) {
	for _, c := range cookies {
		if e := j.pending[c]; e != nil {
			delete(j.pending, c)
			j.stats.Pending -= len(e.samples)
			j.stats.Lost += uint64(len(e.samples))
			j.recycle(e)
		}
	}
}

// flush releases every waiting sample without a stack, oldest entry first
// (the plugin is closing).
func (j *joiner) flush() {
	for ; j.head < len(j.queue); j.head++ {
		q := j.queue[j.head]
		if e := j.live(q); e != nil {
			j.release(q.cookie, e)
			j.stats.AtClose += uint64(len(e.samples))
			j.recycle(e)
		}
	}
	j.queue, j.head = j.queue[:0], 0
}

func (j *joiner) advance(t uint64) {
	if t > j.now {
		j.now = t
	}
}

// live returns q's entry if it is still waiting: an entry leaving the map
// gets gen 0, and a reused one a new gen.
func (j *joiner) live(q queued) *pendingEntry {
	if q.e.gen == q.gen {
		return q.e
	}
	return nil
}

// release hands e's samples on without a stack.
func (j *joiner) release(cookie uint64, e *pendingEntry) {
	delete(j.pending, cookie)
	j.stats.Pending -= len(e.samples)
	j.stats.Unjoined += uint64(len(e.samples))
	j.out(e.samples, nil)
}

// evict releases the oldest entries while too many samples wait or the
// oldest waited longer than maxWait, and keeps the queue's dead entries
// from piling up.
func (j *joiner) evict() {
	for j.head < len(j.queue) {
		q := j.queue[j.head]
		e := j.live(q)
		if e != nil && j.stats.Pending <= j.maxPending && j.now-q.first <= j.maxWait {
			break
		}
		if e != nil {
			j.release(q.cookie, e)
			j.stats.Evicted += uint64(len(e.samples))
			j.recycle(e)
		}
		j.queue[j.head] = queued{}
		j.head++
	}
	// Drop the consumed prefix, and the dead entries behind a young live
	// one, once they outnumber the live entries: the queue stays within a
	// small multiple of the map.
	if dead := len(j.queue) - len(j.pending); dead > 1024 && dead > 2*len(j.pending) {
		live := j.queue[:0]
		for _, q := range j.queue[j.head:] {
			if j.live(q) != nil {
				live = append(live, q)
			}
		}
		clear(j.queue[len(live):])
		j.queue, j.head = live, 0
	}
}
