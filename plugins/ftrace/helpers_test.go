package main

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/sdktest"
)

// fixtureTracefs is a copy of a few syscall formats of Linux 6.18's tracefs
// (openat, read, close, newfstat, getpid).
func fixtureTracefs() fs.FS { return os.DirFS("testdata/tracefs") }

// A made-up bash process: its mappings.
var (
	bashMap = &sdk.Mapping{Start: 0x55ee7cdc0000, Limit: 0x55ee7ce3a000, Offset: 0x30000, Path: "/usr/bin/bash"}
	libcMap = &sdk.Mapping{Start: 0x7fbe9ef2e000, Limit: 0x7fbe9f084000, Offset: 0x26000, Path: "/usr/lib/x86_64-linux-gnu/libc.so.6", BuildID: []byte{0xab, 0xcd}}
	vdsoMap = &sdk.Mapping{Start: 0x7ffc2c1f6000, Limit: 0x7ffc2c1f8000, Path: "[vdso]"}
	anonMap = &sdk.Mapping{Start: 0x7fbe9f100000, Limit: 0x7fbe9f200000, Path: "//anon"}
)

// raw returns the fields of a raw_syscalls:sys_enter event.
func raw(nr int64, args ...uint64) []sdk.Field {
	f := []sdk.Field{sdk.IntField("id", nr)}
	for i := range 6 {
		var v uint64
		if i < len(args) {
			v = args[i]
		}
		f = append(f, sdk.UintField("args["+string(rune('0'+i))+"]", v))
	}
	return f
}

// ret returns the fields of a raw_syscalls:sys_exit event.
func ret(nr, r int64) []sdk.Field { return []sdk.Field{sdk.IntField("id", nr), sdk.IntField("ret", r)} }

// bash is an event of the made-up bash's main thread on cpu 0.
func bash(kind sdk.EventKind, name string, t uint64, cookie uint64, fields []sdk.Field) sdk.Event {
	return sdk.Event{Kind: kind, Name: name, Time: t, CPU: 0, PID: 24392, TID: 24392, Comm: "bash", Cookie: cookie, Fields: fields}
}

