package main

import (
	"context"
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

// deliverAll sends items on one Deliver stream, in batches of at most n
// items, each after the previous one's ack, and returns the acks.
func deliverAll(t *testing.T, c pluginpb.TracerClient, items []any, n int) []uint64 {
	t.Helper()
	enc := sdktest.NewEncoder()
	var batches []*pluginpb.Batch
	for len(items) > 0 {
		k := min(n, len(items))
		batches, items = append(batches, enc.Batch(items[:k]...)), items[k:]
	}
	return sdktest.Deliver(t, c, batches...)
}

// TestPluginProcess builds the plugin, starts it as the host does
// (go-plugin, gRPC, automatic mTLS), refuses a bad config with the field
// named, describes it, asks it to decide, delivers the scenario over the
// wire, shuts it down and compares its files with the direct run's.
func TestPluginProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the plugin process")
	}
	p := sdktest.StartProcess(t, sdktest.Build(t, ".", "unwindd-plugin-bpf"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "out")

	// A type error comes back as a config error at its field. (No host
	// service: the broker serves one connection, for the next Describe.)
	_, err := p.Remote.Client.Describe(ctx, &pluginpb.DescribeRequest{HostVersion: "test",
		Config: []byte("out: " + dir + "\nprograms:\n  - {probe: 'syscall:read'}\n  - {probe: 'syscall:write', filter: 'comm == 1'}\n")})
	ces := sdk.ConfigErrors(sdk.ErrorFromStatus(err))
	if len(ces) != 1 || ces[0].Field != "programs[1].filter" || !strings.Contains(ces[0].Msg, "column 6: found no matching overload for '_==_' applied to '(string, int)'") {
		t.Errorf("Describe with a type error: %v; config errors %v", err, ces)
	}

	d := sdktest.Describe(t, p.Remote.Client, &pluginpb.DescribeRequest{HostBrokerId: p.BrokerID, HostVersion: "test",
		Config: []byte("out: " + dir + "\n" + scenarioBlock)})
	var subs []string
	for _, s := range d.Subscriptions {
		subs = append(subs, s.String())
	}
	if got := strings.Join(subs, " "); got != "syscalls:write syscalls:openat,read,close (events only)" || d.Mode != sdk.ModeDecide || d.Name != "bpf" {
		t.Errorf("description %+v: subscriptions %q", d, got)
	}

	// Decide: only the write to fd 2 (@stacks is keyed by ustack) wants its
	// stack.
	resp, err := p.Remote.Client.Decide(ctx, &pluginpb.DecideRequest{Entries: []*pluginpb.DecideEntry{
		{Key: 10, Pid: 100, Tid: 100, Events: []*pluginpb.Event{sdktest.EventPB(enter("write", 1, 1, 0, 5)), sdktest.EventPB(exit("write", 1, 5))}},
		{Key: 20, Pid: 100, Tid: 100, Events: []*pluginpb.Event{sdktest.EventPB(enter("write", 1, 2, 0, 5)), sdktest.EventPB(exit("write", 1, 5))}},
		{Key: 30, Pid: 100, Tid: 100, Events: []*pluginpb.Event{sdktest.EventPB(enter("openat", 257, 0xffffff9c, 0, 0))}},
	}})
	if err != nil || !slices.Equal(resp.GetWant(), []uint64{20}) {
		t.Errorf("Decide = %v, %v; want [20]", resp.GetWant(), err)
	}

	items := scenario()
	if acks, n := deliverAll(t, p.Remote.Client, items, 5), (len(items)+4)/5; len(acks) != n || acks[n-1] != uint64(n) {
		t.Errorf("acks %v, want 1…%d", acks, n)
	}
	if !p.Stop() { // a graceful shutdown first: the plugin's Close writes the files
		t.Fatal("plugin still running after Stop")
	}

	txt, doc := readOutputs(t, dir)
	wantTxt, wantDoc, _ := runScenario(t, scenarioBlock)
	_, txtBody, _ := strings.Cut(txt, "\n") // the time differs
	_, wantBody, _ := strings.Cut(wantTxt, "\n")
	if txtBody != wantBody || !strings.HasSuffix(strings.SplitN(txt, "\n", 2)[0], " exit ---") {
		t.Errorf("bpf.txt from the plugin process:\n%s\nwant, as from the direct calls:\n%s", txt, wantTxt)
	}
	if !reflect.DeepEqual(doc.Maps, wantDoc.Maps) {
		t.Errorf("bpf.json's maps from the plugin process differ from the direct calls':\n%+v\n%+v", doc.Maps, wantDoc.Maps)
	}
	if doc.Stats.DecideCalls != 1 || doc.Stats.DecideWanted != 1 || doc.Stats.Joined != 3 {
		t.Errorf("stats %+v", doc.Stats)
	}

	// The summary reaches the host: through its Log service, or, if the
	// connection was already gone at close, through stderr.
	logged := p.Stderr()
	for _, e := range p.Logs() {
		if e.GetMessage() == "bpf: wrote maps" {
			f := e.GetFields()
			logged = "events=" + f["events"] + " joined=" + f["joined"] + " decide_wanted=" + f["decide_wanted"]
		}
	}
	for _, s := range []string{"events=23", "joined=3", "decide_wanted=1"} {
		if !strings.Contains(logged, s) {
			t.Errorf("summary %q lacks %s", logged, s)
		}
	}
}
