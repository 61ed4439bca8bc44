// Command rawserver is the baseline of BenchmarkRawGRPCStream: a process
// that serves the Tracer service's Deliver stream on a plain gRPC server on
// a Unix socket (no go-plugin, no TLS), and acknowledges every batch after
// decoding it, and Decide (BenchmarkDecide's baseline). It prints "ready" when it listens and exits when stdin closes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"

	"google.golang.org/grpc"

	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

type server struct {
	pluginpb.UnimplementedTracerServer
}

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
	pluginpb.RegisterTracerServer(s, server{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		s.Stop()
	}()
	fmt.Println("ready")
	if err := s.Serve(l); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
