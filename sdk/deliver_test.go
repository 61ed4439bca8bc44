package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

const (
	ftRegs = byte(pluginpb.FrameType_FRAME_TYPE_REGS)
	ftCFI  = byte(pluginpb.FrameType_FRAME_TYPE_CFI)
	ftFP   = byte(pluginpb.FrameType_FRAME_TYPE_FRAME_POINTER)
)

// The string ids firstBatch defines.
const (
	sBinApp = iota + 1
	sMain
	sWork
	sCPUClock
	sApp
	sSchedSwitch
	sRead
)

// firstBatch defines strings 1–7, mapping 1, locations 1–3 and stack 1,
// then sends two events, stack 1, a lost notice, an event and stack 1 again.
func firstBatch() *pluginpb.Batch {
	return sdk.NewWireBatch(1).
		Strings("/bin/app", "main", "work", "cpu-clock", "app", "sched:sched_switch", "read").
		Mapping(&pluginpb.Mapping{Start: 0x400000, Limit: 0x401000, Offset: 0x1000, Path: sBinApp, BuildId: []byte{0xab, 0xcd}}).
		Locs(sdk.WireLoc{Addr: 0x400110, Mapping: 1, Function: sWork, Offset: 0x10},
			sdk.WireLoc{Addr: 0x400220, Mapping: 1, Function: sMain, Offset: 0x20},
			sdk.WireLoc{Addr: 0x7fff0000}).
		StackDef(byte(pluginpb.EndReason_END_REASON_OUTERMOST), []byte{ftRegs, ftCFI, ftFP}, 1, 2, 3).
		Event(sdk.WireEvent{Kind: pluginpb.EventKind_EVENT_KIND_SAMPLE, Name: sCPUClock, Time: 10, CPU: 1, PID: 100, TID: 101, Comm: sApp, Cookie: 7, Period: 1000}).
		Event(sdk.WireEvent{Kind: pluginpb.EventKind_EVENT_KIND_TRACEPOINT, Name: sSchedSwitch, Time: 11, PID: 100, TID: 101, Comm: sApp, Cookie: 7, Fields: []*pluginpb.Field{
			{Name: "prev_state", Value: &pluginpb.Field_Int{Int: -1}},
			{Name: "next_pid", Value: &pluginpb.Field_Uint{Uint: 42}},
			{Name: "next_comm", Value: &pluginpb.Field_Str{Str: []byte("idle")}},
			{Name: "raw", Value: &pluginpb.Field_Raw{Raw: []byte{1, 2}}},
			{Name: "none"},
		}}).
		Stack(7, 1, 100, 101, 7000).
		Lost(&pluginpb.Lost{Events: 3, Stacks: 1, Cookies: []uint64{5, 6}}).
		Event(sdk.WireEvent{Kind: pluginpb.EventKind_EVENT_KIND_SYSCALL_ENTER, Name: sRead, Time: 12, PID: 100, TID: 102, Cookie: 8}).
		Stack(8, 1, 100, 102, 8000).
		Build()
}

var appMapping = &sdk.Mapping{Start: 0x400000, Limit: 0x401000, Offset: 0x1000, Path: "/bin/app", BuildID: []byte{0xab, 0xcd}}

var stack1 = []sdk.Frame{
	{Addr: 0x400110, Mapping: appMapping, Function: "work", Offset: 0x10, Type: sdk.TypeRegs},
	{Addr: 0x400220, Mapping: appMapping, Function: "main", Offset: 0x20, Type: sdk.TypeCFI},
	{Addr: 0x7fff0000, Type: sdk.TypeFramePointer},
}

