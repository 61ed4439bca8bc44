package pluginhost

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/deferred"
	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

const (
	benchEvents = 4  // events per entry
	benchFrames = 16 // frames per entry's stack
)

// benchSource is the synthetic source of the delivery benchmarks: entry i
// has benchEvents cpu-clock samples and one 16-frame frame-pointer stack.
// Its work is done before the timed loop or is a few stores per entry.
//
// Distinct stacks are distinct for the whole run, never cycled: one
// snapshot is rewritten in place for each entry (the engine reads it only
// between Open and Close), with return addresses 0x500000+i*0x40+j, so no
// two entries share a stack, nor any frame but the first. Nothing of them is
// interned; the tables fill and are reset at their bounds, as they would be
// on a real connection. Interned stacks are 64 pre-built ones, cycled.
type benchSource struct {
	distinct bool
	pool     []synth
	regs     x86_64.Regs
	snap     *x86_64.Snapshot
	pcs      []uint64
}

func newBenchSource(distinct bool) *benchSource {
	s := &benchSource{distinct: distinct}
	if distinct {
		s.regs, s.snap, s.pcs = synthStack(benchFrames, 0x500000)
		return s
	}
	s.pool = make([]synth, 64)
	for j := range s.pool {
		r, sn, pcs := synthStack(benchFrames, 0x500000+uint64(j)*0x1000)
		s.pool[j] = synth{r, sn, pcs}
	}
	return s
}

// entry returns entry i's registers, snapshot and the pcs its walk yields,
// valid until the next call.
func (s *benchSource) entry(i int) (x86_64.Regs, *x86_64.Snapshot, []uint64) {
	if !s.distinct {
		p := &s.pool[i%len(s.pool)]
		return p.regs, p.snap, p.pcs
	}
	ret0 := 0x500000 + uint64(i)*0x40
	for j := range benchFrames - 1 { // as synthStack lays them out
		binary.LittleEndian.PutUint64(s.snap.Data[16+16*j+8:], ret0+uint64(j))
		s.pcs[j+1] = ret0 + uint64(j)
	}
	return s.regs, s.snap, s.pcs
}

// benchEvent is entry i's event k, as the source hands it over.
func benchEvent(i, k int) Event {
	return Event{Kind: KindSample, Name: "cpu-clock", TimeNS: uint64(i)*1000 + uint64(k), CPU: 1, Comm: "bench", Period: 1000}
}

// benchTypes are the frame types the engine gives a synthetic stack.
var benchTypes = func() []byte {
	t := make([]byte, benchFrames)
	t[0] = byte(x86_64.TypeRegs)
	for j := 1; j < benchFrames; j++ {
		t[j] = byte(x86_64.TypeFramePointer)
	}
	return t
}()

// benchCookie is the cookie the engine (one shard) mints for entry i of a
// fresh task.
func benchCookie(i int) uint64 { return uint64(2*i+3)<<32 | 1 }

// benchManager starts a Manager with one test plugin and waits until it
// runs.
func benchManager(b *testing.B, log *zap.Logger, env ...string) (*Manager, *deferred.Engine, *instance, func()) {
	return benchManagerEnv(b, log, "", env...)
}

// benchManagerEnv is benchManager with plainEnv ("KEY=value", or "") in
// the plugin's environment as is, not as a test plugin setting.
func benchManagerEnv(b *testing.B, log *zap.Logger, plainEnv string, env ...string) (*Manager, *deferred.Engine, *instance, func()) {
	eng, err := deferred.New(deferred.Options{Shards: 1})
	if err != nil {
		b.Fatal(err)
	}
	s := spec("bench", b.TempDir(), env...)
	if plainEnv != "" {
		s.Env = append(s.Env, plainEnv)
	}
	s.OutboxSize = 1 << 16
	m, err := New(eng, []Spec{s}, Options{}, log)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
	// Running in Stats, and published for dispatch (a moment later).
	for deadline := time.Now().Add(20 * time.Second); m.Stats()[0].State != StateRunning || len(*m.live.Load()) == 0; time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			stop()
			b.Fatalf("plugin not running: %+v", m.Stats())
		}
	}
	return m, eng, (*m.live.Load())[0], stop
}

