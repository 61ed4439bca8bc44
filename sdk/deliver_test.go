package sdk_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

func evItem(e *pluginpb.Event) *pluginpb.Item {
	return &pluginpb.Item{Item: &pluginpb.Item_Event{Event: e}}
}

func stackItem(cookie, id uint64, tid int32) *pluginpb.Item {
	return &pluginpb.Item{Item: &pluginpb.Item_Stack{Stack: &pluginpb.StackRef{
		Cookie: cookie, Pid: 100, Tid: tid, StackId: id, TimeNs: cookie * 1000,
	}}}
}

func lostItem(events, stacks uint64, cookies ...uint64) *pluginpb.Item {
	return &pluginpb.Item{Item: &pluginpb.Item_Lost{Lost: &pluginpb.Lost{Events: events, Stacks: stacks, Cookies: cookies}}}
}

const (
	ftRegs = byte(pluginpb.FrameType_FRAME_TYPE_REGS)
	ftCFI  = byte(pluginpb.FrameType_FRAME_TYPE_CFI)
	ftFP   = byte(pluginpb.FrameType_FRAME_TYPE_FRAME_POINTER)
)

// firstBatch defines mapping 1, functions 1–2, locations 1–3 and stack 1,
// then sends two events, stack 1, a lost notice, an event and stack 1 again.
func firstBatch() *pluginpb.Batch {
	return &pluginpb.Batch{
		Seq:       1,
		Mappings:  []*pluginpb.Mapping{{Id: 1, Start: 0x400000, Limit: 0x401000, Offset: 0x1000, Path: "/bin/app", BuildId: []byte{0xab, 0xcd}}},
		Functions: []*pluginpb.Function{{Id: 1, Name: "main"}, {Id: 2, Name: "work"}},
		Locations: []*pluginpb.Location{
			{Id: 1, Address: 0x400110, MappingId: 1, FunctionId: 2, FunctionOffset: 0x10},
			{Id: 2, Address: 0x400220, MappingId: 1, FunctionId: 1, FunctionOffset: 0x20},
			{Id: 3, Address: 0x7fff0000},
		},
		Stacks: []*pluginpb.StackDef{{Id: 1, LocationIds: []uint64{1, 2, 3}, FrameTypes: []byte{ftRegs, ftCFI, ftFP}, End: pluginpb.EndReason_END_REASON_OUTERMOST}},
		Items: []*pluginpb.Item{
			evItem(&pluginpb.Event{Kind: pluginpb.EventKind_EVENT_KIND_SAMPLE, Name: "cpu-clock", TimeNs: 10, Cpu: 1, Pid: 100, Tid: 101, Comm: "app", Cookie: 7, Period: 1000}),
			evItem(&pluginpb.Event{Kind: pluginpb.EventKind_EVENT_KIND_TRACEPOINT, Name: "sched:sched_switch", TimeNs: 11, Pid: 100, Tid: 101, Comm: "app", Cookie: 7, Fields: []*pluginpb.Field{
				{Name: "prev_state", Value: &pluginpb.Field_Int{Int: -1}},
				{Name: "next_pid", Value: &pluginpb.Field_Uint{Uint: 42}},
				{Name: "next_comm", Value: &pluginpb.Field_Str{Str: "idle"}},
				{Name: "raw", Value: &pluginpb.Field_Raw{Raw: []byte{1, 2}}},
				{Name: "none"},
			}}),
			stackItem(7, 1, 101),
			lostItem(3, 1, 5, 6),
			evItem(&pluginpb.Event{Kind: pluginpb.EventKind_EVENT_KIND_SYSCALL_ENTER, Name: "read", TimeNs: 12, Pid: 100, Tid: 102, Cookie: 8}),
			stackItem(8, 1, 102),
		},
	}
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
	second := &pluginpb.Batch{Seq: 2, Items: []*pluginpb.Item{stackItem(9, 1, 103)}} // stack 1 by id only
	third := &pluginpb.Batch{
		Seq:       3,
		Functions: []*pluginpb.Function{{Id: 3, Name: "leaf"}},
		Locations: []*pluginpb.Location{{Id: 4, Address: 0x400330, MappingId: 1, FunctionId: 3, FunctionOffset: 3}},
		Stacks:    []*pluginpb.StackDef{{Id: 2, LocationIds: []uint64{4, 2}, FrameTypes: []byte{ftRegs, ftFP}, End: pluginpb.EndReason_END_REASON_DEPTH_LIMIT}},
		Items:     []*pluginpb.Item{stackItem(11, 2, 104), evItem(&pluginpb.Event{Kind: pluginpb.EventKind_EVENT_KIND_SYSCALL_EXIT, Name: "read", Tid: 104})},
	}
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
	ev := evItem(&pluginpb.Event{Kind: pluginpb.EventKind_EVENT_KIND_SAMPLE, Tid: 1})
	tests := []struct {
		name string
		bad  *pluginpb.Batch
		want string
	}{
		{"unknown stack", &pluginpb.Batch{Seq: 2, Items: []*pluginpb.Item{ev, stackItem(1, 42, 1)}}, "unknown stack id 42"},
		{"unknown location", &pluginpb.Batch{Seq: 2, Stacks: []*pluginpb.StackDef{{Id: 2, LocationIds: []uint64{1, 77}, FrameTypes: []byte{ftRegs, ftFP}, End: 1}}}, "unknown location id 77"},
		{"unknown mapping", &pluginpb.Batch{Seq: 2, Locations: []*pluginpb.Location{{Id: 9, MappingId: 5}}}, "unknown mapping id 5"},
		{"unknown function", &pluginpb.Batch{Seq: 2, Locations: []*pluginpb.Location{{Id: 9, FunctionId: 6}}}, "unknown function id 6"},
		{"types short", &pluginpb.Batch{Seq: 2, Stacks: []*pluginpb.StackDef{{Id: 2, LocationIds: []uint64{1, 2}, FrameTypes: []byte{ftRegs}, End: 1}}}, "2 locations but 1 frame types"},
		{"bad frame type", &pluginpb.Batch{Seq: 2, Stacks: []*pluginpb.StackDef{{Id: 2, LocationIds: []uint64{1}, FrameTypes: []byte{9}, End: 1}}}, "invalid frame type 9"},
		{"no end reason", &pluginpb.Batch{Seq: 2, Stacks: []*pluginpb.StackDef{{Id: 2}}}, "invalid end reason 0"},
		{"bad end reason", &pluginpb.Batch{Seq: 2, Stacks: []*pluginpb.StackDef{{Id: 2, End: 263}}}, "invalid end reason 263"},
		{"duplicate mapping", &pluginpb.Batch{Seq: 2, Mappings: []*pluginpb.Mapping{{Id: 1}}}, "mapping id 1 defined twice"},
		{"duplicate stack", &pluginpb.Batch{Seq: 2, Stacks: []*pluginpb.StackDef{{Id: 1, End: 1}}}, "stack id 1 defined twice"},
		{"id zero", &pluginpb.Batch{Seq: 2, Functions: []*pluginpb.Function{{Name: "f"}}}, "function with id 0"},
		{"seq repeated", &pluginpb.Batch{Seq: 1, Items: []*pluginpb.Item{ev}}, "batch 1 after batch 1"},
		{"empty item", &pluginpb.Batch{Seq: 2, Items: []*pluginpb.Item{ev, {}}}, "item 1: no event, stack or lost notice"},
		{"zero cookie", &pluginpb.Batch{Seq: 2, Items: []*pluginpb.Item{ev, stackItem(0, 1, 1)}}, "stack 1 with cookie 0"},
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
	acks, err := deliver(t, c, &pluginpb.Batch{Seq: 1, Items: []*pluginpb.Item{stackItem(3, 1, 1)}})
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
