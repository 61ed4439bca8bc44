package sdk

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"

	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// Handshake is the go-plugin handshake between the unwindd host and its
// plugins. ProtocolVersion changes whenever plugin.proto changes
// incompatibly (a new enum value a plugin would reject counts). It is a
// constant table, never modified.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  2, // 2: columnar, interned batches
	MagicCookieKey:   "UNWINDD_PLUGIN",
	MagicCookieValue: "2b817b619ab9c7efd24fe647efcaa222",
}

// PluginName is the key of the tracer in go-plugin's plugin map.
const PluginName = "tracer"

// GRPCPlugin is the go-plugin glue for a [Tracer]. In a plugin, [Serve]
// builds it with Impl set; in the host, an empty GRPCPlugin in the plugin
// map makes Dispense return a [*Remote].
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Tracer // the plugin's tracer; unused by the host
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer serves p.Impl as pluginpb.TracerServer (plugin side).
func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return fmt.Errorf("sdk: GRPCPlugin.Impl is nil")
	}
	pluginpb.RegisterTracerServer(s, NewServer(p.Impl, broker))
	return nil
}

// GRPCClient returns a [*Remote] for the plugin behind c (host side).
func (p *GRPCPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Remote{Client: pluginpb.NewTracerClient(c), Broker: broker}, nil
}

// Remote is the host's handle on a plugin process: the raw Tracer client and
// the go-plugin broker. The host serves pluginpb.HostServer on
// Broker.NextId() (Broker.AcceptAndServe) and passes that id in
// DescribeRequest.host_broker_id.
type Remote struct {
	Client pluginpb.TracerClient
	Broker *plugin.GRPCBroker
}

// Serve runs t as an unwindd plugin: it is a plugin's main. It returns when
// the host shuts the plugin down, after calling t.Close if t is a [Closer];
// when the process was not started by the host it prints why on stderr and
// exits with status 1. It tunes the garbage collector for delivery first
// (see [TuneGC]).
func Serve(t Tracer) {
	TuneGC()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{PluginName: &GRPCPlugin{Impl: t}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return plugin.DefaultGRPCServer(append(opts, ServerOptions()...))
		},
	})
	if c, ok := t.(Closer); ok {
		if err := c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "sdk: close tracer: %v\n", err)
		}
	}
}

// The garbage collector's settings [TuneGC] applies.
const (
	// GCPercent is the GOGC a plugin runs with: the heap may grow to five
	// times what is live before a collection. Unless the Tracer is an
	// [EventCopier], decoding a batch allocates its events (nine tenths of
	// a plugin's allocations in BenchmarkDeliver), and at the default (100)
	// the collections slow delivery down: BenchmarkDeliver/outbox-interned
	// carried 900 k stacks/s with 400 against 740 k with 100
	// (outbox-interned-gogc100, same run), before its test plugin became an
	// EventCopier; since, the difference is a few per cent.
	GCPercent = 400
	// MemoryLimit is the soft memory limit a plugin runs with, so that
	// GCPercent costs memory only while the heap is small: nearing it, the
	// collector runs as often as it must.
	MemoryLimit = 1 << 30
)

// TuneGC sets the process's GOGC to [GCPercent] and its soft memory limit
// to [MemoryLimit], each unless the environment sets it (GOGC, GOMEMLIMIT:
// a deployment's env block for the plugin). [Serve] calls it.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(MemoryLimit)
	}
}

// The flow-control windows of a plugin connection. gRPC's default stream
// window (64 KiB, grown by its bandwidth estimator) is smaller than the
// batches the host keeps in flight, so the sender would stall on window
// updates; and both ends are on one machine, so a large window costs only
// memory.
const (
	streamWindow = 4 << 20
	connWindow   = 8 << 20
	ioBuffer     = 256 << 10
	// maxMessage is the largest message a plugin takes. The host cuts a
	// batch at about 1 MiB, but a batch holds at least one item, and one
	// event may carry more than gRPC's default limit (4 MiB).
	maxMessage = 64 << 20
)

// ServerOptions are the gRPC server options of a plugin: the flow-control
// windows and buffers that let a Deliver stream run at full speed. [Serve]
// uses them; a host that serves the protocol by itself (a test harness, a
// baseline) can too.
func ServerOptions() []grpc.ServerOption {
	pool := new(bufferPool)
	return []grpc.ServerOption{
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
		grpc.WriteBufferSize(ioBuffer),
		grpc.ReadBufferSize(ioBuffer),
		grpc.MaxRecvMsgSize(maxMessage),
		experimental.BufferPool(pool),
		grpc.ForceServerCodecV2(codec{pool}),
	}
}

// DialOptions are the host's gRPC dial options for a plugin connection, the
// counterpart of [ServerOptions] (go-plugin's ClientConfig.GRPCDialOptions).
func DialOptions() []grpc.DialOption {
	pool := new(bufferPool)
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
		grpc.WithWriteBufferSize(ioBuffer),
		grpc.WithReadBufferSize(ioBuffer),
		experimental.WithBufferPool(pool),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(codec{pool})),
	}
}