// BenchmarkDeliver measures the whole path: a synthetic source opens
// entries with 4 cpu-clock samples each, the engine unwinds, the manager
// batches, interns and sends to a real plugin process (go-plugin, mTLS,
// sdk decoding, acknowledgements). One op is one entry (4 events, 1 stack).
// steady200k paces the source at 200,000 entries/s (distinct stacks; and
// interned ones); steady5k at 5,000 (a syscall trace's rate, say). Every case reports the CPU the host process and the
// plugin process used, in cores (unpaced, that shows which holds the rate
// back). The host's share includes the synthetic source
// and the engine's unwinding, so it is an upper bound on delivery's.
//
// The outbox cases measure delivery alone, from the outbox on, as
// BenchmarkRawGRPCStream measures its baseline: each op pushes an entry's
// items (its 4 events, then its stack: the items TestBenchPayloads checks
// the raw benchmark builds), built per op as the raw benchmark builds them
// (the stack copied into a pooled one), straight into the plugin's outbox
// with the push the dispatcher and the engine's callback use. (They were
// once all built before the timer started: gigabytes of items holding
// pointers, which the collector then scanned during the timed loop, a
// cost the baseline does not have.) No engine, no dispatcher, no unwinding; the rest (batching,
// interning, encoding, go-plugin's mTLS gRPC, the sdk's decoding,
// acknowledgements) is the real stack. steady200k-outbox's host share is
// delivery's, but for a few stores per entry.
//
// The -gogc100 cases run the plugin with Go's default GOGC instead of the
// SDK's (sdk.TuneGC), beside the same case with it, in the same run. The
// *-source cases are the steady outbox cases' source alone (benchSourceOnly).
func BenchmarkDeliver(b *testing.B) {
	for _, tc := range []struct {
		name     string
		distinct bool
		rate     int    // entries per second; 0: as fast as delivery goes
		outbox   bool   // push the items into the outbox; no engine, no dispatcher
		env      string // added to the plugin's environment
	}{
		{"distinct", true, 0, false, ""}, {"interned", false, 0, false, ""},
		{"steady200k", true, 200_000, false, ""}, {"steady200k-interned", false, 200_000, false, ""},
		{"outbox-distinct", true, 0, true, ""}, {"outbox-interned", false, 0, true, ""},
		{"outbox-interned-gogc100", false, 0, true, "GOGC=100"},
		{"steady200k-outbox", true, 200_000, true, ""}, {"steady200k-outbox-interned", false, 200_000, true, ""},
		{"steady200k-outbox-interned-gogc100", false, 200_000, true, "GOGC=100"},
		{"steady5k-outbox-interned", false, 5_000, true, ""},
	} {
		b.Run(tc.name, func(b *testing.B) { benchDeliver(b, tc.distinct, tc.rate, tc.outbox, tc.env) })
	}
	// The steady outbox cases' source alone, beside them.
	for _, tc := range []struct {
		name     string
		distinct bool
		rate     int
	}{{"steady200k-source", true, 200_000}, {"steady200k-source-interned", false, 200_000}, {"steady5k-source-interned", false, 5_000}} {
		b.Run(tc.name, func(b *testing.B) { benchSourceOnly(b, tc.distinct, tc.rate) })
	}
}

