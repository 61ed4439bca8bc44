package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
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
// decoder, and checks that the files are byte for byte those of calling
// the tracer directly.
func TestServer(t *testing.T) {
	tr := newTracer()
	tr.now = func() time.Time { return closeTime }
	tr.stderr = io.Discard
	client := sdktest.Serve(t, tr)

	dir := filepath.Join(t.TempDir(), "out")
	d := sdktest.Describe(t, client, &pluginpb.DescribeRequest{Config: scenarioConfig(dir), HostVersion: "test"})
	checkDescription(t, d)
	if acks := sdktest.Deliver(t, client, sdktest.Batches(scenarioBatches()...)...); !slices.Equal(acks, []uint64{1, 2, 3}) {
		t.Errorf("acks %v, want [1 2 3]", acks)
	}
	must(t, tr.Close()) // what sdk.Serve does once the host shuts the plugin down

	direct, _ := runScenario(t)
	for _, f := range []string{profileFile, foldedFile, scriptFile, flameFile} {
		got, err1 := os.ReadFile(filepath.Join(dir, f))
		want, err2 := os.ReadFile(filepath.Join(direct, f))
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s through the server differs from the direct calls':\n%s\nwant\n%s", f, got, want)
		}
	}

	// A bad config is refused with the key named.
	_, err := client.Describe(context.Background(), &pluginpb.DescribeRequest{Config: []byte("out: /x\nhz: fast")})
	if err == nil || !strings.Contains(err.Error(), `config: hz: want an integer from 1 to 100000, got "fast"`) {
		t.Errorf("Describe with a bad hz: %v", err)
	}
	if ces := sdk.ConfigErrors(sdk.ErrorFromStatus(err)); len(ces) != 1 || ces[0].Field != "hz" {
		t.Errorf("Describe with a bad hz: config errors %v, want one for hz", ces)
	}
}

// TestPluginProcess builds the plugin, starts it as the host does
// (go-plugin, gRPC, automatic mTLS), describes it, delivers the scenario,
// shuts it down and reads the files it wrote.
func TestPluginProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the plugin process")
	}
	bin := sdktest.Build(t, ".", "perf")
	proc := sdktest.StartProcess(t, bin)
	remote := proc.Remote

	dir := filepath.Join(t.TempDir(), "out")
	d := sdktest.Describe(t, remote.Client, &pluginpb.DescribeRequest{HostBrokerId: proc.BrokerID, Config: scenarioConfig(dir), HostVersion: "test"})
	checkDescription(t, d)
	if acks := sdktest.Deliver(t, remote.Client, sdktest.Batches(scenarioBatches()...)...); !slices.Equal(acks, []uint64{1, 2, 3}) {
		t.Errorf("acks %v, want [1 2 3]", acks)
	}
	if !proc.Stop() { // a graceful shutdown first: the plugin's Close writes the files
		t.Fatal("plugin still running after Kill")
	}

	p := readProfile(t, dir)
	if len(p.Sample) != 4 || len(p.Function) != 4 || len(p.Mapping) != 2 || p.Mapping[0].BuildID != "deadbeef" {
		t.Errorf("profile: %d samples, %d functions, %d mappings (want 4, 4, 2):\n%v", len(p.Sample), len(p.Function), len(p.Mapping), p)
	}
	direct, _ := runScenario(t)
	for _, f := range []string{foldedFile, scriptFile, flameFile} {
		got, err1 := os.ReadFile(filepath.Join(dir, f))
		want, err2 := os.ReadFile(filepath.Join(direct, f))
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s from the plugin process:\n%s\nwant\n%s", f, got, want)
		}
	}

	// The summary reaches the host: through its Log service, or, if the
	// connection was already gone at close, through stderr.
	proc.CheckSummary(t, "perf: wrote profile", map[string]string{"samples": "6", "joined": "3", "lost": "1", "unjoined": "2"})
}
