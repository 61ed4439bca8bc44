package pluginhost

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/unwindd/unwindd/host/deferred"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// BenchmarkDecide measures what a decide-mode plugin costs a kernel entry:
// one op opens an entry, dispatches one syscall event to the plugin (a real
// process: go-plugin, mTLS, the sdk's Decide) and ends the entry, which
// asks the plugin and waits for its answer (yes: odd tids), then closes
// it. The baselines run in the same run, with the same DecideRequest to a
// process that answers yes at once over plain gRPC on a Unix socket (no
// go-plugin, no TLS, no engine): raw-unary as a unary call (what the host
// did before the Decisions stream), raw-stream as a message each way on
// one stream (what the host does now, less the rest).
func BenchmarkDecide(b *testing.B) {
	b.Run("plugin", func(b *testing.B) { benchDecidePlugin(b, false) })
	// plugin-locked: the asking goroutine locked to its OS thread, as the
	// ptrace source's is (every ptrace call must come from one thread).
	b.Run("plugin-locked", func(b *testing.B) { benchDecidePlugin(b, true) })
	b.Run("raw-stream", func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stream, err := pluginpb.NewTracerClient(startRawServer(b)).Decisions(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			ev := decideEvent(i)
			e := &pluginpb.DecideEntry{Key: 1, Pid: 1, Tid: 1, Events: []*pluginpb.Event{toPB(&ev, 1, 1, 0)}}
			if err := stream.Send(&pluginpb.DecideRequest{Entries: []*pluginpb.DecideEntry{e}, Seq: uint64(i + 1), BudgetNs: uint64(time.Second)}); err != nil {
				b.Fatal(err)
			}
			if resp, err := stream.Recv(); err != nil || resp.GetSeq() != uint64(i+1) {
				b.Fatalf("decisions: %v %v", resp, err)
			}
		}
		b.StopTimer()
		stream.CloseSend()
	})
	b.Run("raw-unary", func(b *testing.B) {
		client := pluginpb.NewTracerClient(startRawServer(b))
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			ev := decideEvent(i)
			// As instance.decide builds it.
			e := &pluginpb.DecideEntry{Key: 1, Pid: 1, Tid: 1, Events: []*pluginpb.Event{toPB(&ev, 1, 1, 0)}}
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			resp, err := client.Decide(dctx, &pluginpb.DecideRequest{Entries: []*pluginpb.DecideEntry{e}})
			cancel()
			if err != nil || len(resp.GetWant()) != 1 {
				b.Fatalf("decide: %v %v", resp, err)
			}
		}
	})
}

// benchDecidePlugin is BenchmarkDecide/plugin; locked locks the asking
// goroutine to its OS thread first.
func benchDecidePlugin(b *testing.B, locked bool) {
	if locked {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	m, eng, _, stop := benchManager(b, nil, "MODE=decide", "SUBS=sys:write")
	defer stop()
	tk, err := eng.AddTask(1, 1, deferred.KindUser)
	if err != nil {
		b.Fatal(err)
	}
	defer tk.Exit()
	d := m.Dispatcher()
	regs, snap, _ := synthStack(4, 0x500000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := tk.Open(eng.Shard(0), regs, snap); err != nil {
			b.Fatal(err)
		}
		d.Event(tk, decideEvent(i))
		d.EndEntry(tk)
		tk.Close()
	}
	b.StopTimer()
	st := m.Stats()[0]
	if st.DecideCalls != uint64(b.N) || st.DecideTimeouts+st.DecideErrors != 0 {
		b.Fatalf("%d ops: %d decide calls, %d timeouts, %d errors", b.N, st.DecideCalls, st.DecideTimeouts, st.DecideErrors)
	}
}

// decideEvent is a write(2) entry's event, with its fields as a source
// gives them.
func decideEvent(i int) Event {
	return Event{Kind: KindSyscallEnter, Name: "write", TimeNS: uint64(i), CPU: 1, Comm: "bench",
		Fields: []Field{{Name: "id", Kind: FieldInt, Int: 1}, {Name: "args[0]", Kind: FieldUint, Uint: 1},
			{Name: "args[1]", Kind: FieldUint, Uint: 0x7ffd0000}, {Name: "args[2]", Kind: FieldUint, Uint: 64}}}
}
