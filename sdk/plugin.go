package sdk

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// Handshake is the go-plugin handshake between the unwindd host and its
// plugins. ProtocolVersion changes whenever plugin.proto changes
// incompatibly (a new enum value a plugin would reject counts). It is a
// constant table, never modified.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
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
// exits with status 1.
func Serve(t Tracer) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{PluginName: &GRPCPlugin{Impl: t}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
	if c, ok := t.(Closer); ok {
		if err := c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "sdk: close tracer: %v\n", err)
		}
	}
}
