package main

import (
	"context"
	"io"
	"testing"

	"cel.dev/cel-go/common/types"

	"github.com/unwindd/unwindd/sdk"
)

// benchFilter is the predicate BenchmarkMatch measures, in CEL; matchGo
// is the same by hand.
const benchFilter = `comm == "bash" && args.fd == 1 && args.count > 100`

// matchGo is benchFilter written in Go on the event's fields, as a plugin
// without CEL would: the baseline.
func matchGo(ev *sdk.Event) bool {
	if ev.Kind != sdk.KindSyscallEnter || ev.Name != "write" {
		return false
	}
	var fd, count uint64
	for i := range ev.Fields {
		switch ev.Fields[i].Name {
		case "args[0]":
			fd = ev.Fields[i].Uint
		case "args[2]":
			count = ev.Fields[i].Uint
		}
	}
	return ev.Comm == "bash" && int64(uint32(fd)) == 1 && int64(count) > 100
}

// BenchmarkMatch measures one program's probe and filter on a write(2)
// event (the hot path: every program runs on every event): cel with the
// plugin's activation, which reads the event in place; cel-map with CEL's
// usual map of variables, made per event; go, the same predicate written
// by hand, the baseline. The -miss runs have an event of another syscall,
// which the probe rejects before any CEL runs.
func BenchmarkMatch(b *testing.B) {
	p := compileOne(b, "{probe: 'syscall:write', filter: '"+benchFilter+"'}", false)
	hit := with(enter("write", 1, 1, 0x7ffc0000, 4096), "bash", 4242, 4242, 0)
	miss := enter("read", 0, 1, 0x7ffc0000, 4096)
	b.Run("cel", func(b *testing.B) {
		a := newActivation()
		b.ReportAllocs()
		for b.Loop() {
			a.reset(&hit)
			if ok, err := p.matches(a); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	// The same program with the plain activation: a map of every variable
	// the probe declares, made per event.
	b.Run("cel-map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ev := &hit
			var regs [6]int64
			for i := range ev.Fields {
				if n := ev.Fields[i].Name; len(n) == 7 && n[:5] == "args[" {
					regs[n[5]-'0'] = int64(ev.Fields[i].Uint)
				}
			}
			vars := map[string]any{
				"pid": int64(ev.PID), "tid": int64(ev.TID), "cpu": int64(ev.CPU), "comm": ev.Comm, "probe": "syscall:" + ev.Name,
				"args": regs[:], "arg0": regs[0], "arg1": regs[1], "arg2": regs[2], "arg3": regs[3], "arg4": regs[4], "arg5": regs[5],
				"args.fd": int64(uint32(regs[0])), "args.buf": regs[1], "args.count": regs[2],
			}
			if !p.probe.match(ev) {
				b.Fatal("no match")
			}
			v, _, err := p.filter.Eval(vars)
			if err != nil || v != types.True {
				b.Fatal(v, err)
			}
		}
	})
	b.Run("go", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !matchGo(&hit) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("cel-miss", func(b *testing.B) {
		a := newActivation()
		b.ReportAllocs()
		for b.Loop() {
			a.reset(&miss)
			if ok, _ := p.matches(a); ok {
				b.Fatal("match")
			}
		}
	})
	b.Run("go-miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if matchGo(&miss) {
				b.Fatal("match")
			}
		}
	})
}

// BenchmarkEvents measures Events on batches of 256 syscall events over
// the three programs of the end-to-end test (a count by comm, a filtered
// histogram by comm, a count by ustack whose events wait for a stack):
// the cost per event of the whole plugin, with its map updates.
func BenchmarkEvents(b *testing.B) {
	tr := newTracer()
	tr.tracefs, tr.stderr = nil, io.Discard
	d := b.TempDir()
	_, err := tr.Describe(context.Background(), sdk.DescribeInfo{Config: []byte("out: " + d + "\ninterval: 0\nmax_pending: 1024\n" + `programs:
  - {probe: 'syscall:openat', by: [comm]}
  - {probe: 'syscall:write', filter: 'args.fd == 42', aggregate: hist(args.count), by: [comm]}
  - {probe: 'syscall:getpid', by: [ustack]}
`)})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	batch := make([]sdk.Event, 256)
	for i := range batch {
		switch i % 4 {
		case 0:
			batch[i] = enter("openat", 257, 0xffffff9c, 0, 0)
		case 1, 2:
			batch[i] = enter("write", 1, 42, 0, uint64(i))
		default:
			batch[i] = exit("write", 1, 1)
		}
		batch[i].Comm = "app"
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := tr.Events(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
}
