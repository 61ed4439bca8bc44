package main

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/syscalls"
)

// traceWriter writes trace.txt: one line per event, one block per stack,
// one line per lost notice, in the order the host sends them (see the
// package doc for the layout). It is not safe for concurrent use.
type traceWriter struct {
	w       *bufio.Writer
	args    *argNames // syscall argument names, from tracefs
	pending pending   // what the stack header of each cookie shows
	line    []byte    // the line being built, reused
	last    uint64    // the time of the latest event written

	events, stacks, orphans, lostNotices uint64
}

func newTraceWriter(w *bufio.Writer, args *argNames, maxPending int) *traceWriter {
	return &traceWriter{w: w, args: args, pending: newPending(maxPending)}
}

// event writes ev's line and remembers, for its cookie's stack, the task,
// cpu and time of the entry's latest event.
func (t *traceWriter) event(ev *sdk.Event) error {
	t.events++
	t.last = ev.Time
	b := appendContext(t.line[:0], ev.Comm, ev.TID, ev.CPU, ev.Time)
	b = t.appendEvent(b, ev)
	if ev.Cookie != 0 {
		b = appendCookie(b, ev.Cookie)
		t.pending.put(ev.Cookie, entryInfo{comm: ev.Comm, tid: ev.TID, cpu: ev.CPU, time: ev.Time})
	}
	b = append(b, '\n')
	t.line = b
	_, err := t.w.Write(b)
	return err
}

// stack writes s's block: a header line with the context of the entry's
// latest event, then a line per frame.
func (t *traceWriter) stack(s *sdk.Stack) error {
	t.stacks++
	e, ok := t.pending.take(s.Cookie)
	if !ok { // no event of this entry came (dropped, or evicted)
		t.orphans++
		e = entryInfo{cpu: -1, time: t.last}
	}
	b := appendContext(t.line[:0], e.comm, s.TID, e.cpu, e.time)
	b = append(b, "<user stack trace>"...)
	b = appendCookie(b, s.Cookie)
	b = append(b, " end="...)
	b = append(b, s.End.String()...)
	b = append(b, '\n')
	for i := range s.Frames {
		b = appendFrame(b, &s.Frames[i])
		b = append(b, '\n')
	}
	t.line = b
	_, err := t.w.Write(b)
	return err
}

// lost writes a notice of what the host dropped. The host drops per
// plugin, not per cpu: the line has the kernel's "CPU:N [LOST M EVENTS]"
// shape with "?" for the cpu, then the stacks dropped and the cookies of
// the entries affected.
func (t *traceWriter) lost(l *sdk.Lost) error {
	t.lostNotices++
	b := append(t.line[:0], "CPU:? [LOST "...)
	b = strconv.AppendUint(b, l.Events, 10)
	b = append(b, " EVENTS] [LOST "...)
	b = strconv.AppendUint(b, l.Stacks, 10)
	b = append(b, " STACKS]"...)
	for _, c := range l.Cookies {
		b = appendCookie(b, c)
	}
	b = append(b, '\n')
	t.line = b
	_, err := t.w.Write(b)
	return err
}

// appendContext appends the kernel's trace line prefix,
// "%16s-%-7d [%03d] ..... %5lu.%06lu: " (trace_print_context: comm, tid,
// cpu, the five latency flags, seconds and microseconds rounded as
// ns2usecs does). unwindd does not know the irq and preemption state, so
// the flags are "....." (a task entering the kernel from user space has
// them all clear). An empty comm is the kernel's "<...>".
func appendContext(b []byte, comm string, tid, cpu int32, ns uint64) []byte {
	if comm == "" {
		comm = "<...>"
	}
	for n := len(comm); n < 16; n++ {
		b = append(b, ' ')
	}
	b = appendClean(b, comm)
	b = append(b, '-')
	start := len(b)
	b = strconv.AppendInt(b, int64(tid), 10)
	for len(b)-start < 7 {
		b = append(b, ' ')
	}
	b = append(b, " ["...)
	if cpu >= 0 && cpu < 1000 {
		b = append(b, byte('0'+cpu/100), byte('0'+cpu/10%10), byte('0'+cpu%10))
	} else {
		b = fmt.Appendf(b, "%03d", cpu)
	}
	b = append(b, "] ..... "...)
	us := (ns + 500) / 1000
	b = appendPadded(b, us/1000000, 5, ' ')
	b = append(b, '.')
	b = appendPadded(b, us%1000000, 6, '0')
	return append(b, ": "...)
}

