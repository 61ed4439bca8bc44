package pluginhost

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/deferred"
	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// maxLostCookies bounds the cookies one lost notice names; the counts in it
// stay exact.
const maxLostCookies = 4096

type itemKind uint8

const (
	itemEvent itemKind = iota + 1
	itemStack
)

// item is one entry of an outbox: an event (with the cookie stamped for
// this plugin) or a stack.
type item struct {
	kind     itemKind
	pid, tid int32
	cookie   uint64
	ev       Event
	st       *stack
}

// instance is one running plugin process and its connection: a tracer bit,
// an outbox, a sender and a receiver goroutine. A restart builds a new one.
type instance struct {
	m     *Manager
	p     *plugin
	log   *zap.Logger
	start time.Time

	client *goplugin.Client
	remote *sdk.Remote
	tracer *deferred.Tracer
	match  *matcher
	mode   Mode
	name   string // as the plugin described itself
	desc   sdk.Description

	outbox *ring
	gone   atomic.Bool   // unpublished: pushes are dropped
	wake   chan struct{} // cap 1: something was dropped
	lostMu sync.Mutex    // guards the lost* fields; a leaf lock
	lostEv uint64
	lostSt uint64
	lostCk map[uint64]struct{}

	ctx     context.Context // ends the stream; not derived from Run's ctx, so that shutdown can drain
	cancel  context.CancelFunc
	stream  pluginpb.Tracer_DeliverClient
	window  chan struct{} // one token per unacknowledged batch
	sent    atomic.Uint64 // last seq sent
	acked   atomic.Uint64 // last seq acknowledged
	ackCh   chan struct{} // cap 1: an ack arrived
	lastAck atomic.Int64  // unix ns of the last ack, or of the send that opened the window

	drain      chan struct{} // closed: send what is left, then close the stream
	senderDone chan struct{}
	recvDone   chan struct{}
	failOnce   sync.Once
	failErr    error
	failed     chan struct{}

	dec *decisions // mode decide: the Decisions stream; nil otherwise
}

// startInstance starts p's process and connects to it. On error, whatever
// it took is released.
func (m *Manager) startInstance(p *plugin) (_ *instance, err error) {
	in := &instance{
		m: m, p: p, log: p.log, start: time.Now(),
		outbox: newRing(p.spec.OutboxSize), wake: make(chan struct{}, 1),
		window: make(chan struct{}, m.opts.Window), ackCh: make(chan struct{}, 1),
		drain: make(chan struct{}), senderDone: make(chan struct{}), recvDone: make(chan struct{}),
		failed: make(chan struct{}),
	}
	cmd := exec.Command(p.spec.Path, p.spec.Args...)
	cmd.Env = slices.Clone(p.spec.Env)
	cfg := &goplugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          goplugin.PluginSet{sdk.PluginName: &sdk.GRPCPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           newHclog(p.log, "plugin"),
		StartTimeout:     m.opts.HandshakeTimeout,
		GRPCDialOptions:  sdk.DialOptions(),
	}
	if p.spec.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.spec.cred}
		// The plugin must be able to dial the host's broker sockets.
		cfg.UnixSocketConfig = &goplugin.UnixSocketConfig{Group: p.spec.gid}
	}
	if p.spec.sum != nil {
		cfg.SecureConfig = &goplugin.SecureConfig{Checksum: p.spec.sum, Hash: sha256.New()}
	}
	in.client = goplugin.NewClient(cfg)
	defer func() {
		if err != nil {
			in.client.Kill()
		}
	}()
	rpc, err := in.client.Client()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", p.spec.Path, err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		return nil, fmt.Errorf("dispense: %w", err)
	}
	rem, ok := raw.(*sdk.Remote)
	if !ok {
		return nil, fmt.Errorf("dispense: got %T, want *sdk.Remote", raw)
	}
	in.remote = rem

	if in.tracer, err = m.eng.Register(p.spec.Name, in.callback); err != nil {
		return nil, fmt.Errorf("register tracer: %w", err)
	}
	defer func() {
		if err != nil {
			m.eng.Cancel(in.tracer)
		}
	}()
	hs := &hostServer{eng: m.eng, tracer: in.tracer, log: p.log}
	id := rem.Broker.NextId()
	go rem.Broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		pluginpb.RegisterHostServer(s, hs)
		return s
	})

	dctx, dcancel := context.WithTimeout(context.Background(), m.opts.HandshakeTimeout)
	desc, err := rem.Client.Describe(dctx, &pluginpb.DescribeRequest{
		HostBrokerId: id, Config: p.spec.Config, HostVersion: m.opts.HostVersion, Check: m.opts.Check,
	})
	dcancel()
	if err != nil {
		return nil, fmt.Errorf("describe: %w", err)
	}
	d, err := sdk.DescriptionFromProto(desc)
	if err != nil {
		return nil, fmt.Errorf("describe: %w", err)
	}
	in.match, in.mode, in.name, in.desc = newMatcher(&d), modeOf(d.Mode), d.Name, d

	in.ctx, in.cancel = context.WithCancel(context.Background())
	if in.stream, err = rem.Client.Deliver(in.ctx); err != nil {
		in.cancel()
		return nil, fmt.Errorf("open deliver stream: %w", err)
	}
	if in.mode == ModeDecide {
		in.dec = openDecisions(in.ctx, rem.Client, in.log)
	}
	go in.send()
	go in.receive()
	in.log.Info("plugin started", zap.String("described_as", in.name), zap.String("version", d.Version),
		zap.Stringer("mode", in.mode), zap.Int("bit", in.tracer.Bit()), zap.Int("subscriptions", len(d.Subscriptions)))
	return in, nil
}

