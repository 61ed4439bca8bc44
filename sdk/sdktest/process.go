package sdktest

import (
	"bytes"
	stdcontext "context"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// Process is a plugin binary started as the host starts it (go-plugin,
// gRPC, automatic mTLS), with a Host service that records the plugin's
// log entries: for a test that drives a whole plugin process through
// Remote.Client (Describe with HostBrokerId: BrokerID, Deliver, Decide).
type Process struct {
	Remote   *sdk.Remote
	BrokerID uint32 // the Host service's broker id, for DescribeRequest.HostBrokerId

	client *plugin.Client
	host   *logHost
	stderr syncBuffer
}

// StartProcess starts the plugin binary bin and its Host service; the test
// fails if it does not start. The process is killed when the test ends.
func StartProcess(t testing.TB, bin string) *Process {
	t.Helper()
	p := &Process{host: &logHost{}}
	p.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          plugin.PluginSet{sdk.PluginName: &sdk.GRPCPlugin{}},
		Cmd:              exec.Command(bin),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "host", Output: &p.stderr, Level: hclog.Debug}),
	})
	t.Cleanup(p.client.Kill)
	rpc, err := p.client.Client()
	if err != nil {
		t.Fatalf("start plugin %s: %v", bin, err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatalf("dispense plugin %s: %v", bin, err)
	}
	p.Remote = raw.(*sdk.Remote)
	p.BrokerID = p.Remote.Broker.NextId()
	go p.Remote.Broker.AcceptAndServe(p.BrokerID, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		pluginpb.RegisterHostServer(s, p.host)
		return s
	})
	return p
}

// Stop shuts the plugin down as the host does (gracefully first: its
// Closer runs, then the process is killed) and reports whether it exited.
func (p *Process) Stop() bool {
	p.client.Kill()
	return p.client.Exited()
}

// Logs returns the entries the plugin logged through the Host service.
func (p *Process) Logs() []*pluginpb.LogEntry {
	p.host.mu.Lock()
	defer p.host.mu.Unlock()
	return slices.Clone(p.host.logs)
}

// Stderr returns what the plugin wrote to its stderr, through go-plugin's
// logger.
func (p *Process) Stderr() string { return p.stderr.String() }

// logHost is a Host service that records log entries.
type logHost struct {
	pluginpb.UnimplementedHostServer
	mu   sync.Mutex
	logs []*pluginpb.LogEntry
}

func (h *logHost) Log(_ stdcontext.Context, e *pluginpb.LogEntry) (*pluginpb.LogAck, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, e)
	return &pluginpb.LogAck{}, nil
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(q []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(q)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// CheckSummary checks the plugin's summary entry msg, which it writes with
// Host.CloseLog at Close: through the Host service, its fields must hold
// want; or, when the connection was already gone, on its stderr, the line
// must hold each "key=value". It reports which way the entry came.
func (p *Process) CheckSummary(t testing.TB, msg string, want map[string]string) {
	t.Helper()
	for _, e := range p.Logs() {
		if e.GetMessage() != msg {
			continue
		}
		for k, v := range want {
			if got := e.GetFields()[k]; got != v {
				t.Errorf("summary %q: %s=%q, want %q (fields %v)", msg, k, got, v, e.GetFields())
			}
		}
		t.Logf("the summary came through the host's Log service")
		return
	}
	stderr := p.Stderr()
	if !strings.Contains(stderr, msg) {
		t.Errorf("no summary %q: the host logged %d entries; stderr:\n%s", msg, len(p.Logs()), stderr)
		return
	}
	for k, v := range want {
		if !strings.Contains(stderr, k+"="+v) {
			t.Errorf("summary %q on stderr lacks %s=%s:\n%s", msg, k, v, stderr)
		}
	}
	t.Logf("the summary came through stderr")
}
