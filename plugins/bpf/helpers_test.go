package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unwindd/unwindd/sdk"
)

// fixtureTracefs is testdata/tracefs: two sched tracepoints of Linux 6.18
// and a made-up one (see testdata/README.md).
func fixtureTracefs() fs.FS { return os.DirFS("testdata/tracefs") }

// closeTime is the tests' wall clock.
var closeTime = time.Date(2026, 11, 27, 20, 1, 54, 123e6, time.UTC)

// enter is a raw_syscalls:sys_enter event of syscall name (number nr) with
// the registers args, as the host's sources deliver it.
func enter(name string, nr int64, args ...uint64) sdk.Event {
	f := []sdk.Field{sdk.IntField("id", nr)}
	for i := range 6 {
		var v uint64
		if i < len(args) {
			v = args[i]
		}
		f = append(f, sdk.UintField("args["+strconv.Itoa(i)+"]", v))
	}
	return sdk.Event{Kind: sdk.KindSyscallEnter, Name: name, Time: 1000, CPU: 1, PID: 100, TID: 100, Comm: "bash", Fields: f}
}

// exit is a raw_syscalls:sys_exit event.
func exit(name string, nr, ret int64) sdk.Event {
	return sdk.Event{Kind: sdk.KindSyscallExit, Name: name, Time: 1001, CPU: 1, PID: 100, TID: 100, Comm: "bash",
		Fields: []sdk.Field{sdk.IntField("id", nr), sdk.IntField("ret", ret)}}
}

// with returns ev with its task and cookie changed.
func with(ev sdk.Event, comm string, pid, tid int32, cookie uint64) sdk.Event {
	ev.Comm, ev.PID, ev.TID, ev.Cookie = comm, pid, tid, cookie
	return ev
}

// A made-up program and libc, and stacks through them.
var (
	appMap  = &sdk.Mapping{Start: 0x55d556554000, Limit: 0x55d55655a000, Offset: 0x1000, Path: "/usr/bin/app"}
	libcMap = &sdk.Mapping{Start: 0x7f8cad028000, Limit: 0x7f8cad1bd000, Offset: 0x28000, Path: "/usr/lib/x86_64-linux-gnu/libc.so.6"}

	// stackA: write ← log_line ← main ← (libc, no symbol).
	stackA = []sdk.Frame{
		{Addr: 0x7f8cad0a6014, Mapping: libcMap, Function: "write", Offset: 20, Type: sdk.TypeRegs},
		{Addr: 0x55d5565581ac, Mapping: appMap, Function: "log_line", Offset: 0x13, Type: sdk.TypeCFI},
		{Addr: 0x55d556558300, Mapping: appMap, Function: "main", Offset: 0x40, Type: sdk.TypeCFI},
		{Addr: 0x7f8cad029d90, Mapping: libcMap, Type: sdk.TypeCFI},
		{Addr: 0x1234, Type: sdk.TypeFramePointer},
	}
	// stackB: write ← main.
	stackB = []sdk.Frame{
		{Addr: 0x7f8cad0a6014, Mapping: libcMap, Function: "write", Offset: 20, Type: sdk.TypeRegs},
		{Addr: 0x55d556558310, Mapping: appMap, Function: "main", Offset: 0x50, Type: sdk.TypeCFI},
	}
)

// The frames of stackA and stackB as the plugin names them.
var (
	framesA = []string{"write+20", "log_line+19", "main+64", "libc.so.6+0x29d90", "0x1234"}
	framesB = []string{"write+20", "main+80"}
)

func stackOf(cookie uint64, frames []sdk.Frame) sdk.Stack {
	return sdk.Stack{Cookie: cookie, PID: 100, TID: 100, Time: 5, Frames: frames, End: sdk.EndOutermost}
}

// describe starts a tracer on block (out is added), with the fixture
// tracefs and the tests' clock, and returns it and its out directory.
func describe(t *testing.T, block string) (*tracer, string, sdk.Description) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out")
	tr := newTracer()
	tr.tracefs = fixtureTracefs
	tr.now = func() time.Time { return closeTime }
	tr.stderr = new(strings.Builder)
	d, err := tr.Describe(context.Background(), sdk.DescribeInfo{Config: []byte("out: " + dir + "\n" + block)})
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if err := d.CheckValid(); err != nil {
		t.Fatalf("description: %v", err)
	}
	return tr, dir, d
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// readOutputs returns bpf.txt and the decoded bpf.json of dir.
func readOutputs(t *testing.T, dir string) (string, *jsonDoc) {
	t.Helper()
	txt, err := os.ReadFile(filepath.Join(dir, textFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, jsonFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc jsonDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("decode %s: %v\n%s", jsonFile, err, b)
	}
	return string(txt), &doc
}

// mapNamed returns the map of doc named name.
func mapNamed(t *testing.T, doc *jsonDoc, name string) *jsonMap {
	t.Helper()
	for i := range doc.Maps {
		if doc.Maps[i].Name == name {
			return &doc.Maps[i]
		}
	}
	t.Fatalf("bpf.json has no map %s", name)
	return nil
}
