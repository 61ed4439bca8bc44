package sdktest

import (
	stdcontext "context"
	"errors"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// Build builds the Go package pkg (a directory, "." for the test's own)
// into a temporary directory as name and returns the binary's path.
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(gobin, "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Serve serves tr through the SDK's server on an in-process gRPC
// connection (no go-plugin, no process, no Host service) and returns a
// client for it; both end with t.
func Serve(t testing.TB, tr sdk.Tracer) pluginpb.TracerClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	pluginpb.RegisterTracerServer(srv, sdk.NewServer(tr, nil))
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx stdcontext.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pluginpb.NewTracerClient(conn)
}

// Deliver sends batches on one Deliver stream, each after the previous
// one's acknowledgement, closes the stream, checks that the plugin ends
// it cleanly, and returns the acknowledgements.
func Deliver(t testing.TB, c pluginpb.TracerClient, batches ...*pluginpb.Batch) []uint64 {
	t.Helper()
	ctx, cancel := stdcontext.WithTimeout(stdcontext.Background(), 30*time.Second)
	defer cancel()
	stream, err := c.Deliver(ctx)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	var acks []uint64
	for _, b := range batches {
		if err := stream.Send(b); err != nil {
			t.Fatalf("send batch %d: %v", b.GetSeq(), err)
		}
		ack, err := stream.Recv()
		if err != nil {
			t.Fatalf("batch %d: %v", b.GetSeq(), err)
		}
		acks = append(acks, ack.GetSeq())
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("stream ended with %v, want EOF", err)
	}
	return acks
}

// Call makes the calls the SDK would make on tr for items (sdk.Event,
// sdk.Stack or sdk.Lost values, in order): a run of events is one Events
// call. The test fails at the first error.
func Call(t testing.TB, tr sdk.Tracer, items ...any) {
	t.Helper()
	ctx := stdcontext.Background()
	var events []sdk.Event
	flush := func() {
		if len(events) > 0 {
			if err := tr.Events(ctx, events); err != nil {
				t.Fatalf("Events: %v", err)
			}
			events = nil
		}
	}
	for _, it := range items {
		var err error
		switch x := it.(type) {
		case sdk.Event:
			events = append(events, x)
			continue
		case sdk.Stack:
			flush()
			err = tr.Stack(ctx, x)
		case sdk.Lost:
			flush()
			err = tr.Lost(ctx, x)
		default:
			t.Fatalf("sdktest.Call: item of type %T", it)
		}
		if err != nil {
			t.Fatalf("%T: %v", it, err)
		}
	}
	flush()
}

// Describe calls Describe on c with req and returns the plugin's decoded
// description; the test fails on an error.
func Describe(t testing.TB, c pluginpb.TracerClient, req *pluginpb.DescribeRequest) sdk.Description {
	t.Helper()
	ctx, cancel := stdcontext.WithTimeout(stdcontext.Background(), 30*time.Second)
	defer cancel()
	desc, err := c.Describe(ctx, req)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	d, err := sdk.DescriptionFromProto(desc)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	return d
}
