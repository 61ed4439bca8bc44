package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/syscalls"
)

// maxHz is the highest profile rate: the kernel's default
// perf_event_max_sample_rate.
const maxHz = 100000

// probeKind says which events a probe selects.
type probeKind uint8

const (
	probeSyscall     probeKind = iota + 1 // syscall:NAME, syscall:*: syscall entries
	probeSyscallExit                      // syscall_exit:NAME, syscall_exit:*: syscall exits
	probeTracepoint                       // tracepoint:GROUP:NAME
	probeProfile                          // profile:hz:N: cpu-clock samples
)

// probe is a program's parsed probe.
type probe struct {
	kind    probeKind
	syscall string // syscall probes: the x86-64 name; "" for every syscall
	alt     string // the kernel's name for syscall, when it differs ("newfstat")
	tp      string // tracepoints: "group:name", as events name them
	hz      uint32 // profile
	text    string // the probe as written, trimmed
}

// match reports whether ev is one of p's events.
func (p *probe) match(ev *sdk.Event) bool {
	switch p.kind {
	case probeSyscall:
		return ev.Kind == sdk.KindSyscallEnter && (p.syscall == "" || ev.Name == p.syscall || p.alt != "" && ev.Name == p.alt)
	case probeSyscallExit:
		return ev.Kind == sdk.KindSyscallExit && (p.syscall == "" || ev.Name == p.syscall || p.alt != "" && ev.Name == p.alt)
	case probeTracepoint:
		return ev.Kind == sdk.KindTracepoint && ev.Name == p.tp
	case probeProfile:
		return ev.Kind == sdk.KindSample && p.keeps(ev)
	}
	return false
}

// keeps subsamples a profile probe's samples to its rate: the host samples
// at its source's rate, which may be higher. A sample covers the time from
// its period before it to its time; it is kept when that span crosses a
// multiple of the probe's interval (1/hz s), so that a thread sampled
// steadily at any higher rate gives hz samples a second, and the decision
// needs no state (Decide and Events, which run concurrently, agree). A
// sample without a period, or one at least as long as the interval, is
// kept.
func (p *probe) keeps(ev *sdk.Event) bool {
	every := uint64(time.Second) / uint64(p.hz)
	if ev.Period == 0 || ev.Period >= every || ev.Time < ev.Period {
		return true
	}
	return ev.Time/every != (ev.Time-ev.Period)/every
}

// probeSyntax is the list of probes, for error messages.
const probeSyntax = "syscall:NAME, syscall:*, syscall_exit:NAME, syscall_exit:*, tracepoint:GROUP:NAME or profile:hz:N"

// parseProbe parses a probe; it returns what is wrong with it, or "".
func parseProbe(s string) (probe, string) {
	p := probe{text: s}
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return p, fmt.Sprintf("want a probe (%s), got %q", probeSyntax, s)
	}
	switch kind {
	case "syscall", "syscall_exit":
		p.kind = probeSyscall
		if kind == "syscall_exit" {
			p.kind = probeSyscallExit
		}
		if rest == "*" {
			return p, ""
		}
		if msg := syscalls.Check(rest); msg != "" {
			return p, msg
		}
		p.syscall, p.alt = rest, kernelAlt(rest)
	case "tracepoint", "t":
		group, name, ok := strings.Cut(rest, ":")
		if !ok || group == "" || name == "" || strings.ContainsAny(name, ": \t/") || strings.ContainsAny(group, " \t/") {
			return p, fmt.Sprintf("want a tracepoint as tracepoint:GROUP:NAME (tracepoint:sched:sched_switch), got %q", s)
		}
		switch {
		case group == "syscalls":
			probe := "syscall"
			bare, found := strings.CutPrefix(name, "sys_enter_")
			if !found {
				if bare, found = strings.CutPrefix(name, "sys_exit_"); !found {
					return p, "the host delivers syscalls as syscall events: write syscall:NAME or syscall_exit:NAME"
				}
				probe = "syscall_exit"
			}
			bare = syscalls.UserName(bare)
			return p, fmt.Sprintf("the host delivers syscalls as syscall events: write %s:%s", probe, bare)
		case group == "raw_syscalls":
			return p, "the host delivers raw_syscalls as syscall events: write syscall:* or syscall_exit:*"
		}
		p.kind, p.tp = probeTracepoint, group+":"+name
	case "profile", "p":
		unit, n, ok := strings.Cut(rest, ":")
		hz, err := strconv.ParseUint(n, 10, 32)
		if !ok || unit != "hz" || err != nil || hz < 1 || hz > maxHz {
			return p, fmt.Sprintf("want profile:hz:N with N from 1 to %d, got %q", maxHz, s)
		}
		p.kind, p.hz = probeProfile, uint32(hz)
	default:
		return p, fmt.Sprintf("no probe type %q: the host delivers syscalls, tracepoints and cpu-clock samples (%s)", kind, probeSyntax)
	}
	return p, ""
}

// tracepointFields reads the fields of the tracepoint group:name from
// tracefs. known is false when tracefs is nil or the format cannot be read
// for a reason other than its absence; msg says what is wrong, or "".
func tracepointFields(tracefs fs.FS, tp string) (fields []tpField, known bool, msg string) {
	if tracefs == nil {
		return nil, false, ""
	}
	group, name, _ := strings.Cut(tp, ":")
	b, err := fs.ReadFile(tracefs, "events/"+group+"/"+name+"/format")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Sprintf("no tracepoint %s on this machine (no events/%s/%s in tracefs)", tp, group, name)
	}
	if err != nil {
		return nil, false, ""
	}
	fields, ok := parseTracepointFormat(b)
	if !ok {
		return nil, false, ""
	}
	return fields, true, ""
}

// kernelAlt is the kernel's name of syscall name when it differs from the
// table's ("newfstat" for "fstat"), else "".
func kernelAlt(name string) string {
	if k := syscalls.KernelName(name); k != name {
		return k
	}
	return ""
}
