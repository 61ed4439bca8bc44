package pluginhost

import (
	"strings"
	"testing"
	"time"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/deferred"
	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

func TestNewValidates(t *testing.T) {
	eng, err := deferred.New(deferred.Options{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	ok := Spec{Name: "p", Path: "/bin/true"}
	with := func(f func(*Spec)) []Spec { s := ok; f(&s); return []Spec{s} }
	cases := []struct {
		name  string
		specs []Spec
		opts  Options
		err   string
	}{
		{"outbox", with(func(s *Spec) { s.OutboxSize = -1 }), Options{}, `pluginhost: plugin "p": OutboxSize -1 must be > 0`},
		{"deadline", with(func(s *Spec) { s.DecideDeadline = -time.Second }), Options{}, "DecideDeadline"},
		{"no name", with(func(s *Spec) { s.Name = "" }), Options{}, "Spec.Name must not be empty"},
		{"no path", with(func(s *Spec) { s.Path = "" }), Options{}, "Path must not be empty"},
		{"sha", with(func(s *Spec) { s.SHA256 = "abc" }), Options{}, "SHA256 must be 64 hex digits"},
		{"user", with(func(s *Spec) { s.User = "no-such-user-unwindd" }), Options{}, `look up user "no-such-user-unwindd"`},
		{"group", with(func(s *Spec) { s.Group = "no-such-group-unwindd" }), Options{}, `look up group "no-such-group-unwindd"`},
		{"twice", []Spec{ok, ok}, Options{}, `plugin name "p" used twice`},
		{"batch delay", []Spec{ok}, Options{BatchDelay: 6 * time.Millisecond}, "BatchDelay 6ms must be <= 5ms"},
		{"batch size", []Spec{ok}, Options{BatchSize: -1}, "pluginhost: BatchSize must be >= 0"},
		{"window", []Spec{ok}, Options{Window: -1}, "Window"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(eng, tc.specs, tc.opts, nil)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("New: %v, want an error containing %q", err, tc.err)
			}
		})
	}
	if _, err := New(nil, nil, Options{}, nil); err == nil {
		t.Error("New with a nil engine succeeded")
	}
	m, err := New(eng, []Spec{ok}, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := m.opts
	if o.BatchSize != 512 || o.BatchDelay != 2*time.Millisecond || o.Window != 16 || o.MaxQuickCrashes != 5 || o.DrainTimeout != 5*time.Second {
		t.Errorf("defaults: %+v", o)
	}
	if p := m.plugins[0].spec; p.OutboxSize != 8192 || p.DecideDeadline != 20*time.Millisecond {
		t.Errorf("spec defaults: outbox %d deadline %v", p.OutboxSize, p.DecideDeadline)
	}
	s := m.Stats()
	if len(s) != 1 || s[0].Name != "p" || s[0].State != StateStarting || s[0].Bit != -1 {
		t.Errorf("stats before Run: %+v", s)
	}
}

func TestMatcher(t *testing.T) {
	eng, err := deferred.New(deferred.Options{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	tk, _ := eng.AddTask(11, 10, deferred.KindUser)
	other, _ := eng.AddTask(21, 20, deferred.KindUser)
	m := newMatcher(&sdk.Description{
		Subscriptions: []sdk.Subscription{sdk.Tracepoint("sched", "sched_switch"), sdk.Syscalls("read", "write")},
		Filter:        sdk.Filter{PIDs: []int32{10}, Comms: []string{"app"}},
	})
	cases := []struct {
		t    *deferred.Task
		ev   Event
		want bool
	}{
		{tk, Event{Kind: KindTracepoint, Name: "sched:sched_switch", Comm: "app"}, true},
		{tk, Event{Kind: KindTracepoint, Name: "sched:sched_wakeup", Comm: "app"}, false},
		{tk, Event{Kind: KindSyscallExit, Name: "write", Comm: "app"}, true},
		{tk, Event{Kind: KindSyscallEnter, Name: "openat", Comm: "app"}, false},
		{tk, Event{Kind: KindSample, Comm: "app"}, false},
		{tk, Event{Kind: KindSyscallEnter, Name: "read", Comm: "other"}, false},
		{other, Event{Kind: KindSyscallEnter, Name: "read", Comm: "app"}, false},
	}
	for i, c := range cases {
		if got := m.match(c.t, &c.ev); got != c.want {
			t.Errorf("case %d (%+v): match %v, want %v", i, c.ev, got, c.want)
		}
	}
	all := newMatcher(&sdk.Description{Subscriptions: []sdk.Subscription{sdk.Syscalls(), sdk.CPUClock(99)}})
	if !all.match(other, &Event{Kind: KindSyscallEnter, Name: "anything"}) || !all.match(other, &Event{Kind: KindSample}) {
		t.Error("all syscalls and samples: no match")
	}
}

// fakeResolver names every pc inside one mapping.
type fakeResolver struct{}

func (fakeResolver) Resolve(pid int32, pc uint64) Location {
	if pc < 0x400000 || pc >= 0x800000 {
		return Location{}
	}
	return Location{
		Mapping:  Mapping{Start: 0x400000, Limit: 0x800000, Path: "/bin/app", BuildID: "\x01\x02"},
		Function: "f" + string(rune('a'+pc%4)), FunctionOffset: pc % 16,
	}
}

func TestInterner(t *testing.T) {
	in := newInterner(fakeResolver{})
	mk := func(cookie uint64, pid int32, pcs ...uint64) *stack {
		types := make([]byte, len(pcs))
		for i := range types {
			types[i] = byte(x86_64.TypeFramePointer)
		}
		return &stack{cookie: cookie, pid: pid, pcs: pcs, types: types, end: x86_64.EndOutermost}
	}
	b := &pluginpb.Batch{}
	r1 := in.stackRef(b, mk(1, 7, 0x401000, 0x401001, 0x900000))
	r2 := in.stackRef(b, mk(3, 7, 0x401000, 0x401001, 0x900000)) // same stack: a reference only
	r3 := in.stackRef(b, mk(5, 8, 0x401000, 0x401001, 0x900000)) // another process: another stack
	if len(b.Stacks) != 2 || r1.GetStack().GetStackId() != r2.GetStack().GetStackId() || r3.GetStack().GetStackId() == r1.GetStack().GetStackId() {
		t.Fatalf("stacks %v, refs %v %v %v", b.Stacks, r1, r2, r3)
	}
	if len(b.Mappings) != 1 || len(b.Locations) != 6 || len(b.Functions) != 2 {
		t.Errorf("mappings %d, locations %d, functions %d; want 1, 6, 2", len(b.Mappings), len(b.Locations), len(b.Functions))
	}
	if l := b.Locations[2]; l.GetMappingId() != 0 || l.GetFunctionId() != 0 || l.GetAddress() != 0x900000 {
		t.Errorf("unmapped location: %v", l)
	}
	if in.defs != 2 || in.refs != 1 {
		t.Errorf("defs %d refs %d", in.defs, in.refs)
	}
	// A trace the engine left without an end reason or with untyped frames
	// is made valid for the sdk.
	s := &stack{cookie: 9, pcs: []uint64{1, 2}, types: []byte{byte(x86_64.TypeRegs), 0}}
	sanitize(s)
	if len(s.pcs) != 1 || s.end != x86_64.EndInvalid {
		t.Errorf("sanitize: %+v", s)
	}
	s = &stack{cookie: 9}
	sanitize(s)
	if s.end != x86_64.EndNoRegs {
		t.Errorf("sanitize empty: %+v", s)
	}
}