// fail records why the instance died (the first reason wins) and wakes the
// supervisor.
func (in *instance) fail(err error) {
	in.failOnce.Do(func() {
		in.failErr = err
		close(in.failed)
	})
}

func (in *instance) draining() bool {
	select {
	case <-in.drain:
		return true
	default:
		return false
	}
}

// callback is the instance's deferred-engine callback: it copies the trace
// out of the engine's cache and queues it behind the entry's events.
func (in *instance) callback(t *deferred.Task, tr *x86_64.Trace, c deferred.Cookie) {
	s := newStack(len(tr.Frames))
	s.cookie, s.pid, s.tid, s.timeNS, s.end = uint64(c), t.PID(), t.TID(), uint64(time.Now().UnixNano()), tr.End
	for i, f := range tr.Frames {
		s.pcs[i], s.types[i] = f.PC, byte(f.Type)
	}
	in.push(item{kind: itemStack, pid: s.pid, tid: s.tid, cookie: s.cookie, st: s})
}

// push queues it without blocking; a full outbox drops it and remembers
// the loss for the next lost notice.
func (in *instance) push(it item) {
	if in.gone.Load() { // a dispatcher that loaded the plugin list before it died
		in.dropped(it.kind, it.cookie, 1)
		return
	}
	if in.outbox.push(&it) {
		if it.kind == itemEvent {
			in.p.ctr.events.Add(1)
		} else {
			in.p.ctr.stacks.Add(1)
		}
		return
	}
	in.dropped(it.kind, it.cookie, 1)
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

func (in *instance) dropped(kind itemKind, cookie uint64, n uint64) {
	in.lostMu.Lock()
	if kind == itemEvent {
		in.lostEv += n
	} else {
		in.lostSt += n
	}
	if cookie != 0 && len(in.lostCk) < maxLostCookies {
		if in.lostCk == nil {
			in.lostCk = make(map[uint64]struct{})
		}
		in.lostCk[cookie] = struct{}{}
	}
	in.lostMu.Unlock()
	if kind == itemEvent {
		in.p.ctr.droppedEvents.Add(n)
	} else {
		in.p.ctr.droppedStacks.Add(n)
	}
}

// takeLost returns the pending lost notice, if any, and clears it.
func (in *instance) takeLost() *pluginpb.Lost {
	in.lostMu.Lock()
	defer in.lostMu.Unlock()
	if in.lostEv == 0 && in.lostSt == 0 {
		return nil
	}
	l := &pluginpb.Lost{Events: in.lostEv, Stacks: in.lostSt}
	for c := range in.lostCk {
		l.Cookies = append(l.Cookies, c)
	}
	slices.Sort(l.Cookies)
	in.lostEv, in.lostSt, in.lostCk = 0, 0, nil
	return l
}

// flowItems is the size of a batch that says items flow rather than come
// alone (or an eighth of BatchSize, if that is smaller): 16 items within
// BatchDelay are 8,000 a second or more. The next batch then waits
// FlowDelay, not BatchDelay, unless the outbox stays empty for FlowDelay
// first: the flow has stopped, and the next event comes alone. A batch
// costs hundreds of microseconds of CPU on this machine, mostly in
// wake-ups, its items a microsecond or two each.
const flowItems = 16

// send is the sender goroutine: it batches the outbox (BatchSize items or
// about 1 MiB, or BatchDelay after the first; FlowDelay when the batch
// before held at least flowItems items and the outbox has not been idle
// since), encoding each item into the batch as it takes it (interning
// stacks and strings), numbers batches and keeps at most Window of them
// unacknowledged. A lone event waits BatchDelay; a flow of them is carried
// by batches FlowDelay apart, each a few wake-ups in both processes fewer
// than BatchDelay's would need (at 200,000 stacks/s: 0.7 core with
// 2048-item batches 2ms apart, against 0.5 with 5ms,
// BenchmarkDeliver/steady200k-outbox-interned). The connection's first
// batch goes as soon as the outbox is empty, without waiting for
// BatchDelay: a plugin's first callback comes when it starts
// (BenchmarkStartup), and the flow after that batches as before. (Sending
// at once whenever nothing is in flight, as Nagle's algorithm does, was
// measured: a lone event's latency went from 2.9 to 0.7 ms, but interned
// throughput fell by a third and steady CPU rose by a quarter, as batches
// shrank to what arrived within one acknowledgement's round trip.)
func (in *instance) send() {
	defer close(in.senderDone)
	opts := in.m.opts
	enc := newEncoder(opts.Resolver)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	out := in.outbox
	var it item
	flowing := false // the last batch held flowAt items or more, and the outbox has not been idle since
	flowAt := min(flowItems, max(opts.BatchSize/8, 1))
	for {
		enc.begin()
		if !out.pop(&it) {
			if in.draining() {
				// Empty: send the last lost notice, if any, and finish.
				if err := in.sendBatch(enc, in.takeLost()); err != nil {
					in.fail(err)
					return
				}
				if out.len() != 0 {
					continue
				}
				in.finish()
				return
			}
			if out.sleep() {
				idle := time.Now()
				select {
				case <-out.ready:
				case <-in.wake:
				case <-in.drain:
				case <-in.ctx.Done():
					out.awake()
					return
				}
				out.awake()
				if flowing && time.Since(idle) >= opts.FlowDelay {
					flowing = false // the flow stopped: what comes now comes alone
				}
			}
			if !out.pop(&it) {
				// Woken by a loss (or nothing): send the lost notice, if any.
				if err := in.sendBatch(enc, in.takeLost()); err != nil {
					in.fail(err)
					return
				}
				continue
			}
		}
		enc.add(&it)
	fill:
		for !enc.batchFull(opts.BatchSize) {
			if out.pop(&it) {
				enc.add(&it)
				continue
			}
			if in.draining() || in.sent.Load() == 0 {
				break // the connection's first batch goes at once: a plugin's first callback does not wait for BatchDelay
			}
			if flowing {
				timer.Reset(opts.FlowDelay)
			} else {
				timer.Reset(opts.BatchDelay)
			}
			for !enc.batchFull(opts.BatchSize) {
				if out.pop(&it) {
					enc.add(&it)
					continue
				}
				if !out.sleep() {
					continue
				}
				select {
				case <-out.ready:
					out.awake()
				case <-timer.C:
					out.awake()
					break fill
				case <-in.ctx.Done():
					out.awake()
					return
				}
			}
			timer.Stop()
		}
		flowing = enc.len() >= flowAt
		if err := in.sendBatch(enc, in.takeLost()); err != nil {
			in.fail(err)
			return
		}
	}
}

// sendBatch sends the batch enc holds, with a lost notice first if there is
// one, and clears enc for the next batch.
func (in *instance) sendBatch(enc *encoder, lost *pluginpb.Lost) error {
	if enc.empty() && lost == nil {
		return nil
	}
	c := &in.p.ctr
	if lost != nil {
		enc.lostFirst(lost)
		c.lostNotices.Add(1)
	}
	// Wait for room in the window.
	select {
	case in.window <- struct{}{}:
	default:
		t := time.NewTimer(in.m.opts.AckTimeout)
		defer t.Stop()
		select {
		case in.window <- struct{}{}:
		case <-t.C:
			return fmt.Errorf("plugin acknowledged nothing for %v with %d batches in flight", in.m.opts.AckTimeout, cap(in.window))
		case <-in.ctx.Done():
			return in.ctx.Err()
		}
	}
	seq := in.sent.Load() + 1
	if in.acked.Load() == seq-1 {
		in.lastAck.Store(time.Now().UnixNano()) // the ack clock starts now
	}
	in.sent.Store(seq)
	if err := in.stream.Send(enc.finish(seq)); err != nil {
		return fmt.Errorf("send batch %d: %w", seq, err)
	}
	c.batches.Add(1)
	c.itemsSent.Add(uint64(enc.len()))
	c.stackDefs.Add(enc.defs)
	c.stackRefs.Add(enc.refs)
	enc.clear()
	return nil
}

// finish waits for the last acknowledgement, then closes the stream: the
// plugin's Deliver returns and the receiver sees the end.
func (in *instance) finish() {
	t := time.NewTimer(in.m.opts.AckTimeout)
	defer t.Stop()
	for in.acked.Load() < in.sent.Load() {
		select {
		case <-in.ackCh:
		case <-t.C:
			in.fail(fmt.Errorf("drain: plugin did not acknowledge batches %d..%d within %v", in.acked.Load()+1, in.sent.Load(), in.m.opts.AckTimeout))
			return
		case <-in.ctx.Done():
			return
		}
	}
	if err := in.stream.CloseSend(); err != nil {
		in.fail(fmt.Errorf("drain: close stream: %w", err))
	}
}

// receive is the receiver goroutine: it takes cumulative acknowledgements
// and frees their window slots. A broken stream is the plugin's death.
func (in *instance) receive() {
	defer close(in.recvDone)
	for {
		ack, err := in.stream.Recv()
		if err == io.EOF {
			if !in.draining() || in.acked.Load() < in.sent.Load() {
				in.fail(errors.New("plugin ended its delivery stream"))
			}
			return
		}
		if err != nil {
			in.fail(fmt.Errorf("delivery stream broke: %w", err))
			return
		}
		seq, prev := ack.GetSeq(), in.acked.Load()
		if seq <= prev {
			continue
		}
		if seq > in.sent.Load() {
			in.fail(fmt.Errorf("plugin acknowledged batch %d, only %d sent", seq, in.sent.Load()))
			return
		}
		for range seq - prev {
			<-in.window
		}
		in.acked.Store(seq)
		in.lastAck.Store(time.Now().UnixNano())
		in.p.ctr.acked.Add(seq - prev)
		select {
		case in.ackCh <- struct{}{}:
		default:
		}
	}
}

// watch waits until the instance dies (its error) or ctx ends (nil),
// checking the process and the acknowledgement clock.
func (in *instance) watch(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-in.failed:
			return in.failErr
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if in.client.Exited() {
				in.fail(errors.New("plugin process exited"))
			}
			if acked := in.acked.Load(); in.sent.Load() > acked && time.Since(time.Unix(0, in.lastAck.Load())) > in.m.opts.AckTimeout {
				in.fail(fmt.Errorf("plugin has not acknowledged batch %d for %v", acked+1, in.m.opts.AckTimeout))
			}
		}
	}
}