// appendPadded appends v in decimal, padded on the left with pad to width.
func appendPadded(b []byte, v uint64, width int, pad byte) []byte {
	var d [20]byte
	s := strconv.AppendUint(d[:0], v, 10)
	for n := len(s); n < width; n++ {
		b = append(b, pad)
	}
	return append(b, s...)
}

// appendCookie appends the greppable " cookie=0x…".
func appendCookie(b []byte, c uint64) []byte {
	b = append(b, " cookie=0x"...)
	return strconv.AppendUint(b, c, 16)
}

// appendEvent appends what follows the context: the syscall as the
// syscalls: events print it, raw_syscalls as the kernel prints them, any
// other event as "group:name: field=value …".
func (t *traceWriter) appendEvent(b []byte, ev *sdk.Event) []byte {
	switch ev.Kind {
	case sdk.KindSyscallEnter:
		return t.appendSyscallEnter(b, ev)
	case sdk.KindSyscallExit:
		return appendSyscallExit(b, ev)
	case sdk.KindTracepoint:
		switch ev.Name {
		case "raw_syscalls:sys_enter":
			if bb, ok := appendRawEnter(b, ev); ok {
				return bb
			}
		case "raw_syscalls:sys_exit":
			if bb, ok := appendRawExit(b, ev); ok {
				return bb
			}
		}
	}
	b = appendClean(b, ev.Name)
	b = append(b, ':')
	if ev.Kind == sdk.KindSample {
		b = append(b, " period="...)
		b = strconv.AppendUint(b, ev.Period, 10)
	}
	for i := range ev.Fields {
		f := &ev.Fields[i]
		b = append(b, ' ')
		b = appendClean(b, f.Name)
		b = append(b, '=')
		b = appendValue(b, f)
	}
	return b
}

// kernelName is the name the kernel gives syscall name (the host's, from
// the syscall table) in its trace lines: "newfstat" for "fstat". A name the
// host could not resolve ("syscall_462", from a table older than the
// kernel) is resolved with this plugin's table.
func kernelName(name string) string {
	if nr, ok := strings.CutPrefix(name, "syscall_"); ok {
		if n, err := strconv.Atoi(nr); err == nil && syscalls.Name(int64(n)) != "" {
			name = syscalls.Name(int64(n))
		}
	}
	return syscalls.KernelName(name)
}

// rawArg returns i for a raw_syscalls argument field "args[i]".
func rawArg(name string) (int, bool) {
	if len(name) == 7 && strings.HasPrefix(name, "args[") && name[6] == ']' && name[5] >= '0' && name[5] <= '5' {
		return int(name[5] - '0'), true
	}
	return 0, false
}