// scenarioBatches is one run as the host would send it in three batches:
// syscalls from raw_syscalls (names from tracefs, from the built-in
// aliases, unknown to tracefs, a number the host could not name) and from
// the syscalls: tracepoints, other tracepoints, events without a cookie,
// odd comms, cpus and times, stacks of every kind of frame, a lost notice,
// an orphan stack, and an entry whose stack never comes.
func scenarioBatches() [][]any {
	const s = 12775_000000000 // the events' clock, about 3.5 hours after boot
	worker := sdk.Event{Kind: sdk.KindSyscallEnter, Name: "openat", Time: s + 22_196_000, CPU: 1, PID: 24392, TID: 24393, Comm: "my worker", Cookie: 0x2e,
		Fields: []sdk.Field{sdk.IntField("__syscall_nr", 257), sdk.UintField("dfd", 0xffffff9c), sdk.UintField("filename", 0x55eeb89dd630), sdk.UintField("flags", 0), sdk.UintField("mode", 0)}}
	workerExit := worker
	workerExit.Kind, workerExit.Time, workerExit.Fields = sdk.KindSyscallExit, s+22_200_000, []sdk.Field{sdk.IntField("__syscall_nr", 257), sdk.IntField("ret", -2)}
	odd := sdk.Event{Kind: sdk.KindTracepoint, Name: "irq:softirq_raise", Time: 9_999_999_500, CPU: -1, PID: 0, TID: 0,
		Fields: []sdk.Field{sdk.UintField("vec", 9), sdk.BytesField("blob", []byte{0xde, 0xad}), {Name: "none"}}}
	evil := bash(sdk.KindTracepoint, "sched:sched_process_exec", s+30_000_000, 0, []sdk.Field{sdk.StringField("filename", "/tmp/a\nb"), sdk.IntField("pid", 24392), sdk.IntField("old_pid", 24392)})
	evil.Comm, evil.CPU = "evil\ncomm", 12
	long := bash(sdk.KindSyscallEnter, "getpid", s+31_000_000, 0, raw(39))
	long.Comm = "systemd-journal"
	return [][]any{
		{
			bash(sdk.KindSyscallEnter, "openat", s+22_116_400, 0x2a, raw(257, 0xffffff9c, 0x55eeb89dd2b0, 0, 0, 0, 0x20)),
			bash(sdk.KindSyscallExit, "openat", s+22_122_499, 0x2a, ret(257, 3)),
			sdk.Stack{Cookie: 0x2a, PID: 24392, TID: 24392, Time: 1, End: sdk.EndOutermost, Frames: []sdk.Frame{
				{Addr: libcMap.Start + 0xd2011, Mapping: libcMap, Function: "__libc_open64", Offset: 0x51, Type: sdk.TypeRegs},
				{Addr: bashMap.Start + 0x689ee, Mapping: bashMap, Type: sdk.TypeCFI},
				{Addr: anonMap.Start + 0x1234, Mapping: anonMap, Type: sdk.TypeFramePointer},
			}},
			bash(sdk.KindSyscallEnter, "fstat", s+22_130_000, 0x2b, raw(5, 3, 0x7ffc2c1a9770)),
			bash(sdk.KindSyscallEnter, "getpid", s+22_140_000, 0, raw(39)),
			bash(sdk.KindSyscallExit, "getpid", s+22_141_000, 0, ret(39, 24392)),
			bash(sdk.KindSyscallEnter, "mseal", s+22_150_000, 0x2c, raw(462, 0x7fbe9f000000, 0x1000)),
			bash(sdk.KindSyscallEnter, "syscall_463", s+22_160_000, 0x2d, raw(463, 0xffffff9c, 0x55eeb89dd2b0, 0, 0x7ffc2c1a9700, 0x18, 0)),
			worker,
			workerExit,
			bash(sdk.KindTracepoint, "sched:sched_process_fork", s+22_301_000, 0x2b, []sdk.Field{
				sdk.StringField("parent_comm", "bash"), sdk.IntField("parent_pid", 24392), sdk.StringField("child_comm", "bash"), sdk.IntField("child_pid", 24393)}),
			bash(sdk.KindTracepoint, "raw_syscalls:sys_enter", s+22_302_000, 0, raw(0, 3, 0x7ffc2c1a9770, 0x340)),
			bash(sdk.KindTracepoint, "raw_syscalls:sys_exit", s+22_303_000, 0, ret(0, -11)),
			bash(sdk.KindTracepoint, "raw_syscalls:sys_exit", s+22_304_000, 0, []sdk.Field{sdk.IntField("id", 0)}), // no ret: printed generically
		},
		{
			odd,
			evil,
			long,
			sdk.Stack{Cookie: 0x2b, PID: 24392, TID: 24392, Time: 2, End: sdk.EndSnapshot, Frames: []sdk.Frame{
				{Addr: vdsoMap.Start + 0xb7a, Mapping: vdsoMap, Function: "__vdso_clock_gettime", Offset: 0x4a, Type: sdk.TypeRegs},
				{Addr: 0x1234, Type: sdk.TypeFramePointer},
			}},
			sdk.Stack{Cookie: 0x2c, PID: 24392, TID: 24392, Time: 3, End: sdk.EndNoRegs},
			sdk.Lost{Events: 3, Stacks: 1, Cookies: []uint64{0x2d, 0x31}},
			sdk.Stack{Cookie: 0x2f, PID: 24392, TID: 24400, Time: 4, End: sdk.EndOutermost, Frames: []sdk.Frame{
				{Addr: libcMap.Start + 0xd22ad, Mapping: libcMap, Function: "read", Offset: 0xd, Type: sdk.TypeRegs},
			}},
		},
		{
			sdk.Stack{Cookie: 0x2e, PID: 24392, TID: 24393, Time: 5, End: sdk.EndUnreadable, Frames: []sdk.Frame{
				{Addr: libcMap.Start + 0xd7001, Mapping: libcMap, Type: sdk.TypeRegs},
			}},
			bash(sdk.KindSyscallEnter, "read", s+40_000_000, 0x30, raw(0, 0, 0x55ee7ce8df40, 0x1000)), // its stack never comes
		},
	}
}

// scenarioConfig is the scenario's config, writing into dir.
func scenarioConfig(dir string) []byte {
	return []byte("out: " + dir + "\ntracepoints: [sched:sched_process_fork, 'raw_syscalls:sys_enter', raw_syscalls:sys_exit, irq:softirq_raise, sched:sched_process_exec]\n")
}

// checkDescription checks the plugin's answer to the scenario's Describe.
func checkDescription(t *testing.T, d sdk.Description) {
	t.Helper()
	if err := d.CheckValid(); err != nil {
		t.Fatalf("description: %v", err)
	}
	var subs []string
	for _, s := range d.Subscriptions {
		subs = append(subs, s.String())
	}
	want := "syscalls:* sched:sched_process_fork raw_syscalls:sys_enter raw_syscalls:sys_exit irq:softirq_raise sched:sched_process_exec"
	if got := strings.Join(subs, " "); got != want || d.Name != "ftrace" || d.Mode != sdk.ModeAlways {
		t.Errorf("description %+v: subscriptions %q, want %q", d, got, want)
	}
}

// runScenario runs the scenario through a tracer's methods into a fresh
// directory, with the tracefs the tracer is given, and returns trace.txt.
func runScenario(t *testing.T, tracefs func() fs.FS) (string, *tracer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out") // made by Describe
	tr := newTracer()
	tr.tracefs = tracefs
	tr.stderr = new(strings.Builder) // no host: the summary goes here
	d, err := tr.Describe(context.Background(), sdk.DescribeInfo{Config: scenarioConfig(dir)})
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	checkDescription(t, d)
	for _, b := range scenarioBatches() {
		sdktest.Call(t, tr, b...)
	}
	must(t, tr.Close())
	out, err := os.ReadFile(filepath.Join(dir, traceFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(out), tr
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
