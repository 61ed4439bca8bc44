package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
	"github.com/unwindd/unwindd/sdk/sdktest"
)

// TestServer drives the tracer through the SDK's server over an in-process
// gRPC connection, so the scenario crosses the real wire format and
// decoder, and checks that trace.txt is byte for byte that of calling the
// tracer directly.
func TestServer(t *testing.T) {
	tr := newTracer()
	tr.tracefs = fixtureTracefs
	tr.stderr = io.Discard
	client := sdktest.Serve(t, tr)

	dir := filepath.Join(t.TempDir(), "out")
	d := sdktest.Describe(t, client, &pluginpb.DescribeRequest{Config: scenarioConfig(dir), HostVersion: "test"})
	checkDescription(t, d)
	if acks := sdktest.Deliver(t, client, sdktest.Batches(scenarioBatches()...)...); !slices.Equal(acks, []uint64{1, 2, 3}) {
		t.Errorf("acks %v, want [1 2 3]", acks)
	}
	must(t, tr.Close()) // what sdk.Serve does once the host shuts the plugin down

	got, err := os.ReadFile(filepath.Join(dir, traceFile))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := runScenario(t, fixtureTracefs)
	if string(got) != want {
		t.Errorf("trace.txt through the server differs from the direct calls':\n%s", lineDiff(want, string(got)))
	}
	checkTrace(t, string(got))

	// A bad config is refused with the key named.
	_, err = client.Describe(context.Background(), &pluginpb.DescribeRequest{Config: []byte("out: /x\nsyscalls: [open, opnat]")})
	if err == nil || !strings.Contains(err.Error(), `config: syscalls[1]: no x86-64 syscall "opnat" (did you mean "openat"?)`) {
		t.Errorf("Describe with a bad syscall: %v", err)
	}
	if ces := sdk.ConfigErrors(sdk.ErrorFromStatus(err)); len(ces) != 1 || ces[0].Field != "syscalls[1]" {
		t.Errorf("Describe with a bad syscall: config errors %v, want one for syscalls[1]", ces)
	}
}

// TestServerStackFilter: a comm and pid filter reaches the host through
// the SDK's server as the description's stack filter, in mode always.
func TestServerStackFilter(t *testing.T) {
	tr := newTracer()
	tr.stderr = io.Discard
	defer tr.Close()
	client := sdktest.Serve(t, tr)
	desc, err := client.Describe(context.Background(), &pluginpb.DescribeRequest{Config: []byte("out: " + t.TempDir() + "\nsyscalls: [read]\ncomm: [myapp]\npid: [10]")})
	if err != nil {
		t.Fatal(err)
	}
	d, err := sdk.DescriptionFromProto(desc)
	if want := (sdk.StackFilter{IDs: []int32{10}, Comms: []string{"myapp"}}); err != nil || d.Mode != sdk.ModeAlways || !reflect.DeepEqual(d.StackFilter, want) {
		t.Fatalf("description %+v, %v: want mode always, stack filter %+v", d, err, want)
	}
}

// TestPluginProcess builds the plugin, starts it as the host does
// (go-plugin, gRPC, automatic mTLS), describes it, delivers the scenario,
// asks it to decide, shuts it down and reads trace.txt.
func TestPluginProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the plugin process")
	}
	bin := sdktest.Build(t, ".", "ftrace")
	proc := sdktest.StartProcess(t, bin)
	remote := proc.Remote

	dir := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := sdktest.Describe(t, remote.Client, &pluginpb.DescribeRequest{HostBrokerId: proc.BrokerID, Config: scenarioConfig(dir), HostVersion: "test"})
	checkDescription(t, d)
	if acks := sdktest.Deliver(t, remote.Client, sdktest.Batches(scenarioBatches()...)...); !slices.Equal(acks, []uint64{1, 2, 3}) {
		t.Errorf("acks %v, want [1 2 3]", acks)
	}
	// Not a Decider: a Decide call says no.
	req := &pluginpb.DecideRequest{Entries: []*pluginpb.DecideEntry{{Key: 100, Pid: 10, Tid: 10}}}
	if resp, err := remote.Client.Decide(ctx, req); err != nil || len(resp.GetWant()) != 0 {
		t.Errorf("Decide = %v, %v; want none", resp.GetWant(), err)
	}
	if !proc.Stop() { // a graceful shutdown first: the plugin's Close flushes trace.txt
		t.Fatal("plugin still running after Kill")
	}

	got, err := os.ReadFile(filepath.Join(dir, traceFile))
	if err != nil {
		t.Fatal(err)
	}
	// The process reads this machine's tracefs, if it can: so does the
	// direct run it is compared with.
	want, _ := runScenario(t, openTracefs)
	if string(got) != want {
		t.Errorf("trace.txt from the plugin process differs from the direct calls':\n%s", lineDiff(want, string(got)))
	}
	checkTrace(t, string(got))

	// The summary reaches the host: through its Log service, or, if the
	// connection was already gone at close, through stderr.
	proc.CheckSummary(t, "ftrace: wrote trace", map[string]string{"events": "17", "stacks": "5", "orphan_stacks": "1", "lost_notices": "1"})
}