// appendSyscallEnter appends print_syscall_enter's "sys_openat(dfd:
// 0xffffff9c, filename: 0x7ffc…, flags: 0, mode: 0)". An event of the
// syscalls: tracepoints names its arguments itself. One from raw_syscalls
// carries args[0] to args[5]: the names, and how many there are, come from
// tracefs's events/syscalls/sys_enter_<name>/format when it can be read,
// else all six are printed as arg0 to arg5.
func (t *traceWriter) appendSyscallEnter(b []byte, ev *sdk.Event) []byte {
	name := kernelName(ev.Name)
	b = append(b, "sys_"...)
	b = appendClean(b, name)
	b = append(b, '(')
	var raw [6]*sdk.Field
	isRaw := false
	for i := range ev.Fields {
		if n, ok := rawArg(ev.Fields[i].Name); ok {
			raw[n], isRaw = &ev.Fields[i], true
		}
	}
	sep := false
	arg := func(name string, f *sdk.Field) {
		if sep {
			b = append(b, ", "...)
		}
		sep = true
		b = appendClean(b, name)
		b = append(b, ": "...)
		b = appendArgValue(b, f)
	}
	switch {
	case isRaw:
		names, ok := t.args.lookup(name)
		for i, f := range raw {
			switch {
			case ok && i < len(names):
				arg(names[i], f)
			case !ok && f != nil:
				arg("arg"+strconv.Itoa(i), f)
			}
		}
	default:
		for i := range ev.Fields {
			if f := &ev.Fields[i]; f.Name != "__syscall_nr" && f.Name != "id" {
				arg(f.Name, f)
			}
		}
	}
	return append(b, ')')
}

// appendArgValue appends a syscall argument as print_syscall_enter does:
// below 10 in decimal, else in hex with 0x. A missing argument is "?".
func appendArgValue(b []byte, f *sdk.Field) []byte {
	if f == nil {
		return append(b, '?')
	}
	var v uint64
	switch f.Kind {
	case sdk.FieldUint:
		v = f.Uint
	case sdk.FieldInt:
		v = uint64(f.Int) // the kernel prints the unsigned long
	default:
		return appendValue(b, f)
	}
	if v < 10 {
		return append(b, byte('0'+v))
	}
	b = append(b, "0x"...)
	return strconv.AppendUint(b, v, 16)
}

// appendSyscallExit appends print_syscall_exit's "sys_openat -> 0x3" (the
// return value as an unsigned long: -2 is 0xfffffffffffffffe). An event
// without a ret field gives "sys_openat -> ?".
func appendSyscallExit(b []byte, ev *sdk.Event) []byte {
	b = append(b, "sys_"...)
	b = appendClean(b, kernelName(ev.Name))
	b = append(b, " -> "...)
	for i := range ev.Fields {
		if f := &ev.Fields[i]; f.Name == "ret" {
			switch f.Kind {
			case sdk.FieldInt:
				b = append(b, "0x"...)
				return strconv.AppendUint(b, uint64(f.Int), 16)
			case sdk.FieldUint:
				b = append(b, "0x"...)
				return strconv.AppendUint(b, f.Uint, 16)
			}
		}
	}
	return append(b, '?')
}

// fieldInt returns the integer field name of ev.
func fieldInt(ev *sdk.Event, name string) (int64, bool) {
	for i := range ev.Fields {
		if f := &ev.Fields[i]; f.Name == name {
			switch f.Kind {
			case sdk.FieldInt:
				return f.Int, true
			case sdk.FieldUint:
				return int64(f.Uint), true
			}
		}
	}
	return 0, false
}

// appendRawEnter appends raw_syscalls:sys_enter's print fmt, "NR %ld (%lx,
// %lx, %lx, %lx, %lx, %lx)", under the kernel's name for the event; ok is
// false when ev lacks one of the fields.
func appendRawEnter(b []byte, ev *sdk.Event) ([]byte, bool) {
	id, ok := fieldInt(ev, "id")
	if !ok {
		return b, false
	}
	var args [6]uint64
	var have [6]bool
	for i := range ev.Fields {
		if n, ok := rawArg(ev.Fields[i].Name); ok {
			if v, ok := fieldInt(ev, ev.Fields[i].Name); ok {
				args[n], have[n] = uint64(v), true
			}
		}
	}
	for _, h := range have {
		if !h {
			return b, false
		}
	}
	b = append(b, "sys_enter: NR "...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, " ("...)
	for i, v := range args {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendUint(b, v, 16)
	}
	return append(b, ')'), true
}

