package main

import (
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/syscalls"
)

// activation is the CEL variables of one event for one program at a time:
// an [interpreter.Activation] that resolves names straight from the
// [sdk.Event], so that evaluating a program allocates no map per event.
// The syscall arguments are decoded from the event's fields once, on first
// use; the base variables are converted once per event. One activation
// belongs to one goroutine; [activation.reset] points it at the next event.
type activation struct {
	ev      *sdk.Event
	prog    *program // whose expression is being evaluated: how args.NAME resolves
	decoded bool     // regs and ret hold ev's
	regs    [6]uint64
	list    [6]int64 // regs as CEL ints, behind args
	ret     int64
	argList ref.Val // the CEL list over list, made once
	cache   [nCached]ref.Val
	probe   string // ev's probe name, once made
	dyn     ref.Val
}

// The base variables cached per event.
const (
	cachePID = iota
	cacheTID
	cacheCPU
	cacheComm
	nCached
)

func newActivation() *activation {
	a := &activation{}
	a.argList = types.NewList(types.DefaultTypeAdapter, a.list[:])
	return a
}

// reset points a at ev.
func (a *activation) reset(ev *sdk.Event) {
	a.ev, a.prog, a.decoded, a.probe, a.dyn = ev, nil, false, "", nil
	a.cache = [nCached]ref.Val{}
}

// Parent is part of interpreter.Activation: there is none.
func (a *activation) Parent() interpreter.Activation { return nil }

// ResolveName returns the value of the variable name for the current event
// and program.
func (a *activation) ResolveName(name string) (any, bool) {
	ev := a.ev
	switch name {
	case "pid":
		return a.cached(cachePID, int64(ev.PID)), true
	case "tid":
		return a.cached(cacheTID, int64(ev.TID)), true
	case "cpu":
		return a.cached(cacheCPU, int64(ev.CPU)), true
	case "comm":
		if a.cache[cacheComm] == nil {
			a.cache[cacheComm] = types.String(ev.Comm)
		}
		return a.cache[cacheComm], true
	case "probe":
		return types.String(a.probeName()), true
	case "args":
		if a.prog != nil && a.prog.mode == argsDynamic {
			return a.dynamic(), true
		}
		a.decode()
		return a.argList, true
	case "arg0", "arg1", "arg2", "arg3", "arg4", "arg5":
		a.decode()
		return types.Int(int64(a.regs[name[3]-'0'])), true
	case "ret", "args.ret":
		a.decode()
		return types.Int(a.ret), true
	}
	field, ok := strings.CutPrefix(name, "args.")
	if !ok || a.prog == nil {
		return nil, false
	}
	na, ok := a.prog.named[field]
	if !ok {
		return nil, false
	}
	if a.prog.mode == argsSyscall {
		a.decode()
		return types.Int(na.conv.apply(a.regs[na.index])), true
	}
	for i := range ev.Fields {
		if f := &ev.Fields[i]; f.Name == field {
			return fieldVal(f, na.typ), true
		}
	}
	return nil, false // the event lacks the field: the expression fails
}

// cached returns the base variable i, converting v once per event.
func (a *activation) cached(i int, v int64) ref.Val {
	if a.cache[i] == nil {
		a.cache[i] = types.Int(v)
	}
	return a.cache[i]
}

// probeName is the probe of the event for the current program:
// syscall:NAME, syscall_exit:NAME, tracepoint:GROUP:NAME, or the program's
// own profile:hz:N.
func (a *activation) probeName() string {
	if a.prog != nil && a.prog.probe.kind == probeProfile {
		return a.prog.probe.text
	}
	if a.probe == "" {
		switch a.ev.Kind {
		case sdk.KindSyscallEnter:
			a.probe = "syscall:" + a.ev.Name
		case sdk.KindSyscallExit:
			a.probe = "syscall_exit:" + a.ev.Name
		case sdk.KindTracepoint:
			a.probe = "tracepoint:" + a.ev.Name
		default:
			a.probe = "profile"
		}
	}
	return a.probe
}

// decode reads the syscall's registers and return value from the event's
// fields: raw_syscalls' "args[0]"…"args[5]" and "ret", or the named fields
// of a syscalls:sys_enter_NAME event, put back in register order.
func (a *activation) decode() {
	if a.decoded {
		return
	}
	a.decoded, a.regs, a.ret = true, [6]uint64{}, 0
	var named []syscallArg
	for i := range a.ev.Fields {
		f := &a.ev.Fields[i]
		v := f.Uint
		if f.Kind == sdk.FieldInt {
			v = uint64(f.Int)
		}
		switch n := f.Name; {
		case len(n) == 7 && strings.HasPrefix(n, "args[") && n[5] >= '0' && n[5] <= '5' && n[6] == ']':
			a.regs[n[5]-'0'] = v
		case n == "ret":
			a.ret = int64(v)
		case n == "id" || n == "__syscall_nr":
		default:
			if named == nil {
				named, _ = argsOf(syscalls.UserName(a.ev.Name))
			}
			for j := range named {
				if named[j].Name == n {
					a.regs[j] = v
					break
				}
			}
		}
	}
	for i, r := range a.regs {
		a.list[i] = int64(r)
	}
}

// dynamic is args for a tracepoint whose format is not known: a map of the
// event's fields, made once per event.
func (a *activation) dynamic() ref.Val {
	if a.dyn == nil {
		m := make(map[string]any, len(a.ev.Fields))
		for i := range a.ev.Fields {
			f := &a.ev.Fields[i]
			m[f.Name] = fieldVal(f, fieldSkip)
		}
		a.dyn = types.DefaultTypeAdapter.NativeToValue(m)
	}
	return a.dyn
}

// fieldVal converts a tracepoint field to a CEL value: integers to int
// (an unsigned one keeps its bits), strings to string, bytes to bytes.
// want is the declared type, if known (fieldSkip: take the field's own).
func fieldVal(f *sdk.Field, want fieldType) ref.Val {
	switch f.Kind {
	case sdk.FieldInt:
		return types.Int(f.Int)
	case sdk.FieldUint:
		return types.Int(int64(f.Uint))
	case sdk.FieldString:
		if want == fieldBytes {
			return types.Bytes(f.Str)
		}
		return types.String(f.Str)
	case sdk.FieldBytes:
		if want == fieldString {
			return types.String(strings.TrimRight(string(f.Bytes), "\x00"))
		}
		return types.Bytes(f.Bytes)
	}
	if want == fieldString {
		return types.String("")
	}
	return types.Int(0)
}
