package pluginhost

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/deferred"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

const benchEvents = 4 // events per entry; every entry's stack has 16 frames

// benchStack returns entry i's 16-frame stack: distinct per entry, or one of
// 64 repeated ones.
func benchStack(i int, distinct bool, pool []synth) (x86_64.Regs, *x86_64.Snapshot, []uint64) {
	if !distinct {
		s := &pool[i%len(pool)]
		return s.regs, s.snap, s.pcs
	}
	return synthStack(16, 0x500000+uint64(i)*0x40)
}

func benchPool() []synth {
	pool := make([]synth, 64)
	for j := range pool {
		r, s, pcs := synthStack(16, 0x500000+uint64(j)*0x1000)
		pool[j] = synth{r, s, pcs}
	}
	return pool
}

// BenchmarkDeliver measures the whole path: a synthetic source opens
// entries with 4 cpu-clock samples each, the engine unwinds, the manager
// batches, interns and sends to a real plugin process (go-plugin, mTLS,
// sdk decoding, acknowledgements). One op is one entry (4 events, 1 stack).
func BenchmarkDeliver(b *testing.B) {
	for _, tc := range []struct {
		name     string
		distinct bool
	}{{"distinct", true}, {"interned", false}} {
		b.Run(tc.name, func(b *testing.B) { benchDeliver(b, tc.distinct) })
	}
}

func benchDeliver(b *testing.B, distinct bool) {
	eng, err := deferred.New(deferred.Options{Shards: 1})
	if err != nil {
		b.Fatal(err)
	}
	s := spec("bench", b.TempDir(), "MODE=always", "SUBS=sample")
	s.OutboxSize = 1 << 16
	m, err := New(eng, []Spec{s}, Options{}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); m.Stats()[0].State != StateRunning; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("plugin not running: %+v", m.Stats())
		}
	}
	in := (*m.live.Load())[0]
	tk, err := eng.AddTask(1, 1, deferred.KindUser)
	if err != nil {
		b.Fatal(err)
	}
	defer tk.Exit()
	d, pool := m.Dispatcher(), benchPool()
	ev := Event{Kind: KindSample, Name: "cpu-clock", Comm: "bench", Period: 1000}

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		regs, snap, _ := benchStack(i, distinct, pool)
		if err := tk.Open(eng.Shard(0), regs, snap); err != nil {
			b.Fatal(err)
		}
		for range benchEvents {
			d.Event(tk, ev)
		}
		d.EndEntry(tk)
		tk.Close()
		for len(in.outbox) > cap(in.outbox)/2 { // keep up with the plugin rather than drop
			time.Sleep(20 * time.Microsecond)
		}
	}
	want := uint64(b.N) * (benchEvents + 1)
	for {
		st := m.Stats()[0]
		if st.DroppedEvents+st.DroppedStacks != 0 {
			b.Fatalf("dropped: %+v", st)
		}
		if st.ItemsSent == want && st.Acked == st.Batches {
			break
		}
		time.Sleep(50 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "stacks/s")
}

// BenchmarkRawGRPCStream is BenchmarkDeliver's baseline: the same batches
// (built by the same interner, 512 items each, a window of 16) over a plain
// gRPC stream on a Unix socket to a process that only acknowledges them: no
// go-plugin, no TLS, no engine, no outbox, no sdk decoding.
func BenchmarkRawGRPCStream(b *testing.B) {
	for _, tc := range []struct {
		name     string
		distinct bool
	}{{"distinct", true}, {"interned", false}} {
		b.Run(tc.name, func(b *testing.B) { benchRaw(b, tc.distinct) })
	}
}

func benchRaw(b *testing.B, distinct bool) {
	sock := filepath.Join(b.TempDir(), "sock")
	cmd := exec.Command(rawServer, sock)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("rawserver: %q %v", line, err)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := pluginpb.NewTracerClient(conn).Deliver(ctx)
	if err != nil {
		b.Fatal(err)
	}
	const window, batchItems = 16, 512
	slots := make(chan struct{}, window)
	acked := make(chan uint64, 1)
	go func() {
		var last uint64
		for {
			a, err := stream.Recv()
			if err != nil {
				close(acked)
				return
			}
			for range a.GetSeq() - last {
				<-slots
			}
			last = a.GetSeq()
			select {
			case acked <- last:
			default:
				<-acked
				acked <- last
			}
		}
	}()
	tabs, pool := newInterner(noResolver{}), benchPool()
	ev := Event{Kind: KindSample, Name: "cpu-clock", Comm: "bench", Period: 1000}
	var seq uint64
	batch := &pluginpb.Batch{}
	flush := func() {
		seq++
		batch.Seq = seq
		slots <- struct{}{}
		if err := stream.Send(batch); err != nil {
			b.Fatal(err)
		}
		batch = &pluginpb.Batch{}
	}

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		_, _, pcs := benchStack(i, distinct, pool)
		cookie := uint64(i)<<32 | 1
		for range benchEvents {
			batch.Items = append(batch.Items, &pluginpb.Item{Item: &pluginpb.Item_Event{Event: toPB(&ev, 1, 1, cookie)}})
		}
		types := make([]byte, len(pcs))
		for j := range types {
			types[j] = byte(x86_64.TypeFramePointer)
		}
		batch.Items = append(batch.Items, tabs.stackRef(batch, &stack{cookie: cookie, pid: 1, tid: 1, end: x86_64.EndOutermost, pcs: pcs, types: types}))
		if len(batch.Items) >= batchItems {
			flush()
		}
	}
	if len(batch.Items) > 0 {
		flush()
	}
	for last := range acked {
		if last == seq {
			break
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "stacks/s")
	if err := stream.CloseSend(); err != nil {
		b.Fatal(err)
	}
}
