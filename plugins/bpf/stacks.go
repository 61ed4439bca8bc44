package main

import (
	"path/filepath"
	"strconv"
	"strings"

	"github.com/unwindd/unwindd/sdk"
)

// The stacks of events whose stack did not come, in the ustack part of
// their key.
const (
	stackLost    = "[lost]"     // the host dropped the entry's stack (a lost notice named its cookie)
	stackNone    = "[no stack]" // no stack was requested (no cookie), or it did not come in time
	stackFrameNL = " "          // what a newline inside a frame name becomes
)

// frameName is a frame as bpftrace prints a ustack frame: the function and
// the offset in it ("main+22"); without a symbol, the mapped file's base
// name and the offset of the address in the file ("libc.so.6+0x29d8f");
// outside any file, the address ("0x7ffd2c1f6b7a").
func frameName(f *sdk.Frame) string {
	switch {
	case f.Function != "":
		return strings.ReplaceAll(f.Function, "\n", stackFrameNL) + "+" + strconv.FormatUint(f.Offset, 10)
	case f.Mapping != nil && f.Mapping.Path != "":
		off := f.Addr - f.Mapping.Start + f.Mapping.Offset
		return strings.ReplaceAll(filepath.Base(f.Mapping.Path), "\n", stackFrameNL) + "+0x" + strconv.FormatUint(off, 16)
	}
	return "0x" + strconv.FormatUint(f.Addr, 16)
}

// stackKey is the ustack part of a key for s: its frames, leaf first, one
// per line; a stack without frames is "[" + why its walk ended + "]".
func stackKey(s *sdk.Stack) string {
	if len(s.Frames) == 0 {
		return "[" + s.End.String() + "]"
	}
	var b strings.Builder
	for i := range s.Frames {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(frameName(&s.Frames[i]))
	}
	return b.String()
}

// stackCache remembers the key of the stacks seen, by their frames' array:
// the SDK decodes an interned stack once and shares its frames between the
// Stacks that repeat it. It holds at most maxStackCache stacks, then
// starts over.
type stackCache struct {
	keys map[stackID]string
}

// stackID names a frames array: its first element and length.
type stackID struct {
	first *sdk.Frame
	n     int
}

const maxStackCache = 4096

// key returns stackKey(s), made once per distinct frames array.
func (c *stackCache) key(s *sdk.Stack) string {
	if len(s.Frames) == 0 {
		return stackKey(s)
	}
	id := stackID{&s.Frames[0], len(s.Frames)}
	if k, ok := c.keys[id]; ok {
		return k
	}
	if c.keys == nil || len(c.keys) >= maxStackCache {
		c.keys = make(map[stackID]string)
	}
	k := stackKey(s)
	c.keys[id] = k
	return k
}

// pendingEvent is an event of a ustack program waiting for its entry's
// stack: where it goes, its key (the ustack part left empty) and value.
type pendingEvent struct {
	m   *bpfMap
	key []keyVal
	val int64
}

// pending holds the events waiting for their stack, by cookie, at most max
// entries; the oldest entry is evicted first, in the order entries were
// first seen.
type pending struct {
	max     int
	byCook  map[uint64][]pendingEvent
	order   []uint64 // cookies in arrival order, from head; some already gone
	head    int
	Evicted uint64 // entries evicted before their stack came
}

func newPending(max int) *pending {
	return &pending{max: max, byCook: make(map[uint64][]pendingEvent)}
}

// add holds e for cookie; when that makes too many entries, the oldest is
// returned (with ok) for the caller to aggregate without a stack.
func (p *pending) add(cookie uint64, e pendingEvent) (old []pendingEvent, ok bool) {
	evs, seen := p.byCook[cookie]
	p.byCook[cookie] = append(evs, e)
	if seen {
		return nil, false
	}
	p.order = append(p.order, cookie)
	if live := len(p.order) - p.head; live > 2*len(p.byCook)+1024 {
		p.rebuild()
	}
	if len(p.byCook) <= p.max {
		return nil, false
	}
	for p.head < len(p.order) {
		c := p.order[p.head]
		p.head++
		if evs, ok := p.byCook[c]; ok {
			delete(p.byCook, c)
			p.Evicted++
			p.compact()
			return evs, true
		}
	}
	return nil, false
}

// take removes and returns the events of cookie.
func (p *pending) take(cookie uint64) ([]pendingEvent, bool) {
	evs, ok := p.byCook[cookie]
	if ok {
		delete(p.byCook, cookie)
		if len(p.byCook) == 0 {
			p.order, p.head = p.order[:0], 0
		}
	}
	return evs, ok
}

// compact drops the consumed head of order once it is most of it.
func (p *pending) compact() {
	if p.head > 1024 && p.head > len(p.order)/2 {
		n := copy(p.order, p.order[p.head:])
		p.order, p.head = p.order[:n], 0
	}
}

// rebuild drops the cookies from order whose entries are gone (their
// stack came), so that order stays proportional to what waits.
func (p *pending) rebuild() {
	n := 0
	for _, c := range p.order[p.head:] {
		if _, ok := p.byCook[c]; ok {
			p.order[n] = c
			n++
		}
	}
	p.order, p.head = p.order[:n], 0
}

// drain removes and yields every entry, oldest first.
func (p *pending) drain(yield func(cookie uint64, evs []pendingEvent)) {
	for _, c := range p.order[p.head:] {
		if evs, ok := p.byCook[c]; ok {
			delete(p.byCook, c)
			yield(c, evs)
		}
	}
	p.order, p.head = p.order[:0], 0
}

// len is the number of entries waiting.
func (p *pending) len() int { return len(p.byCook) }
