package sdk_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// TestPluginProcess builds testdata/tracerplugin, starts it as the host
// would (go-plugin, gRPC, automatic mTLS), serves the Host service through
// the broker and drives Describe and Deliver across the process boundary.
func TestPluginProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a plugin process")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the test plugin: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "tracerplugin")
	if out, err := exec.Command(gobin, "build", "-o", bin, "./testdata/tracerplugin").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          plugin.PluginSet{sdk.PluginName: &sdk.GRPCPlugin{}},
		Cmd:              exec.Command(bin),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "host", Output: os.Stderr, Level: hclog.Warn}),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatalf("Dispense: %v", err)
	}
	remote, ok := raw.(*sdk.Remote)
	if !ok {
		t.Fatalf("Dispense returned %T, want *sdk.Remote", raw)
	}

	fh := &fakeHost{request: func(tid int32) (*pluginpb.HostRequestResult, error) {
		return nil, sdk.StatusFromError(sdk.ErrUnknownTask)
	}}
	id := remote.Broker.NextId()
	go remote.Broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		pluginpb.RegisterHostServer(s, fh)
		return s
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	desc, err := remote.Client.Describe(ctx, &pluginpb.DescribeRequest{HostBrokerId: id, Config: []byte("request=404"), HostVersion: "test"})
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	d, err := sdk.DescriptionFromProto(desc)
	if err != nil {
		t.Fatalf("DescriptionFromProto: %v", err)
	}
	// The plugin's Request reached the fake host, and the sentinel the host
	// returned came back to the plugin intact.
	if d.Name != "tracerplugin" || d.Version != "ret=-22 cookie=0x0 unknown-task=true" {
		t.Errorf("description = %+v", d)
	}
	if !hasLog(fh, "described") {
		t.Error("the plugin's log entry did not reach the host")
	}

	acks, err := deliver(t, remote.Client, firstBatch())
	if err != nil || !slices.Equal(acks, []uint64{1}) {
		t.Errorf("deliver: acks %v, err %v; want [1], nil", acks, err)
	}

	// A panic in the plugin ends the stream, says so, and is logged.
	boom := sdk.NewWireBatch(1).
		Strings("boom").
		Locs(sdk.WireLoc{Addr: 0x10, Function: 1}).
		StackDef(1, []byte{ftRegs}, 1).
		Stack(3, 1, 100, 1, 3000).
		Build()
	if _, err := deliver(t, remote.Client, boom); err == nil || !strings.Contains(err.Error(), "panic in Tracer.Stack") {
		t.Errorf("panicking plugin: %v, want a panic error", err)
	}
	if !hasLog(fh, "plugin panicked") {
		t.Error("the panic was not logged to the host")
	}

	client.Kill()
	if !client.Exited() {
		t.Error("plugin process still running after Kill")
	}
}

func hasLog(fh *fakeHost, msg string) bool {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	return slices.ContainsFunc(fh.logs, func(e *pluginpb.LogEntry) bool { return e.GetMessage() == msg })
}
