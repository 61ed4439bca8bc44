package sdk

import (
	"context"
	"fmt"
	"strings"
)

// Tracer is what a plugin implements. The SDK calls it from one goroutine
// per connection, in the order the host sent things: Describe first, then
// Events, Stack and Lost as batches arrive. For any cookie, the events that
// carry it come before its Stack.
//
// A non-nil error from Events, Stack or Lost ends the delivery stream: the
// batch is not acknowledged and the host sees the plugin fail (and may
// reconnect or restart it). A tracer that wants to skip bad input logs it
// (see [Host.Logger]) and returns nil. A panic in a callback is recovered,
// logged with its goroutine stack, and ends the stream the same way, with an
// error that says "panic".
//
// Values passed to a Tracer are never modified by the SDK afterwards, so they
// may be retained (but by an [EventCopier], which copies its events);
// slices shared between stacks (see [Stack]) must not be modified.
type Tracer interface {
	// Describe is called once per host connection, first. The tracer
	// validates its config here (an error refuses the registration, and the
	// host reports it) and may keep info.Host.
	Describe(ctx context.Context, info DescribeInfo) (Description, error)
	// Events receives a run of consecutive events, in order.
	Events(ctx context.Context, events []Event) error
	// Stack receives one callback: the user stack of one kernel entry.
	Stack(ctx context.Context, s Stack) error
	// Lost reports what the host dropped because the plugin was too slow.
	Lost(ctx context.Context, l Lost) error
}

// Decider is implemented by a Tracer whose [Description] has [ModeDecide].
// Decide is called while the entries are still open, under the host's
// deadline (ctx): want[i] reports whether the plugin wants the stack of
// entries[i]. A shorter want means "no" for the rest; when the deadline
// passes or Decide fails, the host answers "no" for every entry.
//
// Decide may run concurrently with the delivery callbacks.
type Decider interface {
	Decide(ctx context.Context, entries []DecideEntry) (want []bool, err error)
}

// EventCopier is implemented by a Tracer that keeps nothing of the events
// slice [Tracer.Events] hands it, nor of any Event's Fields (nor a Field's
// Bytes), once the call returns: it copies what it keeps (strings may be
// kept: they never change). When CopiesEvents reports true, the SDK reuses
// one array of events and one of fields from batch to batch instead of
// allocating them for each, which are nine tenths of what a plugin
// allocates in BenchmarkDeliver; the default for a Tracer is the safe one,
// a fresh array per batch. The built-in plugins copy.
type EventCopier interface {
	CopiesEvents() bool
}

// Closer is implemented by a Tracer that wants to flush or release things
// when the plugin stops: [Serve] calls Close once the host has shut the
// plugin down. The host kills the process if Close takes more than a
// couple of seconds.
type Closer interface {
	Close() error
}

// DescribeInfo is what the host hands a plugin in [Tracer.Describe].
type DescribeInfo struct {
	Config      []byte // the plugin's config block from the host's config, as is; may be empty
	HostVersion string
	// Check is set when the host only checks the config (unwindd config
	// check, unwindd plugins list): the tracer validates it and describes
	// itself as usual, but must create nothing (no output directory, no
	// files, nothing to write at Close); no events or stacks follow.
	Check bool
	Host  *Host // the plugin's handle on the host; never nil
}

// Mode is a plugin's request mode: when the host requests a stack for it.
type Mode uint8

// The request modes. The zero Mode is ModeAlways.
const (
	ModeAlways Mode = iota // the host requests on the plugin's behalf on every matching event
	ModeNever              // events only (the plugin may still call Host.Request)
	ModeDecide             // the host asks the plugin's Decider before the entry closes
)

