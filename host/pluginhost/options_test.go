package pluginhost

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/deferred"
	"github.com/unwindd/unwindd/sdk"
	"google.golang.org/protobuf/proto"
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
		{"flow delay", []Spec{ok}, Options{FlowDelay: 6 * time.Millisecond}, "FlowDelay 6ms must be <= 5ms"},
		{"flow delay under batch delay", []Spec{ok}, Options{BatchDelay: 3 * time.Millisecond, FlowDelay: 2 * time.Millisecond}, "FlowDelay 2ms must be >= BatchDelay 3ms"},
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
	if o.BatchSize != 8192 || o.BatchDelay != 2*time.Millisecond || o.FlowDelay != 5*time.Millisecond || o.Window != 16 || o.MaxQuickCrashes != 5 || o.DrainTimeout != 5*time.Second {
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
	if !all.stackOK(other, &Event{Kind: KindSample, Comm: "x"}) {
		t.Error("no StackFilter: a task's stack refused")
	}
}

// TestEventsOnly: events that only events-only subscriptions select match
// (they are delivered) but never let the host request or ask for a stack;
// one a stack-wanting subscription also selects does.
func TestEventsOnly(t *testing.T) {
	eng, err := deferred.New(deferred.Options{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	tk, _ := eng.AddTask(11, 10, deferred.KindUser)
	m := newMatcher(&sdk.Description{Subscriptions: []sdk.Subscription{
		sdk.Syscalls("getpid"),
		sdk.EventsOnly(sdk.Syscalls("openat", "write")),
		sdk.EventsOnly(sdk.Syscalls("getpid")), // getpid also stack-wanting above: stack
		sdk.EventsOnly(sdk.Tracepoint("sched", "sched_switch")),
		sdk.Tracepoint("sched", "sched_wakeup"),
		sdk.EventsOnly(sdk.CPUClock(99)),
	}})
	for _, c := range []struct {
		ev           Event
		match, stack bool
	}{
		{Event{Kind: KindSyscallEnter, Name: "getpid"}, true, true},
		{Event{Kind: KindSyscallExit, Name: "getpid"}, true, true},
		{Event{Kind: KindSyscallEnter, Name: "openat"}, true, false},
		{Event{Kind: KindSyscallEnter, Name: "write"}, true, false},
		{Event{Kind: KindSyscallEnter, Name: "read"}, false, false},
		{Event{Kind: KindTracepoint, Name: "sched:sched_switch"}, true, false},
		{Event{Kind: KindTracepoint, Name: "sched:sched_wakeup"}, true, true},
		{Event{Kind: KindSample, Name: "cpu-clock"}, true, false},
	} {
		if got := m.match(tk, &c.ev); got != c.match {
			t.Errorf("%v %s: match %v, want %v", c.ev.Kind, c.ev.Name, got, c.match)
		}
		if got := m.stackOK(tk, &c.ev); c.match && got != c.stack {
			t.Errorf("%v %s: stackOK %v, want %v", c.ev.Kind, c.ev.Name, got, c.stack)
		}
	}
	all := newMatcher(&sdk.Description{Subscriptions: []sdk.Subscription{sdk.EventsOnly(sdk.Syscalls()), sdk.Syscalls("read")}})
	if !all.match(tk, &Event{Kind: KindSyscallEnter, Name: "write"}) || all.stackOK(tk, &Event{Kind: KindSyscallEnter, Name: "write"}) ||
		!all.stackOK(tk, &Event{Kind: KindSyscallEnter, Name: "read"}) {
		t.Error("every syscall events-only, read with stacks: wrong")
	}
}

// TestStackFilter: a task matches when its pid or its tid is in IDs and its
// comm in Comms, each list checked only when set.
func TestStackFilter(t *testing.T) {
	eng, err := deferred.New(deferred.Options{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	main, _ := eng.AddTask(10, 10, deferred.KindUser)
	thread, _ := eng.AddTask(11, 10, deferred.KindUser)
	other, _ := eng.AddTask(21, 20, deferred.KindUser)
	for _, c := range []struct {
		name string
		f    sdk.StackFilter
		t    *deferred.Task
		comm string
		want bool
	}{
		{"ids: the process's pid, main thread", sdk.StackFilter{IDs: []int32{10}}, main, "app", true},
		{"ids: the process's pid, another thread", sdk.StackFilter{IDs: []int32{10}}, thread, "app", true},
		{"ids: a thread's tid", sdk.StackFilter{IDs: []int32{11}}, thread, "app", true},
		{"ids: a thread's tid, not its sibling", sdk.StackFilter{IDs: []int32{11}}, main, "app", false},
		{"ids: another process", sdk.StackFilter{IDs: []int32{10}}, other, "app", false},
		{"comms", sdk.StackFilter{Comms: []string{"app", "db"}}, other, "db", true},
		{"comms: no", sdk.StackFilter{Comms: []string{"app"}}, other, "db", false},
		{"both: yes", sdk.StackFilter{IDs: []int32{21}, Comms: []string{"db"}}, other, "db", true},
		{"both: comm no", sdk.StackFilter{IDs: []int32{21}, Comms: []string{"app"}}, other, "db", false},
	} {
		m := newMatcher(&sdk.Description{Subscriptions: []sdk.Subscription{sdk.Syscalls()}, StackFilter: c.f})
		if got := m.stackOK(c.t, &Event{Kind: KindSyscallEnter, Name: "read", Comm: c.comm}); got != c.want {
			t.Errorf("%s: stackOK = %v, want %v", c.name, got, c.want)
		}
	}
}

// fakeResolver names every pc inside one mapping.
type fakeResolver struct{}

func (fakeResolver) Resolve(pid int32, pc uint64, _ bool) Location {
	if pc < 0x400000 || pc >= 0x800000 {
		return Location{}
	}
	return Location{
		Mapping:  Mapping{Start: 0x400000, Limit: 0x800000, Path: "/bin/app", BuildID: "\x01\x02"},
		Function: "f" + string(rune('a'+pc%4)), FunctionOffset: pc % 16,
	}
}

// uvs and svs decode a column of uvarints and of svarints.
func uvs(b []byte) []uint64 {
	var vs []uint64
	for len(b) > 0 {
		v, n := binary.Uvarint(b)
		vs, b = append(vs, v), b[n:]
	}
	return vs
}

func svs(b []byte) []int64 {
	var vs []int64
	for len(b) > 0 {
		v, n := binary.Varint(b)
		vs, b = append(vs, v), b[n:]
	}
	return vs
}

func TestEncoder(t *testing.T) {
	enc := newEncoder(fakeResolver{})
	mk := func(cookie uint64, pid int32, pcs ...uint64) *stack {
		types := make([]byte, len(pcs))
		for i := range types {
			types[i] = byte(x86_64.TypeFramePointer)
		}
		return &stack{cookie: cookie, pid: pid, pcs: pcs, types: types, end: x86_64.EndOutermost}
	}
	enc.begin()
	enc.stack(mk(1, 7, 0x401000, 0x401001, 0x900000))
	enc.stack(mk(3, 7, 0x401000, 0x401001, 0x900000)) // same stack: a reference only
	enc.stack(mk(5, 8, 0x401000, 0x401001, 0x900000)) // another process: another stack
	enc.event(&Event{Kind: KindSample, Name: "cpu-clock", Comm: "app"}, 7, 7, 1)
	enc.event(&Event{Kind: KindSample, Name: "cpu-clock", Comm: "app"}, 7, 7, 3)
	b := enc.finish(1)
	if got := uvs(b.GetRefs().GetStackIds()); !slices.Equal(got, []uint64{1, 1, 2}) {
		t.Fatalf("stack ids %v, want [1 1 2]", got)
	}
	if got := uvs(b.GetStacks().GetLengths()); !slices.Equal(got, []uint64{3, 3}) {
		t.Fatalf("stack lengths %v", got)
	}
	// locations 1 2 3, then 4 5 6 (another pid), as deltas.
	if got := svs(b.GetStacks().GetLocationDeltas()); !slices.Equal(got, []int64{1, 1, 1, 1, 1, 1}) {
		t.Errorf("location deltas %v", got)
	}
	// Strings: the path, fa, fb (function names), cpu-clock, app.
	if len(b.GetMappings()) != 1 || b.GetLocations().GetCount() != 6 || len(b.GetStrings()) != 5 {
		t.Errorf("mappings %d, locations %d, strings %q; want 1, 6, 5", len(b.GetMappings()), b.GetLocations().GetCount(), b.GetStrings())
	}
	if l := b.GetLocations(); uvs(l.GetAddresses())[2] != 0x900000 || uvs(l.GetMappingIds())[2] != 0 || uvs(l.GetFunctions())[2] != 0 {
		t.Errorf("unmapped location: %v", l)
	}
	if ev := b.GetEvents(); ev.GetTimeDeltas() != nil || ev.GetFieldCounts() != nil || !slices.Equal(uvs(ev.GetContexts()), []uint64{1, 1}) ||
		!slices.Equal(svs(ev.GetCookieDeltas()), []int64{1, 2}) {
		t.Errorf("events: all-zero columns must be left out, the context interned once, cookies delta-coded: %v", ev)
	}
	if x := b.GetContexts(); x.GetCpus() != nil || !slices.Equal(uvs(x.GetNames()), []uint64{4}) || !slices.Equal(uvs(x.GetComms()), []uint64{5}) {
		t.Errorf("contexts: %v", x)
	}
	if got := b.GetRuns(); !slices.Equal(got, []uint32{3<<2 | 2, 2<<2 | 1}) {
		t.Errorf("runs %v", got)
	}
	if enc.defs != 2 || enc.refs != 1 || enc.len() != 5 {
		t.Errorf("defs %d refs %d items %d", enc.defs, enc.refs, enc.len())
	}
	enc.clear()
	enc.begin()
	if !enc.empty() {
		t.Error("cleared encoder not empty")
	}
	enc.stack(mk(9, 7, 0x401000, 0x401001, 0x900000))
	if b := enc.finish(2); len(b.GetStrings())+len(b.GetMappings()) != 0 || b.GetStacks() != nil || uvs(b.GetRefs().GetStackIds())[0] != 1 {
		t.Errorf("second batch re-sent definitions: %v", b)
	}
	enc.clear()
	// Past a table's bound, the next batch resets the tables.
	for i := range maxLocations / 3 {
		enc.stack(mk(11, 7, uint64(i)*3, uint64(i)*3+1, uint64(i)*3+2))
	}
	enc.clear()
	enc.begin()
	enc.stack(mk(9, 7, 0x401000, 0x401001, 0x900000))
	if b := enc.finish(3); !b.GetResetTables() || uvs(b.GetRefs().GetStackIds())[0] != 1 || b.GetLocations().GetCount() != 3 {
		t.Errorf("after the bound: reset %v, refs %v, locations %v", b.GetResetTables(), b.GetRefs(), b.GetLocations())
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

// TestWants: what a live source must open, merged over the running
// plugins: a stack is wanted for events some plugin not in mode never
// subscribed to other than events-only.
func TestWants(t *testing.T) {
	for _, c := range []struct {
		name  string
		descs []sdk.Description
		want  Wants
	}{
		{"events-only syscalls, stacks for samples", []sdk.Description{
			{Mode: sdk.ModeDecide, Subscriptions: []sdk.Subscription{sdk.EventsOnly(sdk.Syscalls("read")), sdk.CPUClock(99)}},
		}, Wants{Samples: true, SampleStack: true, Hz: 99, Syscalls: true, Tracepoints: map[string]bool{}}},
		{"one plugin's stack is enough", []sdk.Description{
			{Mode: sdk.ModeAlways, Subscriptions: []sdk.Subscription{sdk.EventsOnly(sdk.Syscalls()), sdk.EventsOnly(sdk.Tracepoint("sched", "sched_switch"))}},
			{Mode: sdk.ModeAlways, Subscriptions: []sdk.Subscription{sdk.Syscalls("write"), sdk.Tracepoint("sched", "sched_switch")}},
		}, Wants{Syscalls: true, SyscallStack: true, Tracepoints: map[string]bool{"sched:sched_switch": true}}},
		{"mode never wants no stack", []sdk.Description{
			{Mode: sdk.ModeNever, Subscriptions: []sdk.Subscription{sdk.Syscalls(), sdk.CPUClock(49), sdk.Tracepoint("sched", "sched_wakeup")}},
		}, Wants{Samples: true, Hz: 49, Syscalls: true, Tracepoints: map[string]bool{"sched:sched_wakeup": false}}},
	} {
		m := &Manager{}
		var live []*instance
		for i := range c.descs {
			live = append(live, &instance{match: newMatcher(&c.descs[i]), mode: modeOf(c.descs[i].Mode)})
		}
		m.live.Store(&live)
		if got := m.Wants(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Wants() = %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestEncoderBytes: the encoder's running size is what bounds a batch in
// bytes; the marshalled batch it bounds must not be much larger, whatever
// the items (large fields, new strings, distinct stacks, references).
func TestEncoderBytes(t *testing.T) {
	pcs := func(i int) []uint64 {
		p := make([]uint64, 16)
		for j := range p {
			p[j] = 0x7f0000000000 + uint64(i)*0x1000 + uint64(j)*0x40
		}
		return p
	}
	for _, tc := range []struct {
		name string
		add  func(e *encoder, i int)
	}{
		{"large fields", func(e *encoder, i int) {
			e.event(&Event{Kind: KindSyscallEnter, Name: "write", TimeNS: uint64(i) << 30, Fields: []Field{
				{Name: "buf", Kind: FieldBytes, Bytes: make([]byte, 3000+i%5000)}, {Name: "fd", Kind: FieldInt, Int: -1}}}, 1, 1, 0)
		}},
		{"new strings", func(e *encoder, i int) {
			e.event(&Event{Kind: KindTracepoint, Name: fmt.Sprintf("group:tracepoint_%d", i), Comm: fmt.Sprintf("comm-%d", i), CPU: int32(i)}, int32(i), int32(i), uint64(i)<<40)
		}},
		{"distinct stacks", func(e *encoder, i int) {
			s := newStack(16)
			s.cookie, s.pid, s.tid, s.timeNS, s.end = uint64(i)<<33|1, int32(i), int32(i), uint64(i)<<31, x86_64.EndOutermost
			copy(s.pcs, pcs(i))
			for j := range s.types {
				s.types[j] = byte(x86_64.TypeCFI)
			}
			e.stack(s)
		}},
		{"references", func(e *encoder, i int) {
			s := newStack(16)
			s.cookie, s.pid, s.tid, s.timeNS, s.end = uint64(i)<<33|1, 1, 1, uint64(i)<<31, x86_64.EndOutermost
			copy(s.pcs, pcs(i%8))
			for j := range s.types {
				s.types[j] = byte(x86_64.TypeFramePointer)
			}
			e.stack(s)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := newEncoder(fakeResolver{})
			enc.begin()
			n := 0
			for ; !enc.batchFull(1 << 30); n++ {
				tc.add(enc, n)
			}
			size := proto.Size(enc.finish(1))
			t.Logf("%d items: estimated %d bytes, marshalled %d", n, enc.bytes, size)
			if size > maxBatchBytes*5/4 {
				t.Errorf("a batch cut at %d estimated bytes marshals to %d, past %d", enc.bytes, size, maxBatchBytes*5/4)
			}
		})
	}
}