// stop tears the instance down after a failure: no more items, no more
// callbacks, process killed; what the outbox still held counts as dropped.
func (in *instance) stop() {
	in.m.unpublish(in)
	in.m.eng.Cancel(in.tracer)
	in.cancel()
	in.client.Kill()
	<-in.senderDone
	<-in.recvDone
	in.dec.wait()
	in.discard()
}

// shutdown drains the instance within the drain deadline, then stops the
// process. It reports what could not be delivered.
func (in *instance) shutdown() error {
	in.m.unpublish(in)
	in.m.eng.Cancel(in.tracer)
	close(in.drain)
	t := time.NewTimer(in.m.opts.DrainTimeout)
	defer t.Stop()
	var err error
	select {
	case <-in.recvDone:
		select {
		case <-in.failed:
			err = in.failErr
		default:
		}
	case <-in.failed:
		err = in.failErr
	case <-t.C:
		err = fmt.Errorf("drain: not done within %v (%d batches unacknowledged, %d items queued)",
			in.m.opts.DrainTimeout, in.sent.Load()-in.acked.Load(), in.outbox.len())
	}
	in.cancel()
	in.client.Kill()
	<-in.senderDone
	<-in.recvDone
	in.dec.wait()
	in.discard()
	return err
}

// discard counts what is left in the outbox as dropped.
func (in *instance) discard() {
	var it item
	for in.outbox.pop(&it) {
		in.dropped(it.kind, it.cookie, 1)
	}
}