func TestDeliver(t *testing.T) {
	rec := &recorder{}
	c := tracerClient(t, rec)
	second := sdk.NewWireBatch(2).Stack(9, 1, 100, 103, 9000).Build() // stack 1 by id only
	third := sdk.NewWireBatch(3).ContextsDefined(3).
		Strings("leaf").
		Locs(sdk.WireLoc{Addr: 0x400330, Mapping: 1, Function: sRead + 1, Offset: 3}).
		StackDef(byte(pluginpb.EndReason_END_REASON_DEPTH_LIMIT), []byte{ftRegs, ftFP}, 4, 2).
		Stack(11, 2, 100, 104, 11000).
		Event(sdk.WireEvent{Kind: pluginpb.EventKind_EVENT_KIND_SYSCALL_EXIT, Name: sRead, TID: 104}).
		Build()
	empty := &pluginpb.Batch{Seq: 5} // sequence numbers may skip; an empty batch is acked
	acks, err := deliver(t, c, firstBatch(), second, third, empty)
	if err != nil {
		t.Fatalf("stream ended with %v", err)
	}
	if want := []uint64{1, 2, 3, 5}; !reflect.DeepEqual(acks, want) {
		t.Errorf("acks = %v, want %v", acks, want)
	}

	want := []call{
		{Events: []sdk.Event{
			{Kind: sdk.KindSample, Name: "cpu-clock", Time: 10, CPU: 1, PID: 100, TID: 101, Comm: "app", Cookie: 7, Period: 1000},
			{Kind: sdk.KindTracepoint, Name: "sched:sched_switch", Time: 11, PID: 100, TID: 101, Comm: "app", Cookie: 7, Fields: []sdk.Field{
				sdk.IntField("prev_state", -1), sdk.UintField("next_pid", 42), sdk.StringField("next_comm", "idle"),
				sdk.BytesField("raw", []byte{1, 2}), {Name: "none"},
			}},
		}},
		{Stack: &sdk.Stack{Cookie: 7, PID: 100, TID: 101, Time: 7000, Frames: stack1, End: sdk.EndOutermost}},
		{Lost: &sdk.Lost{Events: 3, Stacks: 1, Cookies: []uint64{5, 6}}},
		{Events: []sdk.Event{{Kind: sdk.KindSyscallEnter, Name: "read", Time: 12, PID: 100, TID: 102, Cookie: 8}}},
		{Stack: &sdk.Stack{Cookie: 8, PID: 100, TID: 102, Time: 8000, Frames: stack1, End: sdk.EndOutermost}},
		{Stack: &sdk.Stack{Cookie: 9, PID: 100, TID: 103, Time: 9000, Frames: stack1, End: sdk.EndOutermost}},
		{Stack: &sdk.Stack{Cookie: 11, PID: 100, TID: 104, Time: 11000, End: sdk.EndDepth, Frames: []sdk.Frame{
			{Addr: 0x400330, Mapping: appMapping, Function: "leaf", Offset: 3, Type: sdk.TypeRegs},
			{Addr: 0x400220, Mapping: appMapping, Function: "main", Offset: 0x20, Type: sdk.TypeFramePointer},
		}}},
		{Events: []sdk.Event{{Kind: sdk.KindSyscallExit, Name: "read", TID: 104}}},
	}
	got := rec.seen()
	if len(got) != len(want) {
		t.Fatalf("tracer saw %d calls, want %d:\n%s", len(got), len(want), dump(got))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("call %d:\n got %s\nwant %s", i, dump(got[i:i+1]), dump(want[i:i+1]))
		}
	}
	// A repeated stack is the cached decoding, not a new one.
	if &got[1].Stack.Frames[0] != &got[5].Stack.Frames[0] {
		t.Error("a repeated stack id was decoded again: frames not shared")
	}
	// Frames and mappings are shared with the cache: the mapping pointer of
	// every frame of stack 1 is the one mapping.
	if got[1].Stack.Frames[0].Mapping != got[6].Stack.Frames[0].Mapping {
		t.Error("mapping 1 decoded twice")
	}
}