// appendRawExit appends raw_syscalls:sys_exit's "NR %ld = %ld".
func appendRawExit(b []byte, ev *sdk.Event) ([]byte, bool) {
	id, ok1 := fieldInt(ev, "id")
	ret, ok2 := fieldInt(ev, "ret")
	if !ok1 || !ok2 {
		return b, false
	}
	b = append(b, "sys_exit: NR "...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, " = "...)
	return strconv.AppendInt(b, ret, 10), true
}

// appendValue appends a field's value as [sdk.Field.String] does: integers
// in decimal, strings as they are (control characters as '?'), bytes in
// hex.
func appendValue(b []byte, f *sdk.Field) []byte {
	switch f.Kind {
	case sdk.FieldInt:
		return strconv.AppendInt(b, f.Int, 10)
	case sdk.FieldUint:
		return strconv.AppendUint(b, f.Uint, 10)
	case sdk.FieldString:
		return appendClean(b, f.Str)
	case sdk.FieldBytes:
		return fmt.Appendf(b, "%x", f.Bytes)
	}
	return b
}

// appendFrame appends one frame line of a stack block. A frame in a file
// mapping is the kernel's sym-userobj text, " => <path>[+0x<ip - start of
// the mapping>]"; any other (anonymous memory, [vdso], [stack], no
// mapping) is the kernel's " =>  <%016lx>". A frame with a symbol adds
// " <function>+0x<offset>".
func appendFrame(b []byte, f *sdk.Frame) []byte {
	b = append(b, " => "...)
	if m := f.Mapping; m != nil && isFile(m.Path) && f.Addr >= m.Start {
		b = appendClean(b, m.Path)
		b = append(b, "[+0x"...)
		b = strconv.AppendUint(b, f.Addr-m.Start, 16)
		b = append(b, ']')
	} else {
		b = fmt.Appendf(b, " <%016x>", f.Addr)
	}
	if f.Function != "" {
		b = append(b, ' ')
		b = appendClean(b, f.Function)
		b = append(b, "+0x"...)
		b = strconv.AppendUint(b, f.Offset, 16)
	}
	return b
}

// isFile reports whether a mapping's path names a file, as the kernel's
// vm_file would: not perf's "//anon", not "[vdso]", "[heap]" or "".
func isFile(path string) bool {
	return strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "//")
}

// appendClean appends s with its control characters (newlines above all)
// replaced by '?', so that a comm or a path cannot break the one-line
// layout.
func appendClean(b []byte, s string) []byte {
	start := len(b)
	b = append(b, s...)
	for i := start; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == 0x7f {
			b[i] = '?'
		}
	}
	return b
}

// entryInfo is what a stack's header shows of its entry: the task and cpu
// of the entry's latest event, and its time.
type entryInfo struct {
	comm string
	tid  int32
	cpu  int32
	time uint64
}

// pending holds the entryInfo of each cookie whose events were written and
// whose stack has not come, at most max of them: past that the oldest is
// forgotten (its stack, if it comes, is written as an orphan).
type pending struct {
	max     int
	m       map[uint64]entryInfo
	order   []uint64 // cookies in the order they were first put; may hold taken ones
	evicted uint64
}

func newPending(max int) pending {
	return pending{max: max, m: make(map[uint64]entryInfo)}
}

func (p *pending) put(c uint64, e entryInfo) {
	if _, ok := p.m[c]; !ok {
		p.order = append(p.order, c)
	}
	p.m[c] = e
	for len(p.m) > p.max {
		old := p.order[0]
		p.order = p.order[1:]
		if _, ok := p.m[old]; ok {
			delete(p.m, old)
			p.evicted++
		}
	}
	if len(p.order) > 2*len(p.m)+1024 { // mostly taken cookies: compact
		kept := make([]uint64, 0, len(p.m))
		for _, c := range p.order {
			if _, ok := p.m[c]; ok {
				kept = append(kept, c)
			}
		}
		p.order = kept
	}
}

func (p *pending) take(c uint64) (entryInfo, bool) {
	e, ok := p.m[c]
	if ok {
		delete(p.m, c)
	}
	return e, ok
}