func benchDeliver(b *testing.B, distinct bool, rate int, outbox bool, plainEnv string) {
	// The plugin decodes everything and counts events and stacks, hashing
	// every stack's frames, but does not keep a set of every cookie to
	// check the order of delivery (the delivery tests do).
	env := []string{"MODE=always", "SUBS=sample", "NOCHECK=1"}
	if f := os.Getenv("UNWINDD_BENCH_PLUGIN_CPUPROFILE"); f != "" {
		env = append(env, "CPUPROFILE="+f)
	}
	m, eng, in, stop := benchManagerEnv(b, zap.NewNop(), plainEnv, env...)
	defer stop()
	tk, err := eng.AddTask(1, 1, deferred.KindUser)
	if err != nil {
		b.Fatal(err)
	}
	defer tk.Exit()
	d, src := m.Dispatcher(), newBenchSource(distinct)
	rc := in.client.ReattachConfig()
	if rc == nil {
		b.Fatal("plugin process gone")
	}
	pid := rc.Pid

	// A paced source checks its pace every 1.28ms or so: every 256 entries
	// at 200,000 a second.
	pace := max(1, rate*256/200_000)
	push := in.push
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	host0, plugin0 := selfCPU(b), procCPU(b, pid)
	for i := range b.N {
		if outbox {
			outboxEntry(src, i, push)
		} else {
			regs, snap, _ := src.entry(i)
			if err := tk.Open(eng.Shard(0), regs, snap); err != nil {
				b.Fatal(err)
			}
			for k := range benchEvents {
				d.Event(tk, benchEvent(i, k))
			}
			d.EndEntry(tk)
			tk.Close()
		}
		if rate > 0 && i%pace == pace-1 {
			if ahead := time.Until(start.Add(time.Duration(i+1) * time.Second / time.Duration(rate))); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		for in.outbox.len() > in.outbox.cap()/2 { // keep up with the plugin rather than drop
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
			if distinct && st.StackRefs != 0 {
				b.Fatalf("distinct stacks were interned: %+v", st)
			}
			break
		}
		time.Sleep(50 * time.Microsecond)
	}
	elapsed := time.Since(start)
	host, plugin := selfCPU(b)-host0, procCPU(b, pid)-plugin0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "stacks/s")
	b.ReportMetric(float64(m.Stats()[0].Batches)/elapsed.Seconds(), "batches/s")
	// As fast as it goes too: which process holds it back.
	b.ReportMetric(host.Seconds()/elapsed.Seconds(), "host-cores")
	b.ReportMetric(plugin.Seconds()/elapsed.Seconds(), "plugin-cores")
	b.ReportMetric((host+plugin).Seconds()/elapsed.Seconds(), "cores")
}

// outboxEntry builds entry i's items as the raw benchmark does, and hands
// them to push: the events, then the stack copied into a pooled one (the
// encoder returns it to the pool).
func outboxEntry(src *benchSource, i int, push func(item)) {
	_, _, pcs := src.entry(i)
	cookie := benchCookie(i)
	for k := range benchEvents {
		push(item{kind: itemEvent, pid: 1, tid: 1, cookie: cookie, ev: benchEvent(i, k)})
	}
	s := newStack(len(pcs))
	s.cookie, s.pid, s.tid, s.timeNS, s.end = cookie, 1, 1, uint64(time.Now().UnixNano()), x86_64.EndOutermost
	copy(s.pcs, pcs)
	copy(s.types, benchTypes)
	push(item{kind: itemStack, pid: 1, tid: 1, cookie: cookie, st: s})
}