var modeNames = [...]string{"always", "never", "decide"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// SubscriptionKind says which events a [Subscription] selects.
type SubscriptionKind uint8

// The subscription kinds.
const (
	SubNone       SubscriptionKind = iota // invalid
	SubCPUClock                           // cpu-clock samples at Hz
	SubTracepoint                         // the tracepoint Group:Name
	SubSyscalls                           // the syscalls named in Syscalls, or all of them
)

// Subscription selects events. Build one with [CPUClock], [Tracepoint] or
// [Syscalls].
type Subscription struct {
	Kind     SubscriptionKind
	Hz       uint32   // SubCPUClock
	Group    string   // SubTracepoint, e.g. "sched"
	Name     string   // SubTracepoint, e.g. "sched_switch"
	Syscalls []string // SubSyscalls; empty: every syscall
	// EventsOnly says the plugin never wants a stack for these events:
	// in modes always and decide the host neither requests one nor asks
	// the plugin's Decider about an entry for them (an entry with another
	// event may still get its stack). A source may then skip copying the
	// user stack for them. An event that two subscriptions select may
	// want a stack if either does.
	EventsOnly bool
}

// EventsOnly returns s marked [Subscription.EventsOnly]:
// sdk.EventsOnly(sdk.Syscalls("read")).
func EventsOnly(s Subscription) Subscription { s.EventsOnly = true; return s }

// CPUClock subscribes to cpu-clock samples at hz per second.
func CPUClock(hz uint32) Subscription { return Subscription{Kind: SubCPUClock, Hz: hz} }

// Tracepoint subscribes to the tracepoint group:name.
func Tracepoint(group, name string) Subscription {
	return Subscription{Kind: SubTracepoint, Group: group, Name: name}
}

// Syscalls subscribes to the named syscalls' entries and exits; no names
// means every syscall.
func Syscalls(names ...string) Subscription {
	return Subscription{Kind: SubSyscalls, Syscalls: names}
}

func (s Subscription) String() string {
	if s.EventsOnly {
		s.EventsOnly = false
		return s.String() + " (events only)"
	}
	switch s.Kind {
	case SubCPUClock:
		return fmt.Sprintf("cpu-clock@%dHz", s.Hz)
	case SubTracepoint:
		return s.Group + ":" + s.Name
	case SubSyscalls:
		if len(s.Syscalls) == 0 {
			return "syscalls:*"
		}
		return "syscalls:" + strings.Join(s.Syscalls, ",")
	}
	return fmt.Sprintf("SubscriptionKind(%d)", uint8(s.Kind))
}

// checkValid reports the first way s is unusable.
func (s Subscription) checkValid() error {
	switch s.Kind {
	case SubCPUClock:
		if s.Hz == 0 {
			return fmt.Errorf("%w: cpu-clock subscription with 0 Hz", ErrInvalid)
		}
	case SubTracepoint:
		if s.Group == "" || s.Name == "" {
			return fmt.Errorf("%w: tracepoint subscription %q needs a group and a name", ErrInvalid, s.Group+":"+s.Name)
		}
	case SubSyscalls:
		for _, n := range s.Syscalls {
			if n == "" {
				return fmt.Errorf("%w: empty syscall name", ErrInvalid)
			}
		}
	default:
		return fmt.Errorf("%w: subscription of kind %d", ErrInvalid, s.Kind)
	}
	return nil
}

// Filter keeps the events whose task matches every non-empty list.
type Filter struct {
	PIDs  []int32
	TIDs  []int32
	Comms []string
}

// StackFilter selects the tasks whose kernel entries a plugin may get the
// user stacks of. The host checks it itself, in process, before it
// requests a stack for a plugin in [ModeAlways] or asks one in
// [ModeDecide]: a plugin that wants stacks of some tasks only says so here
// rather than deciding each entry across the process boundary. Events of
// every task still reach the plugin (that is [Filter]'s job). A task
// matches when each non-empty list does.
type StackFilter struct {
	IDs   []int32  // process or thread ids: the task's pid or its tid is listed
	Comms []string // command names
}

// Empty reports whether f selects every task.
func (f StackFilter) Empty() bool { return len(f.IDs) == 0 && len(f.Comms) == 0 }

// Description is a plugin's answer to [Tracer.Describe]: who it is and what
// it wants.
type Description struct {
	Name          string // required; the host's logs and summaries use it
	Version       string
	Subscriptions []Subscription
	Filter        Filter
	Mode          Mode
	StackFilter   StackFilter // modes always and decide: the tasks stacks may be requested for
}

// CheckValid reports the first way d is unusable: no name, an invalid
// subscription or an unknown mode. The error matches [ErrInvalid].
func (d *Description) CheckValid() error {
	if d.Name == "" {
		return fmt.Errorf("%w: description has no name", ErrInvalid)
	}
	for i, s := range d.Subscriptions {
		if err := s.checkValid(); err != nil {
			return fmt.Errorf("subscription %d: %w", i, err)
		}
	}
	if int(d.Mode) >= len(modeNames) {
		return fmt.Errorf("%w: unknown mode %v", ErrInvalid, d.Mode)
	}
	return nil
}
