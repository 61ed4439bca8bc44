package deferred

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// stack builds a synthetic user stack of n frame-pointer frames: a snapshot
// whose base is the leaf's sp, and the registers to start from. The return
// addresses are ret0+i; the outermost frame's return address is 0.
func stack(n int, ret0 uint64) (x86_64.Regs, *x86_64.Snapshot) {
	const base = 0x7ffe0000
	data := make([]byte, 16*n+32)
	// Frame i's saved bp and return address live at base+16+16*i.
	for i := 0; i < n; i++ {
		off := 16 + 16*i
		nextBP := uint64(base + 16 + 16*(i+1))
		ra := ret0 + uint64(i)
		if i == n-1 {
			ra, nextBP = 0, 0
		}
		binary.LittleEndian.PutUint64(data[off:], nextBP)
		binary.LittleEndian.PutUint64(data[off+8:], ra)
	}
	return x86_64.Regs{IP: 0x401000, SP: base, BP: base + 16}, &x86_64.Snapshot{Base: base, Data: data}
}

// countingMem counts the reads a walk makes, to tell how many walks ran.
type countingMem struct {
	x86_64.Memory
	reads atomic.Int64
}

func (m *countingMem) ReadAt(p []byte, off int64) (int, error) {
	m.reads.Add(1)
	return m.Memory.ReadAt(p, off)
}

// call is one callback as a test saw it.
type call struct {
	tracer string
	tid    int32
	cookie Cookie
	pcs    []uint64
}

// recorder collects callbacks from any number of tracers.
type recorder struct {
	mu    sync.Mutex
	calls []call
}

func (r *recorder) cb(name string) Callback {
	return func(t *Task, trace *x86_64.Trace, c Cookie) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls = append(r.calls, call{name, t.TID(), c, trace.PCs(nil)})
	}
}

func (r *recorder) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n []string
	for _, c := range r.calls {
		n = append(n, c.tracer)
	}
	return n
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.calls = nil
	r.mu.Unlock()
}

func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustRegister(t testing.TB, e *Engine, name string, cb Callback) *Tracer {
	t.Helper()
	tr, err := e.Register(name, cb)
	if err != nil {
		t.Fatalf("Register(%q): %v", name, err)
	}
	return tr
}

func mustTask(t testing.TB, e *Engine, tid int32, kind TaskKind) *Task {
	t.Helper()
	tk, err := e.AddTask(tid, tid, kind)
	if err != nil {
		t.Fatalf("AddTask(%d): %v", tid, err)
	}
	return tk
}

// openStack opens an entry of tk on shard 0 with an n-frame stack.
func openStack(t testing.TB, e *Engine, tk *Task, n int) {
	t.Helper()
	regs, snap := stack(n, 0x402000)
	if err := tk.Open(e.Shard(0), regs, snap); err != nil {
		t.Fatalf("Open: %v", err)
	}
}

// request makes a request that must succeed and returns its result.
func request(t testing.TB, tk *Task, tr *Tracer) (int, Cookie) {
	t.Helper()
	ret, c, err := tk.Request(tr)
	if err != nil {
		t.Fatalf("Request(%s): %v", tr.Name(), err)
	}
	return ret, c
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
