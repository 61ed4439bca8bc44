package main

import (
	"bufio"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/syscalls"
)

// testdata/kernel-trace.txt is the kernel's own text (Linux 6.18, made by
// testdata/kernel-trace.sh): bash reading /etc/hostname and failing to open
// /nonexistent, with the openat, read and close syscall events,
// raw_syscalls, and the userstacktrace and sym-userobj options.

// reStackTime is the time of a stack header, which may differ.
var reStackTime = regexp.MustCompile(`\d+\.\d{6}: (?:<user stack trace>)`)

// A pattern describes one kind of line of the kernel's trace, and the same
// kind of line of ours, which may add a suffix.
type pattern struct {
	name         string
	kernel, ours *regexp.Regexp
}

func pat(name, body, suffix string) pattern {
	return pattern{name, regexp.MustCompile("^" + body + "$"), regexp.MustCompile("^" + body + suffix + "$")}
}

const (
	ctxPattern    = ` *(.+)-(\d+) +\[(\d{3})\] (\.{5}) +(\d+)\.(\d{6}): ` // trace_print_context
	cookiePattern = `(?: cookie=0x[0-9a-f]+)?`
	symbolPattern = `(?: \S+\+0x[0-9a-f]+)?`
	argPattern    = `\w+: (?:\d|0x[0-9a-f]+)`
)

var patterns = []pattern{
	pat("syscall enter", ctxPattern+`sys_(\w+)\(((?:`+argPattern+`(?:, `+argPattern+`)*)?)\)`, cookiePattern),
	pat("syscall exit", ctxPattern+`sys_(\w+) -> 0x([0-9a-f]+)`, cookiePattern),
	pat("raw_syscalls enter", ctxPattern+`sys_enter: NR (-?\d+) \(([0-9a-f]+(?:, [0-9a-f]+){5})\)`, cookiePattern),
	pat("raw_syscalls exit", ctxPattern+`sys_exit: NR (-?\d+) = (-?\d+)`, cookiePattern),
	pat("user stack", ctxPattern+`<user stack trace>`, ` cookie=0x[0-9a-f]+ end=[a-z-]+`),
	pat("file frame", ` => (/\S*)\[\+0x([0-9a-f]+)\]`, symbolPattern),
	pat("address frame", ` =>  <([0-9a-f]{16})>`, symbolPattern),
}

// classify returns the pattern the kernel's line matches, and its
// submatches.
func classify(line string) (*pattern, []string) {
	for i := range patterns {
		if m := patterns[i].kernel.FindStringSubmatch(line); m != nil {
			return &patterns[i], m
		}
	}
	return nil, nil
}

// kernelItems turns the kernel's trace into what the host would deliver:
// each event with a cookie of its own, and its stack where the kernel has
// it (the kernel records a stack after every event, on the same cpu; the
// lines of several cpus are merged by time, so a stack need not follow its
// event directly). rawShape makes syscall events carry
// raw_syscalls's args[0] to args[5] instead of named fields.
func kernelItems(t *testing.T, lines []string, rawShape bool) []any {
	t.Helper()
	var items []any
	var cur *sdk.Stack
	maps := map[string]*sdk.Mapping{}
	lastCookie := map[string]uint64{} // by cpu
	hex := func(s string) uint64 {
		v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
		must(t, err)
		return v
	}
	dec := func(s string) int64 {
		v, err := strconv.ParseInt(s, 10, 64)
		must(t, err)
		return v
	}
	for i, line := range lines {
		p, m := classify(line)
		if p == nil {
			t.Fatalf("kernel line %d matches no pattern: %q", i+1, line)
		}
		switch p.name {
		case "file frame":
			mp := maps[m[1]]
			if mp == nil {
				start := uint64(0x7f0000000000 + len(maps)*0x10000000)
				mp = &sdk.Mapping{Start: start, Limit: start + 0x1000000, Path: m[1]}
				maps[m[1]] = mp
			}
			cur.Frames = append(cur.Frames, sdk.Frame{Addr: mp.Start + hex(m[2]), Mapping: mp, Type: sdk.TypeFramePointer})
			continue
		case "address frame":
			cur.Frames = append(cur.Frames, sdk.Frame{Addr: hex(m[1]), Type: sdk.TypeFramePointer})
			continue
		}
		tid := int32(dec(m[2]))
		if p.name == "user stack" {
			cur = &sdk.Stack{Cookie: lastCookie[m[3]], PID: tid, TID: tid, End: sdk.EndOutermost}
			delete(lastCookie, m[3])
			items = append(items, cur)
			continue
		}
		ev := sdk.Event{Comm: m[1], PID: tid, TID: tid, CPU: int32(dec(m[3])), Time: uint64(dec(m[5]))*1e9 + uint64(dec(m[6]))*1e3, Cookie: uint64(len(items) + 1)}
		nr := func(name string) int64 {
			n, ok := syscalls.Number(name)
			if !ok {
				t.Fatalf("line %d: no syscall %q", i+1, name)
			}
			return int64(n)
		}
		switch body := m[7:]; p.name {
		case "syscall enter":
			ev.Kind, ev.Name = sdk.KindSyscallEnter, body[0]
			var args []uint64
			ev.Fields = []sdk.Field{sdk.IntField("__syscall_nr", nr(ev.Name))}
			if body[1] != "" {
				for _, a := range strings.Split(body[1], ", ") {
					name, v, _ := strings.Cut(a, ": ")
					n, err := strconv.ParseUint(v, 0, 64)
					must(t, err)
					args = append(args, n)
					ev.Fields = append(ev.Fields, sdk.UintField(name, n))
				}
			}
			if rawShape {
				ev.Fields = raw(nr(ev.Name), args...)
			}
		case "syscall exit":
			ev.Kind, ev.Name = sdk.KindSyscallExit, body[0]
			ev.Fields = []sdk.Field{sdk.IntField("__syscall_nr", nr(ev.Name)), sdk.IntField("ret", int64(hex(body[1])))}
			if rawShape {
				ev.Fields = ret(nr(ev.Name), int64(hex(body[1])))
			}
		case "raw_syscalls enter":
			ev.Kind, ev.Name = sdk.KindTracepoint, "raw_syscalls:sys_enter"
			var args []uint64
			for _, a := range strings.Split(body[1], ", ") {
				args = append(args, hex(a))
			}
			ev.Fields = raw(dec(body[0]), args...)
		case "raw_syscalls exit":
			ev.Kind, ev.Name = sdk.KindTracepoint, "raw_syscalls:sys_exit"
			ev.Fields = ret(dec(body[0]), dec(body[1]))
		}
		lastCookie[m[3]] = ev.Cookie
		items = append(items, ev)
	}
	return items
}

