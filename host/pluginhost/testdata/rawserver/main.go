// Command rawserver is the baseline of BenchmarkRawGRPCStream: a process
// that serves the Tracer service's Deliver stream on a plain gRPC server on
// a Unix socket (no go-plugin, no TLS), and acknowledges every batch after
// unmarshalling it, and Decide (BenchmarkDecide's baseline). With
// UNWINDD_RAW_SDK=1 its Deliver is the sdk's own (sdk.NewServer), turning
// each batch into calls of a tracer that does what the test plugin does in
// the delivery benchmarks (counts events, checks and hashes stacks): the
// same work on the plugin's side, without go-plugin and TLS. It prints
// "ready" when it listens and exits when stdin closes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"sync"

	"google.golang.org/grpc"

	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

type server struct {
	pluginpb.UnimplementedTracerServer
}

// sdkServer is the sdk's server for Deliver, server's for the rest.
type sdkServer struct {
	server
	sdk *sdk.Server
}

func (s sdkServer) Deliver(stream pluginpb.Tracer_DeliverServer) error { return s.sdk.Deliver(stream) }

// counter is the test plugin's work in the delivery benchmarks (its
// UNWINDD_TEST_NOCHECK mode): count events; check, count and hash stacks.
type counter struct {
	mu             sync.Mutex
	events, stacks uint64
	sum            uint64
	bad            uint64
}

func (c *counter) Describe(context.Context, sdk.DescribeInfo) (sdk.Description, error) {
	return sdk.Description{Name: "rawserver", Version: "0"}, nil
}

func (c *counter) CopiesEvents() bool { return true }

func (c *counter) Events(_ context.Context, evs []sdk.Event) error {
	c.mu.Lock()
	c.events += uint64(len(evs))
	c.mu.Unlock()
	return nil
}

func (c *counter) Stack(_ context.Context, s sdk.Stack) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.CheckValid() != nil {
		c.bad++
	}
	c.stacks++
	h := s.Cookie
	for _, f := range s.Frames {
		h = h*31 + f.Addr
	}
	c.sum += h
	return nil
}

func (c *counter) Lost(context.Context, sdk.Lost) error { return nil }

func (server) Deliver(s pluginpb.Tracer_DeliverServer) error {
	for {
		b, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&pluginpb.Ack{Seq: b.GetSeq()}); err != nil {
			return err
		}
	}
}

// Decide answers yes for every entry: BenchmarkDecide's baseline, a plain
// unary round trip with the same request.
func (server) Decide(_ context.Context, r *pluginpb.DecideRequest) (*pluginpb.DecideResponse, error) {
	want := make([]uint64, len(r.GetEntries()))
	for i, e := range r.GetEntries() {
		want[i] = e.GetKey()
	}
	return &pluginpb.DecideResponse{Want: want}, nil
}

// Decisions is Decide on a stream, answered in order on the stream's
// goroutine: BenchmarkDecide's raw-stream baseline.
func (server) Decisions(s pluginpb.Tracer_DecisionsServer) error {
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		want := make([]uint64, len(r.GetEntries()))
		for i, e := range r.GetEntries() {
			want[i] = e.GetKey()
		}
		if err := s.Send(&pluginpb.DecideResponse{Want: want, Seq: r.GetSeq()}); err != nil {
			return err
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: rawserver SOCKET")
		os.Exit(2)
	}
	l, err := net.Listen("unix", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if f := os.Getenv("UNWINDD_BENCH_RAW_CPUPROFILE"); f != "" { // profile the server side of the baseline
		w, err := os.Create(f)
		if err == nil && pprof.StartCPUProfile(w) == nil {
			defer func() {
				pprof.StopCPUProfile()
				w.Close()
			}()
		}
	}
	s := grpc.NewServer(sdk.ServerOptions()...)
	if os.Getenv("UNWINDD_RAW_SDK") != "" {
		pluginpb.RegisterTracerServer(s, sdkServer{sdk: sdk.NewServer(&counter{}, nil)})
	} else {
		pluginpb.RegisterTracerServer(s, server{})
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		s.Stop()
	}()
	fmt.Println("ready")
	if err := s.Serve(l); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
