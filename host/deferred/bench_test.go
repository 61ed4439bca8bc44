package deferred

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// paddedWord keeps each goroutine's word on its own cache line, as each
// task's mask is in BenchmarkRequest/parallel.
type paddedWord struct {
	atomic.Uint64
	_ [56]byte
}

// BenchmarkAtomicOr is the baseline of BenchmarkRequest: a bare fetch-or, the
// one atomic a request makes (R9).
func BenchmarkAtomicOr(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		var w paddedWord
		var sink uint64
		for i := 0; b.Loop(); i++ {
			sink += w.Or(uint64(1) << (i & 63)) // uses the old value, as a request does
		}
		_ = sink
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := new(paddedWord)
			var sink uint64
			for i := 0; pb.Next(); i++ {
				sink += w.Or(uint64(1) << (i & 63))
			}
			_ = sink
		})
	})
}

func BenchmarkRequest(b *testing.B) {
	nop := func(*Task, *x86_64.Trace, Cookie) {}
	regs, snap := stack(8, 0x401000)

	// first: the first request of an entry, which mints the cookie and
	// schedules the work. Entries are reopened off the clock in batches.
	b.Run("first", func(b *testing.B) {
		e := newEngine(b, Options{Shards: 1})
		tr := mustRegister(b, e, "a", nop)
		const pool = 256 // tasks that stay in cache, as the baseline's word does
		tasks := make([]*Task, pool)
		for i := range tasks {
			tasks[i] = mustTask(b, e, int32(i+1), KindUser)
			tasks[i].Open(e.Shard(0), regs, snap)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == pool {
				b.StopTimer()
				for _, tk := range tasks {
					tk.reset()
				}
				i = 0
				b.StartTimer()
			}
			if ret, _, _ := tasks[i].Request(tr); ret != 0 {
				b.Fatalf("first request returned %d", ret)
			}
			i++
		}
	})

	// repeat: the same tracer again in the same entry: 1, no second callback.
	b.Run("repeat", func(b *testing.B) {
		e := newEngine(b, Options{Shards: 1})
		tr := mustRegister(b, e, "a", nop)
		tk := mustTask(b, e, 1, KindUser)
		tk.Open(e.Shard(0), regs, snap)
		tk.Request(tr)
		b.ReportAllocs()
		for b.Loop() {
			if ret, _, _ := tk.Request(tr); ret != 1 {
				b.Fatalf("repeat request returned %d", ret)
			}
		}
	})

	// parallel: every goroutine requests on its own task, each request a
	// newly queued one (62 tracers in turn, then the entry is reset), so
	// every op is a real fetch-or on a mask, as in BenchmarkAtomicOr/parallel.
	b.Run("parallel", func(b *testing.B) {
		e := newEngine(b, Options{Shards: 64})
		var trs []*Tracer
		for i := 0; i < MaxTracers; i++ {
			trs = append(trs, mustRegister(b, e, fmt.Sprint(i), nop))
		}
		var next atomic.Int32
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			id := next.Add(1)
			tk := mustTask(b, e, id, KindUser)
			tk.Open(e.Shard(int(id)%e.Shards()), regs, snap)
			k := 0
			for pb.Next() {
				if ret, _, _ := tk.Request(trs[k]); ret != 0 {
					panic(fmt.Sprintf("request returned %d", ret))
				}
				if k++; k == MaxTracers {
					tk.mask.Store(0) // a new entry, without the cost of running 62 callbacks
					k = 0
				}
			}
		})
	})

	// remote: Engine.Request from another goroutine's point of view: the
	// tid lookup and the pin that keeps it safe against Close.
	b.Run("remote", func(b *testing.B) {
		e := newEngine(b, Options{Shards: 1})
		tr := mustRegister(b, e, "a", nop)
		for i := int32(1); i <= 1024; i++ {
			mustTask(b, e, i, KindUser).Open(e.Shard(0), regs, snap)
		}
		b.ReportAllocs()
		var tid int32
		for b.Loop() {
			tid = tid%1024 + 1
			if _, _, err := e.Request(tr, tid); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEntry is one whole kernel entry: open, 3 tracers request, close
// with an 8-frame unwind (walked once, cached for the other two), 3
// callbacks.
func BenchmarkEntry(b *testing.B) {
	e := newEngine(b, Options{Shards: 1})
	var frames int
	cb := func(_ *Task, tr *x86_64.Trace, _ Cookie) { frames += len(tr.Frames) }
	trs := []*Tracer{mustRegister(b, e, "a", cb), mustRegister(b, e, "b", cb), mustRegister(b, e, "c", cb)}
	tk := mustTask(b, e, 1, KindUser)
	regs, snap := stack(8, 0x401000)
	s := e.Shard(0)
	b.ReportAllocs()
	for b.Loop() {
		if err := tk.Open(s, regs, snap); err != nil {
			b.Fatal(err)
		}
		for _, tr := range trs {
			tk.Request(tr)
		}
		tk.Close()
	}
	if want := 3 * 8 * b.N; frames != want {
		b.Fatalf("callbacks saw %d frames, want %d", frames, want)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/entry")
}