// format writes items with a traceWriter, as the tracer does.
func format(t *testing.T, items []any, tracefs fs.FS) []string {
	t.Helper()
	var b strings.Builder
	w := bufio.NewWriter(&b)
	tw := newTraceWriter(w, newArgNames(tracefs), maxPending)
	for _, it := range items {
		switch x := it.(type) {
		case sdk.Event:
			must(t, tw.event(&x))
		case *sdk.Stack:
			must(t, tw.stack(x))
		}
	}
	must(t, w.Flush())
	if tw.orphans != 0 {
		t.Errorf("%d stacks without their event", tw.orphans)
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

func readKernelTrace(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("testdata/kernel-trace.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) < 100 {
		t.Fatalf("kernel-trace.txt has %d lines", len(lines))
	}
	return lines
}

// TestKernelLayout checks our lines against the kernel's: given the events
// and stacks of the kernel's trace, the plugin writes the kernel's lines,
// with its own additions (a cookie on events, the cookie and end reason on
// stack headers) only at their ends. Every line of ours matches the
// pattern of the kernel's line in its place with the same fields in the
// same order; only a stack header's time may differ (ours is the time of
// the entry's latest event, the kernel's that of the stack's own record).
func TestKernelLayout(t *testing.T) {
	kernel := readKernelTrace(t)
	kinds := map[string]int{}
	for _, raw := range []bool{false, true} {
		var tracefs fs.FS
		if raw {
			tracefs = fixtureTracefs()
		}
		ours := format(t, kernelItems(t, kernel, raw), tracefs)
		if len(ours) != len(kernel) {
			t.Fatalf("raw %v: %d lines for the kernel's %d", raw, len(ours), len(kernel))
		}
		for i, kl := range kernel {
			p, km := classify(kl)
			kinds[p.name]++
			om := p.ours.FindStringSubmatch(ours[i])
			if om == nil {
				t.Errorf("raw %v, line %d (%s): ours does not match the kernel's pattern:\n  kernel %q\n  ours   %q", raw, i+1, p.name, kl, ours[i])
				continue
			}
			if p.name == "user stack" {
				km[5], km[6], om[5], om[6] = "", "", "", ""
			}
			if !slices.Equal(km[1:], om[1:]) {
				t.Errorf("raw %v, line %d (%s): fields %q, the kernel's %q", raw, i+1, p.name, om[1:], km[1:])
			}
			// Without our additions, the line is the kernel's.
			stripped := strings.TrimSuffix(ours[i], reCookie.FindString(ours[i]))
			if p.name == "user stack" {
				stripped = reStackTime.ReplaceAllString(ours[i][:strings.Index(ours[i], "<user stack trace>")+len("<user stack trace>")], "T: ")
				kl = reStackTime.ReplaceAllString(kl, "T: ")
			}
			if stripped != kl {
				t.Errorf("raw %v, line %d: ours %q, the kernel's %q", raw, i+1, stripped, kl)
			}
		}
	}
	// The excerpt holds every kind of line.
	for _, p := range patterns {
		if kinds[p.name] == 0 {
			t.Errorf("no %s line in the kernel's trace", p.name)
		}
	}
	t.Logf("lines by kind: %v", kinds)
}

// TestGoldenPatterns checks that the golden file's syscall, raw_syscalls,
// stack and frame lines match the kernel's patterns (with our suffixes).
func TestGoldenPatterns(t *testing.T) {
	b, err := os.ReadFile("testdata/trace.golden")
	if err != nil {
		t.Fatal(err)
	}
	matched := 0
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		for _, p := range patterns {
			if p.ours.MatchString(line) {
				matched++
				break
			}
		}
		if strings.HasPrefix(line, " => ") || strings.Contains(line, "<user stack trace>") || strings.Contains(line, ": sys_") {
			ok := false
			for _, p := range patterns {
				ok = ok || p.ours.MatchString(line)
			}
			if !ok && !strings.Contains(line, "[-01]") { // the kernel has no unknown cpu
				t.Errorf("golden line %d matches no kernel pattern: %q", i+1, line)
			}
		}
	}
	if matched < 20 {
		t.Errorf("only %d golden lines match", matched)
	}
}
