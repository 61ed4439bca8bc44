package pluginhost

import (
	"fmt"
	"slices"

	"github.com/unwindd/unwindd/host/deferred"
	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// EventKind says what produced an [Event].
type EventKind uint8

// The kinds of events plugins subscribe to.
const (
	KindUnknown      EventKind = iota
	KindSample                 // a cpu-clock sample
	KindTracepoint             // a tracepoint hit; Name is "group:name"
	KindSyscallEnter           // raw_syscalls:sys_enter; Name is the syscall's name
	KindSyscallExit            // raw_syscalls:sys_exit; Name is the syscall's name
)

// Event is one event inside a task's kernel entry, as a source sees it. The
// task (pid, tid) and the cookie come from the [deferred.Task] it is
// dispatched with.
type Event struct {
	Kind   EventKind
	Name   string
	TimeNS uint64
	CPU    int32
	Comm   string
	Period uint64
	// Fields are shared by the copies sent to each plugin: the caller must
	// not change them after handing the event over.
	Fields []Field
}

// FieldKind says which value a [Field] holds.
type FieldKind uint8

// The kinds of field values.
const (
	FieldNone FieldKind = iota
	FieldInt
	FieldUint
	FieldString
	FieldBytes
)

// Field is one named field of an event: Kind says which value it holds.
type Field struct {
	Name  string
	Kind  FieldKind
	Int   int64
	Uint  uint64
	Str   string
	Bytes []byte
}

// Mode is a plugin's request mode.
type Mode uint8

// Request modes.
const (
	ModeNever  Mode = iota // events only
	ModeAlways             // the host requests the stack on every matching event
	ModeDecide             // the host asks the plugin before the entry closes
)

func (m Mode) String() string {
	switch m {
	case ModeNever:
		return "never"
	case ModeAlways:
		return "always"
	case ModeDecide:
		return "decide"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// matcher is a plugin's subscriptions and filter, compiled once per
// connection; match takes no lock and allocates nothing.
type matcher struct {
	samples     bool
	sampleStack bool            // some cpu-clock subscription is not events-only
	hz          uint32          // the highest cpu-clock rate asked for
	tracepoints map[string]bool // "group:name" → a stack may be wanted (not events-only)
	allSyscalls bool
	allStack    bool            // the every-syscall subscription is not events-only
	syscalls    map[string]bool // name → a stack may be wanted (not events-only)
	pids, tids  []int32
	comms       []string
	stackIDs    []int32  // sdk.StackFilter
	stackComms  []string // sdk.StackFilter
}

// newMatcher compiles d, which passed sdk's CheckValid.
func newMatcher(d *sdk.Description) *matcher {
	m := &matcher{tracepoints: map[string]bool{}, syscalls: map[string]bool{}}
	for _, s := range d.Subscriptions {
		stack := !s.EventsOnly
		switch s.Kind {
		case sdk.SubCPUClock:
			m.samples, m.sampleStack = true, m.sampleStack || stack
			m.hz = max(m.hz, s.Hz)
		case sdk.SubTracepoint:
			tp := s.Group + ":" + s.Name
			m.tracepoints[tp] = m.tracepoints[tp] || stack
		case sdk.SubSyscalls:
			if len(s.Syscalls) == 0 {
				m.allSyscalls, m.allStack = true, m.allStack || stack
			}
			for _, n := range s.Syscalls {
				m.syscalls[n] = m.syscalls[n] || stack
			}
		}
	}
	m.pids, m.tids, m.comms = slices.Clone(d.Filter.PIDs), slices.Clone(d.Filter.TIDs), slices.Clone(d.Filter.Comms)
	m.stackIDs, m.stackComms = slices.Clone(d.StackFilter.IDs), slices.Clone(d.StackFilter.Comms)
	return m
}

// stackOK reports whether the host may request (or ask for) the stack of
// t's entry for ev, which matched: some subscription that selects ev is
// not events-only, and t passes the plugin's StackFilter.
func (m *matcher) stackOK(t *deferred.Task, ev *Event) bool {
	switch ev.Kind {
	case KindSample:
		if !m.sampleStack {
			return false
		}
	case KindTracepoint:
		if !m.tracepoints[ev.Name] {
			return false
		}
	case KindSyscallEnter, KindSyscallExit:
		if !m.syscalls[ev.Name] && !(m.allSyscalls && m.allStack) {
			return false
		}
	}
	if len(m.stackIDs) > 0 && !slices.Contains(m.stackIDs, t.PID()) && !slices.Contains(m.stackIDs, t.TID()) {
		return false
	}
	return len(m.stackComms) == 0 || slices.Contains(m.stackComms, ev.Comm)
}

func (m *matcher) match(t *deferred.Task, ev *Event) bool {
	switch ev.Kind {
	case KindSample:
		if !m.samples {
			return false
		}
	case KindTracepoint:
		if _, ok := m.tracepoints[ev.Name]; !ok {
			return false
		}
	case KindSyscallEnter, KindSyscallExit:
		if _, ok := m.syscalls[ev.Name]; !ok && !m.allSyscalls {
			return false
		}
	default:
		return false
	}
	if len(m.pids) > 0 && !slices.Contains(m.pids, t.PID()) {
		return false
	}
	if len(m.tids) > 0 && !slices.Contains(m.tids, t.TID()) {
		return false
	}
	if len(m.comms) > 0 && !slices.Contains(m.comms, ev.Comm) {
		return false
	}
	return true
}

func modeOf(m sdk.Mode) Mode {
	switch m {
	case sdk.ModeAlways:
		return ModeAlways
	case sdk.ModeDecide:
		return ModeDecide
	}
	return ModeNever
}

// toPB converts ev for a Decide request.
func toPB(ev *Event, pid, tid int32, cookie uint64) *pluginpb.Event {
	pe := &pluginpb.Event{
		Kind: pluginpb.EventKind(ev.Kind), Name: []byte(ev.Name), TimeNs: ev.TimeNS, Cpu: ev.CPU,
		Pid: pid, Tid: tid, Comm: []byte(ev.Comm), Cookie: cookie, Period: ev.Period,
	}
	if len(ev.Fields) > 0 {
		pe.Fields = make([]*pluginpb.Field, len(ev.Fields))
		for i := range ev.Fields {
			pe.Fields[i] = fieldToPB(&ev.Fields[i])
		}
	}
	return pe
}

func fieldToPB(f *Field) *pluginpb.Field {
	pf := &pluginpb.Field{Name: f.Name}
	switch f.Kind {
	case FieldInt:
		pf.Value = &pluginpb.Field_Int{Int: f.Int}
	case FieldUint:
		pf.Value = &pluginpb.Field_Uint{Uint: f.Uint}
	case FieldString:
		pf.Value = &pluginpb.Field_Str{Str: []byte(f.Str)}
	case FieldBytes:
		pf.Value = &pluginpb.Field_Raw{Raw: f.Bytes}
	}
	return pf
}