func dump(cs []call) string {
	var b strings.Builder
	for _, c := range cs {
		switch {
		case c.Stack != nil:
			fmt.Fprintf(&b, "Stack%+v", *c.Stack)
		case c.Lost != nil:
			fmt.Fprintf(&b, "Lost%+v", *c.Lost)
		default:
			fmt.Fprintf(&b, "Events%+v", c.Events)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestDeliverProtocolErrors sends a valid batch, then a bad one: the stream
// must end with an InvalidArgument error matching ErrProtocol and naming
// the culprit, and nothing of the bad batch may be delivered.
func TestDeliverProtocolErrors(t *testing.T) {
	ev := sdk.WireEvent{Kind: pluginpb.EventKind_EVENT_KIND_SAMPLE, TID: 1}
	wb := func() *sdk.WireBatch { return sdk.NewWireBatch(2).ContextsDefined(3) }
	// with builds a batch and breaks it.
	with := func(w *sdk.WireBatch, f func(b *pluginpb.Batch)) *pluginpb.Batch {
		b := w.Build()
		f(b)
		return b
	}
	tests := []struct {
		name string
		bad  *pluginpb.Batch
		want string
	}{
		{"unknown stack", wb().Event(ev).Stack(1, 42, 1, 1, 0).Build(), "unknown stack id 42"},
		{"unknown location", wb().StackDef(1, []byte{ftRegs, ftFP}, 1, 77).Build(), "unknown location id 77"},
		{"unknown mapping", wb().Locs(sdk.WireLoc{Mapping: 5}).Build(), "unknown mapping id 5"},
		{"unknown function", wb().Locs(sdk.WireLoc{Function: 66}).Build(), "unknown function string id 66"},
		{"unknown path", wb().Mapping(&pluginpb.Mapping{Path: 99}).Build(), "unknown path string id 99"},
		{"unknown name", wb().Event(sdk.WireEvent{Name: 99}).Build(), "event context 4: unknown name string id 99"},
		{"unknown comm", wb().Event(ev).Event(sdk.WireEvent{Comm: 98}).Build(), "event context 5: unknown comm string id 98"},
		{"unknown context", with(wb().Event(ev), func(b *pluginpb.Batch) { b.Events.Contexts[0] = 9 }), "event 0: unknown context id 9"},
		{"no context", with(wb().Event(ev), func(b *pluginpb.Batch) { b.Events.Contexts[0] = 0 }), "event 0: unknown context id 0"},
		{"context column short", with(wb().Event(sdk.WireEvent{CPU: 1}).Event(sdk.WireEvent{CPU: 2}), func(b *pluginpb.Batch) { b.Contexts.Cpus = b.Contexts.Cpus[:1] }),
			"event contexts: column cpus does not hold 2 values"},
		{"types short", with(wb().StackDef(1, []byte{ftRegs, ftFP}, 1, 2), func(b *pluginpb.Batch) { b.Stacks.FrameTypes = b.Stacks.FrameTypes[:1] }),
			"stacks: the lengths do not add up to the 1 frame types"},
		{"ends short", with(wb().StackDef(1, []byte{ftRegs}, 1), func(b *pluginpb.Batch) { b.Stacks.Ends = nil }), "stacks: lengths do not hold 0 values, one per end reason"},
		{"bad frame type", wb().StackDef(1, []byte{9}, 1).Build(), "invalid frame type 9"},
		{"no end reason", wb().StackDef(0, nil).Build(), "invalid end reason 0"},
		{"bad end reason", wb().StackDef(200, nil).Build(), "invalid end reason 200"},
		{"column short", with(wb().Event(sdk.WireEvent{Time: 1}).Event(sdk.WireEvent{Time: 2}), func(b *pluginpb.Batch) { b.Events.TimeDeltas = b.Events.TimeDeltas[:1] }),
			"column event times does not hold 2 values"},
		{"cookies short", with(wb().Stack(3, 1, 1, 1, 0), func(b *pluginpb.Batch) { b.Refs.CookieDeltas = nil }), "column stack cookies does not hold 1 values"},
		{"field counts", wb().Event(sdk.WireEvent{Fields: []*pluginpb.Field{{Name: "a"}}, NoFieldCount: true}).Build(), "0 fields by their counts, 1 sent"},
		{"runs short", with(wb().Event(ev).Event(ev), func(b *pluginpb.Batch) { b.Runs[0] -= 4 }), "runs cover 1 events, 0 stacks, 0 lost notices; the batch has 2, 0, 0"},
		{"empty run", with(wb().Event(ev), func(b *pluginpb.Batch) { b.Runs = append(b.Runs, 2) }), "run 1: kind 2, count 0"},
		{"no kind", with(wb().Event(ev), func(b *pluginpb.Batch) { b.Runs = append(b.Runs, 4) }), "run 1: kind 0, count 1"},
		{"deltas short", with(wb().StackDef(1, []byte{ftRegs, ftFP}, 1, 2), func(b *pluginpb.Batch) { b.Stacks.LocationDeltas = b.Stacks.LocationDeltas[:1] }),
			"location deltas do not hold 2 values"},
		{"trailing bytes", with(wb().Event(ev), func(b *pluginpb.Batch) { b.Events.Contexts = append(b.Events.Contexts, 1) }), "column event contexts does not hold 1 values"},
		{"bad varint", with(wb().Event(ev), func(b *pluginpb.Batch) { b.Events.Contexts = []byte{0x80} }), "column event contexts does not hold 1 values"},
		{"pid range", with(wb().Stack(3, 1, 1, 1, 0), func(b *pluginpb.Batch) { b.Refs.Pids = sdk.S(1 << 40) }), "column stack pids does not hold 1 values"},
		{"reset", wb().ResetTables().Stack(3, 1, 1, 1, 0).Build(), "unknown stack id 1"},
		{"seq repeated", sdk.NewWireBatch(1).Event(ev).Build(), "batch 1 after batch 1"},
		{"zero cookie", wb().Event(ev).Stack(0, 1, 1, 1, 0).Build(), "stack 1 with cookie 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			c := tracerClient(t, rec)
			acks, err := deliver(t, c, firstBatch(), tt.bad)
			if !reflect.DeepEqual(acks, []uint64{1}) {
				t.Errorf("acks = %v, want [1]", acks)
			}
			if err == nil {
				t.Fatal("stream ended cleanly, want a protocol error")
			}
			if code := status.Code(err); code != codes.InvalidArgument {
				t.Errorf("code = %v, want InvalidArgument (%v)", code, err)
			}
			if !errors.Is(sdk.ErrorFromStatus(err), sdk.ErrProtocol) {
				t.Errorf("error %v does not match ErrProtocol", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if n := len(rec.seen()); n != 5 {
				t.Errorf("tracer saw %d calls, want the first batch's 5 only", n)
			}
		})
	}
}

// TestDeliverFreshTables: a new stream (a reconnected host) starts with no
// interned definitions and sequence numbers start over.
func TestDeliverFreshTables(t *testing.T) {
	c := tracerClient(t, &recorder{})
	if _, err := deliver(t, c, firstBatch()); err != nil {
		t.Fatalf("first stream: %v", err)
	}
	acks, err := deliver(t, c, sdk.NewWireBatch(1).Stack(3, 1, 1, 1, 0).Build())
	if len(acks) != 0 || err == nil || !strings.Contains(err.Error(), "unknown stack id 1") {
		t.Errorf("second stream: acks %v, err %v; want no ack and an unknown stack id 1", acks, err)
	}
	if acks, err := deliver(t, c, firstBatch()); err != nil || len(acks) != 1 {
		t.Errorf("third stream: acks %v, err %v; want [1], nil", acks, err)
	}
}

// TestDeliverCallbackFailure: an error or a panic in a callback ends the
// stream with an error that says so, without acknowledging the batch; the
// plugin keeps serving new streams.
func TestDeliverCallbackFailure(t *testing.T) {
	boom := errors.New("disk full")
	tests := []struct {
		name string
		fail func(c call) error
		want []string
	}{
		{"events error", func(c call) error {
			if c.Events != nil {
				return boom
			}
			return nil
		}, []string{"Tracer.Events", "disk full"}},
		{"stack error", func(c call) error {
			if c.Stack != nil {
				return fmt.Errorf("write profile: %w", boom)
			}
			return nil
		}, []string{"Tracer.Stack", "cookie 0x7", "disk full"}},
		{"events panic", func(c call) error {
			if c.Events != nil {
				panic("index out of range")
			}
			return nil
		}, []string{"panic", "Tracer.Events", "index out of range"}},
		{"stack panic", func(c call) error {
			if c.Stack != nil {
				var m map[string]int
				m["x"]++ // a real runtime panic
			}
			return nil
		}, []string{"panic", "Tracer.Stack", "batch 1", "nil map"}},
		{"lost panic", func(c call) error {
			if c.Lost != nil {
				panic(boom)
			}
			return nil
		}, []string{"panic", "Tracer.Lost", "disk full"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{fail: tt.fail}
			c := tracerClient(t, rec)
			acks, err := deliver(t, c, firstBatch(), &pluginpb.Batch{Seq: 2})
			if len(acks) != 0 {
				t.Errorf("acks = %v, want none", acks)
			}
			if err == nil {
				t.Fatal("stream ended cleanly, want the callback's error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			rec.mu.Lock()
			rec.fail = nil
			rec.mu.Unlock()
			if acks, err := deliver(t, c, firstBatch()); err != nil || len(acks) != 1 {
				t.Errorf("after the failure: acks %v, err %v; want [1], nil", acks, err)
			}
		})
	}
}

// copier is a Tracer that copies the events it is handed (an
// sdk.EventCopier) and notes where each batch's events array was.
type copier struct {
	recorder
	arrays []*sdk.Event
}

func (c *copier) CopiesEvents() bool { return true }

func (c *copier) Events(ctx context.Context, evs []sdk.Event) error {
	c.arrays = append(c.arrays, &evs[0])
	cp := slices.Clone(evs)
	for i := range cp {
		cp[i].Fields = slices.Clone(cp[i].Fields)
	}
	return c.recorder.Events(ctx, cp)
}

// TestDeliverEventCopier: for an EventCopier the SDK reuses the events
// array from batch to batch, and nothing of an earlier batch shows through
// (an event without fields where the last batch's had some has none).
func TestDeliverEventCopier(t *testing.T) {
	c := &copier{}
	second := sdk.NewWireBatch(2).ContextsDefined(3).
		Event(sdk.WireEvent{Kind: pluginpb.EventKind_EVENT_KIND_SYSCALL_EXIT, Name: sRead, TID: 104, Time: 20}).
		Event(sdk.WireEvent{Kind: pluginpb.EventKind_EVENT_KIND_SYSCALL_EXIT, Name: sRead, TID: 104, Time: 21}).
		Build()
	if _, err := deliver(t, tracerClient(t, c), firstBatch(), second); err != nil {
		t.Fatalf("stream ended with %v", err)
	}
	var events [][]sdk.Event
	for _, call := range c.seen() {
		if call.Events != nil {
			events = append(events, call.Events)
		}
	}
	want := [][]sdk.Event{
		{
			{Kind: sdk.KindSample, Name: "cpu-clock", Time: 10, CPU: 1, PID: 100, TID: 101, Comm: "app", Cookie: 7, Period: 1000},
			{Kind: sdk.KindTracepoint, Name: "sched:sched_switch", Time: 11, PID: 100, TID: 101, Comm: "app", Cookie: 7, Fields: []sdk.Field{
				sdk.IntField("prev_state", -1), sdk.UintField("next_pid", 42), sdk.StringField("next_comm", "idle"),
				sdk.BytesField("raw", []byte{1, 2}), {Name: "none"},
			}},
		},
		{{Kind: sdk.KindSyscallEnter, Name: "read", Time: 12, PID: 100, TID: 102, Cookie: 8}},
		{
			{Kind: sdk.KindSyscallExit, Name: "read", Time: 20, TID: 104},
			{Kind: sdk.KindSyscallExit, Name: "read", Time: 21, TID: 104},
		},
	}
	if !reflect.DeepEqual(events, want) {
		t.Errorf("events:\n got %s\nwant %+v", dump(c.seen()), want)
	}
	if len(c.arrays) != 3 || c.arrays[0] != c.arrays[2] {
		t.Errorf("the events arrays of the two batches: %v, want the first batch's reused", c.arrays)
	}
}
