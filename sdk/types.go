package sdk

import (
	"fmt"
	"strconv"
)

// EventKind says what produced an [Event].
type EventKind uint8

// The kinds of events a plugin can subscribe to.
const (
	KindUnknown      EventKind = iota // not set by the host (never sent by a valid host)
	KindSample                        // a cpu-clock sample ([CPUClock])
	KindTracepoint                    // a tracepoint hit ([Tracepoint])
	KindSyscallEnter                  // raw_syscalls:sys_enter ([Syscalls])
	KindSyscallExit                   // raw_syscalls:sys_exit ([Syscalls])
)

var eventKindNames = [...]string{"unknown", "sample", "tracepoint", "syscall-enter", "syscall-exit"}

func (k EventKind) String() string {
	if int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one event the plugin subscribed to, in the kernel entry of one
// task.
type Event struct {
	Kind   EventKind
	Name   string // "group:name" for tracepoints, the syscall name for syscalls, "cpu-clock" for samples
	Time   uint64 // nanoseconds on the host's event clock (perf's clock)
	CPU    int32
	PID    int32
	TID    int32
	Comm   string
	Cookie uint64 // the entry's cookie when a stack was requested for this plugin, else 0
	Period uint64 // samples: the sampling period
	Fields []Field
}

// FieldKind says which value a [Field] holds.
type FieldKind uint8

// The kinds of field values.
const (
	FieldNone   FieldKind = iota // no value
	FieldInt                     // Field.Int
	FieldUint                    // Field.Uint
	FieldString                  // Field.Str
	FieldBytes                   // Field.Bytes
)

// Field is one named field of a tracepoint or syscall event. It is a small
// tagged value rather than an interface, so that decoding a field does not
// allocate: Kind says which of Int, Uint, Str or Bytes holds the value.
type Field struct {
	Name  string
	Kind  FieldKind
	Int   int64
	Uint  uint64
	Str   string
	Bytes []byte
}

// IntField returns a signed integer field.
func IntField(name string, v int64) Field { return Field{Name: name, Kind: FieldInt, Int: v} }

// UintField returns an unsigned integer field.
func UintField(name string, v uint64) Field { return Field{Name: name, Kind: FieldUint, Uint: v} }

// StringField returns a string field.
func StringField(name, v string) Field { return Field{Name: name, Kind: FieldString, Str: v} }

// BytesField returns a raw bytes field.
func BytesField(name string, v []byte) Field { return Field{Name: name, Kind: FieldBytes, Bytes: v} }

// Value returns the field's value as an int64, uint64, string, []byte, or
// nil for [FieldNone]. It allocates for integers; prefer the typed fields on
// hot paths.
func (f Field) Value() any {
	switch f.Kind {
	case FieldInt:
		return f.Int
	case FieldUint:
		return f.Uint
	case FieldString:
		return f.Str
	case FieldBytes:
		return f.Bytes
	}
	return nil
}

// String formats the field as ftrace does: name=value (bytes in hex).
func (f Field) String() string {
	switch f.Kind {
	case FieldInt:
		return f.Name + "=" + strconv.FormatInt(f.Int, 10)
	case FieldUint:
		return f.Name + "=" + strconv.FormatUint(f.Uint, 10)
	case FieldString:
		return f.Name + "=" + f.Str
	case FieldBytes:
		return fmt.Sprintf("%s=%x", f.Name, f.Bytes)
	}
	return f.Name + "="
}

// FrameType says which unwind method produced a [Frame]. The names match the
// host's unwinder.
type FrameType uint8

// The unwind methods.
const (
	TypeNone         FrameType = iota // not set (invalid in a Stack)
	TypeSFrame                        // .sframe section
	TypeCFI                           // DWARF CFI from .eh_frame
	TypeFramePointer                  // rbp chain
	TypeRegs                          // the first frame: the live ip
	TypeCallchain                     // recorded by the kernel (perf -g), not unwound by the host
	numFrameTypes
)

var frameTypeNames = [...]string{"none", "sframe", "cfi", "fp", "regs", "callchain"}

func (t FrameType) String() string {
	if int(t) < len(frameTypeNames) {
		return frameTypeNames[t]
	}
	return fmt.Sprintf("FrameType(%d)", uint8(t))
}

// Valid reports whether t is one of the unwind methods (not [TypeNone]).
func (t FrameType) Valid() bool { return t > TypeNone && t < numFrameTypes }

// EndReason says why the host's walk of a stack stopped. Every stack has one;
// none of them is an error.
type EndReason uint8

// The reasons a walk ends.
const (
	EndNone       EndReason = iota // not set (invalid in a Stack)
	EndOutermost                   // the outermost frame was reached
	EndUnreadable                  // memory a step needed could not be read
	EndSnapshot                    // a step needed memory beyond the stack snapshot
	EndInvalid                     // a frame broke a rule (bp < sp, misaligned CFA…)
	EndDepth                       // the depth limit was reached
	EndNoRegs                      // no registers to start from
	numEndReasons
)

var endReasonNames = [...]string{"none", "outermost", "unreadable", "end-of-snapshot", "invalid-frame", "depth-limit", "no-regs"}

func (r EndReason) String() string {
	if int(r) < len(endReasonNames) {
		return endReasonNames[r]
	}
	return fmt.Sprintf("EndReason(%d)", uint8(r))
}

// Valid reports whether r is one of the end reasons (not [EndNone]).
func (r EndReason) Valid() bool { return r > EndNone && r < numEndReasons }

// Mapping is a file (or anonymous region) mapped into a process.
type Mapping struct {
	Start   uint64 // first address of the mapping
	Limit   uint64 // first address after it
	Offset  uint64 // file offset mapped at Start
	Path    string
	BuildID []byte // the ELF build-id, if known
}

// Frame is one frame of a user stack.
type Frame struct {
	Addr     uint64   // the ip (first frame) or return address
	Mapping  *Mapping // the mapping Addr falls in; nil if unmapped
	Function string   // the symbol; "" if none was found
	Offset   uint64   // Addr's offset from the start of Function
	Type     FrameType
}

// Stack is one callback: the user stack of one kernel entry of one task, for
// the cookie this plugin was given when its stack was requested.
//
// Frames (and the Mappings they point to) are shared between every Stack
// with the same interned stack: they are never modified after decoding and
// may be retained, but must not be modified.
type Stack struct {
	Cookie uint64
	PID    int32
	TID    int32
	Time   uint64  // nanoseconds on the host's wall clock when the callback ran; not the events' clock
	Frames []Frame // leaf first; may be empty (End says why)
	End    EndReason
}

// CheckValid reports the first way s breaks the protocol's rules: a zero
// cookie, a frame with an invalid [FrameType], or an invalid [EndReason].
// The host runs it before sending a stack; the SDK applies the same rules
// when it decodes one. The error matches [ErrProtocol].
func (s *Stack) CheckValid() error {
	if s.Cookie == 0 {
		return fmt.Errorf("%w: stack of tid %d has cookie 0", ErrProtocol, s.TID)
	}
	if !s.End.Valid() {
		return fmt.Errorf("%w: stack of cookie %#x has end reason %v", ErrProtocol, s.Cookie, s.End)
	}
	for i := range s.Frames {
		if t := s.Frames[i].Type; !t.Valid() {
			return fmt.Errorf("%w: stack of cookie %#x: frame %d has type %v", ErrProtocol, s.Cookie, i, t)
		}
	}
	return nil
}

// Lost tells the plugin what the host dropped for it since the last notice,
// because the plugin's outbox was full.
type Lost struct {
	Events  uint64
	Stacks  uint64
	Cookies []uint64 // entries whose events or stack were dropped
}

// DecideEntry is one open kernel entry offered to a [Decider], with the
// events the plugin saw in it so far.
type DecideEntry struct {
	PID    int32
	TID    int32
	Events []Event
}