// decide asks the plugin whether it wants the stack of t's open entry,
// within the plugin's deadline: on the Decisions stream, or by a Decide call
// when the plugin does not serve the stream. A missed deadline or an error
// is "no".
func (in *instance) decide(t *deferred.Task, evs []Event) bool {
	e := &pluginpb.DecideEntry{Key: 1, Pid: t.PID(), Tid: t.TID(), Events: make([]*pluginpb.Event, len(evs))}
	for i := range evs {
		e.Events[i] = toPB(&evs[i], t.PID(), t.TID(), 0)
	}
	req := &pluginpb.DecideRequest{Entries: []*pluginpb.DecideEntry{e}}
	in.p.ctr.decideCalls.Add(1)
	deadline := time.Now().Add(in.p.spec.DecideDeadline)
	resp, err := in.dec.ask(in.ctx, req, deadline)
	if errors.Is(err, errNoStream) {
		ctx, cancel := context.WithDeadline(in.ctx, deadline)
		defer cancel()
		req.Seq, req.BudgetNs = 0, 0
		resp, err = in.remote.Client.Decide(ctx, req)
	}
	switch {
	case err == nil && resp.GetError() != "":
		in.p.ctr.decideErrors.Add(1)
		in.log.Debug("decide failed", zap.String("error", resp.GetError()))
		return false
	case err == nil:
		return slices.Contains(resp.GetWant(), 1)
	case errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded:
		in.p.ctr.decideTimeouts.Add(1)
	default:
		in.p.ctr.decideErrors.Add(1)
		in.log.Debug("decide failed", zap.Error(err))
	}
	return false
}