// benchSourceOnly is the steady outbox cases' source alone, their
// baseline: the same items built at the same pace, each dropped (a stack
// back to its pool) instead of pushed. What it costs is the benchmark's,
// not delivery's; the steady cases' host-cores include it.
func benchSourceOnly(b *testing.B, distinct bool, rate int) {
	src := newBenchSource(distinct)
	pace := max(1, rate*256/200_000)
	var sink item
	drop := func(it item) {
		if it.st != nil {
			freeStack(it.st)
		}
		sink = it
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	host0 := selfCPU(b)
	for i := range b.N {
		outboxEntry(src, i, drop)
		if i%pace == pace-1 {
			if ahead := time.Until(start.Add(time.Duration(i+1) * time.Second / time.Duration(rate))); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
	elapsed := time.Since(start)
	host := selfCPU(b) - host0
	b.StopTimer()
	_ = sink
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "stacks/s")
	b.ReportMetric(host.Seconds()/elapsed.Seconds(), "host-cores")
}

// selfCPU is the CPU time (user and system) this process has used.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time (utime and stime) process pid has used, from
// /proc/pid/stat, in clock ticks of 10ms (USER_HZ is 100 on Linux).
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command, which is in parentheses: state is field
	// 3, utime 14 and stime 15.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, err1 := strconv.ParseUint(f[14-3], 10, 64)
	stime, err2 := strconv.ParseUint(f[15-3], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// BenchmarkRawGRPCStream is BenchmarkDeliver's baseline: the same batches,
// byte for byte but for the times (built by the same encoder from the same
// items, with the default batch size and window) over a plain gRPC stream on a Unix
// socket to a process that only decodes and acknowledges them: no
// go-plugin, no TLS, no engine, no outbox, no sdk decoding.
//
// The steady200k cases pace the sender at 200,000 entries/s, as
// BenchmarkDeliver/steady200k-outbox* do theirs, and report the CPU of the
// sending process and the server process: what the same payloads cost
// without go-plugin, TLS, the outbox, its sender goroutine and the sdk.
//
// The sdk-* cases are the same with the sdk's decoding on the server's
// side: the batches become calls of a tracer that does the test plugin's
// work (rawserver with UNWINDD_RAW_SDK). Beside them, Deliver/outbox-*
// measures what go-plugin, TLS, the outbox and its sender goroutine cost;
// beside the plain cases, that and the sdk's decoding and the tracer.
func BenchmarkRawGRPCStream(b *testing.B) {
	for _, tc := range []struct {
		name     string
		distinct bool
		rate     int
		sdk      bool
	}{
		{"distinct", true, 0, false}, {"interned", false, 0, false},
		{"sdk-distinct", true, 0, true}, {"sdk-interned", false, 0, true},
		{"steady200k", true, 200_000, false}, {"steady200k-interned", false, 200_000, false},
		{"sdk-steady200k", true, 200_000, true}, {"sdk-steady200k-interned", false, 200_000, true},
	} {
		b.Run(tc.name, func(b *testing.B) { benchRaw(b, tc.distinct, tc.rate, tc.sdk) })
	}
}

func benchRaw(b *testing.B, distinct bool, rate int, sdkDecode bool) {
	var env []string
	if sdkDecode {
		env = append(env, "UNWINDD_RAW_SDK=1")
	}
	conn, pid := startRawServerPID(b, env...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := pluginpb.NewTracerClient(conn).Deliver(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defaults, err := Options{}.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	window, batchItems := defaults.Window, defaults.BatchSize // as Deliver's
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
	enc, src := newEncoder(noResolver{}), newBenchSource(distinct)
	var seq uint64
	var batchStart time.Time
	flush := func() {
		defer func() { batchStart = time.Now() }()
		seq++
		slots <- struct{}{}
		if err := stream.Send(enc.finish(seq)); err != nil {
			b.Fatal(err)
		}
		enc.clear()
		enc.begin()
	}

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	host0, server0 := selfCPU(b), procCPU(b, pid)
	enc.begin()
	for i := range b.N {
		_, _, pcs := src.entry(i)
		cookie := benchCookie(i)
		for k := range benchEvents {
			// As the dispatcher queues it: an item copied through a channel.
			enc.add(&item{kind: itemEvent, pid: 1, tid: 1, cookie: cookie, ev: benchEvent(i, k)})
			if enc.len() >= batchItems {
				flush()
			}
		}
		// As the engine's callback copies the trace out.
		s := newStack(len(pcs))
		s.cookie, s.pid, s.tid, s.timeNS, s.end = cookie, 1, 1, uint64(time.Now().UnixNano()), x86_64.EndOutermost
		copy(s.pcs, pcs)
		copy(s.types, benchTypes)
		enc.add(&item{kind: itemStack, pid: 1, tid: 1, cookie: cookie, st: s})
		if enc.len() >= batchItems {
			flush()
		}
		if rate > 0 && i%256 == 255 {
			// Batches as the outbox's sender cuts a flow's: full, or
			// FlowDelay after their first item.
			if enc.len() > 0 && time.Since(batchStart) >= defaults.FlowDelay {
				flush()
			}
			if ahead := time.Until(start.Add(time.Duration(i+1) * time.Second / time.Duration(rate))); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
	if enc.len() > 0 {
		flush()
	}
	for last := range acked {
		if last == seq {
			break
		}
	}
	elapsed := time.Since(start)
	host, server := selfCPU(b)-host0, procCPU(b, pid)-server0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "stacks/s")
	b.ReportMetric(float64(seq)/elapsed.Seconds(), "batches/s")
	b.ReportMetric(host.Seconds()/elapsed.Seconds(), "host-cores")
	b.ReportMetric(server.Seconds()/elapsed.Seconds(), "plugin-cores")
	b.ReportMetric((host+server).Seconds()/elapsed.Seconds(), "cores")
	if err := stream.CloseSend(); err != nil {
		b.Fatal(err)
	}
}

// startRawServer starts the baseline's server process and returns a plain
// gRPC client connection to it; both end with b.
func startRawServer(b *testing.B) *grpc.ClientConn {
	conn, _ := startRawServerPID(b)
	return conn
}

// startRawServerPID is startRawServer with env ("KEY=value") added to the
// server's environment, and the server's pid.
func startRawServerPID(b *testing.B, env ...string) (*grpc.ClientConn, int) {
	sock := filepath.Join(b.TempDir(), "sock")
	cmd := exec.Command(rawServer, sock)
	cmd.Env = append(os.Environ(), env...)
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
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("rawserver: %q %v", line, err)
	}
	conn, err := grpc.NewClient("unix://"+sock, append(dialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn, cmd.Process.Pid
}

// TestBenchPayloads checks that BenchmarkRawGRPCStream sends what
// BenchmarkDeliver sends: the items the engine and dispatcher queue for the
// synthetic source are the items the raw benchmark builds.
func TestBenchPayloads(t *testing.T) {
	eng, err := deferred.New(deferred.Options{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{outbox: newRing(64), p: &plugin{}}
	next := func() item {
		var it item
		if !in.outbox.pop(&it) {
			t.Fatal("outbox empty")
		}
		return it
	}
	tr, err := eng.Register("p", in.callback)
	if err != nil {
		t.Fatal(err)
	}
	in.tracer, in.mode, in.match = tr, ModeAlways, &matcher{samples: true}
	tk, err := eng.AddTask(1, 1, deferred.KindUser)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Exit()
	for _, distinct := range []bool{true, false} {
		src := newBenchSource(distinct)
		for i := range 3 {
			regs, snap, pcs := src.entry(i)
			if err := tk.Open(eng.Shard(0), regs, snap); err != nil {
				t.Fatal(err)
			}
			var cookie uint64
			for k := range benchEvents {
				_, c, err := tk.Request(tr)
				if err != nil {
					t.Fatal(err)
				}
				cookie = uint64(c)
				in.push(item{kind: itemEvent, pid: 1, tid: 1, cookie: cookie, ev: benchEvent(i, k)})
			}
			tk.Close()
			if !distinct {
				cookie = 0 // the second source's cookies go on from the first's
			} else if want := benchCookie(i); cookie != want {
				t.Errorf("entry %d: cookie %#x, the raw benchmark uses %#x", i, cookie, want)
			}
			for range benchEvents {
				next()
			}
			st := next().st
			if st == nil || !slices.Equal(st.pcs, pcs) || !slices.Equal(st.types, benchTypes) || st.end != x86_64.EndOutermost {
				t.Errorf("entry %d (distinct %v): the engine's stack %+v, the raw benchmark's pcs %#x types %v", i, distinct, st, pcs, benchTypes)
			}
		}
	}
}

// BenchmarkStartup measures a plugin's start with go-plugin and mTLS: from
// Manager.Run to the plugin running (handshake, Describe), and to its first
// callback (a lone event dispatched as soon as it runs, so that includes
// the batch delay). One op is one start and shutdown. host-calls is a
// plugin that logs through the host and requests a stack in Describe (so
// Describe waits for the broker's second TLS connection and two calls on
// it); quiet is one that does not, as the built-in plugins do.
func BenchmarkStartup(b *testing.B) {
	b.Run("host-calls", func(b *testing.B) { benchStartup(b) })
	b.Run("quiet", func(b *testing.B) { benchStartup(b, "QUIET_DESCRIBE=1") })
}

func benchStartup(b *testing.B, env ...string) {
	var toRun, toFirst []time.Duration
	for range b.N {
		core, logs := observer.New(zapcore.InfoLevel)
		t0 := time.Now()
		m, eng, _, stop := benchManager(b, zap.New(core), append([]string{"MODE=never", "SUBS=sample", "LATENCY=1"}, env...)...)
		running := time.Since(t0)
		tk, err := eng.AddTask(1, 1, deferred.KindUser)
		if err != nil {
			b.Fatal(err)
		}
		regs, snap, _ := synthStack(4, 0x500000)
		if err := tk.Open(eng.Shard(0), regs, snap); err != nil {
			b.Fatal(err)
		}
		m.Dispatcher().Event(tk, Event{Kind: KindSample, Name: "cpu-clock", TimeNS: uint64(time.Now().UnixNano())})
		tk.Close()
		first := waitLatency(b, logs, 1)[0].first
		stop()
		tk.Exit()
		toRun = append(toRun, running)
		toFirst = append(toFirst, time.Unix(0, first).Sub(t0))
	}
	b.ReportMetric(ms(median(toRun)), "ms-to-running")
	b.ReportMetric(ms(median(toFirst)), "ms-to-first-callback")
	b.ReportMetric(ms(slices.Max(toFirst)), "max-ms-to-first-callback")
}

// BenchmarkLatency measures how long a lone event waits: from
// Dispatcher.Event to the start of the plugin's Events call, on the same
// clock. One op is one event, sent when the previous one has arrived.
func BenchmarkLatency(b *testing.B) {
	core, logs := observer.New(zapcore.InfoLevel)
	m, eng, _, stop := benchManager(b, zap.New(core), "MODE=never", "SUBS=sample", "LATENCY=1")
	defer stop()
	tk, err := eng.AddTask(1, 1, deferred.KindUser)
	if err != nil {
		b.Fatal(err)
	}
	defer tk.Exit()
	d := m.Dispatcher()
	regs, snap, _ := synthStack(4, 0x500000)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		if err := tk.Open(eng.Shard(0), regs, snap); err != nil {
			b.Fatal(err)
		}
		d.Event(tk, Event{Kind: KindSample, Name: "cpu-clock", TimeNS: uint64(time.Now().UnixNano())})
		tk.Close()
		lat = append(lat, waitLatency(b, logs, i+1)[i].latency)
	}
	b.StopTimer()
	b.ReportMetric(ms(median(lat)), "ms-median")
	b.ReportMetric(ms(percentile(lat, 0.99)), "ms-p99")
	b.ReportMetric(ms(slices.Max(lat)), "ms-max")
}

type latencyReport struct {
	latency time.Duration
	first   int64 // unix ns of the first callback, in the first report
}

// waitLatency waits for n latency reports from the test plugin and returns
// them.
func waitLatency(b *testing.B, logs *observer.ObservedLogs, n int) []latencyReport {
	deadline := time.Now().Add(10 * time.Second)
	for {
		es := logs.FilterMessage("latency").All()
		if len(es) >= n {
			out := make([]latencyReport, len(es))
			for i, e := range es {
				f := e.ContextMap()
				ns, _ := strconv.ParseInt(fmt.Sprint(f["latency_ns"]), 10, 64)
				first, _ := strconv.ParseInt(fmt.Sprint(f["first_ns"]), 10, 64)
				out[i] = latencyReport{time.Duration(ns), first}
			}
			return out
		}
		if time.Now().After(deadline) {
			b.Fatalf("no latency report %d after 10s", n)
		}
		time.Sleep(20 * time.Microsecond)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(ds []time.Duration) time.Duration { return percentile(ds, 0.5) }

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

func dialOptions() []grpc.DialOption { return sdk.DialOptions() }

// BenchmarkEncode is the sender's share of BenchmarkRawGRPCStream without
// gRPC: encoding one entry (4 events and its stack) into batches of the
// default size, and marshalling them. One op is one entry.
func BenchmarkEncode(b *testing.B) {
	for _, distinct := range []bool{true, false} {
		b.Run(map[bool]string{true: "distinct", false: "interned"}[distinct], func(b *testing.B) {
			enc, src := newEncoder(noResolver{}), newBenchSource(distinct)
			var buf []byte
			var seq uint64
			b.ReportAllocs()
			enc.begin()
			for i := 0; b.Loop(); i++ {
				_, _, pcs := src.entry(i)
				cookie := benchCookie(i)
				for k := range benchEvents {
					enc.add(&item{kind: itemEvent, pid: 1, tid: 1, cookie: cookie, ev: benchEvent(i, k)})
				}
				s := newStack(len(pcs))
				s.cookie, s.pid, s.tid, s.timeNS, s.end = cookie, 1, 1, uint64(i), x86_64.EndOutermost
				copy(s.pcs, pcs)
				copy(s.types, benchTypes)
				enc.add(&item{kind: itemStack, pid: 1, tid: 1, cookie: cookie, st: s})
				if enc.len() >= 2048 {
					seq++
					var err error
					if buf, err = (proto.MarshalOptions{}).MarshalAppend(buf[:0], enc.finish(seq)); err != nil {
						b.Fatal(err)
					}
					b.SetBytes(int64(len(buf)) * 5 / int64(enc.len()))
					enc.clear()
					enc.begin()
				}
			}
		})
	}
}
