package sdk_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// dial serves register's services over an in-process bufconn and returns a
// client connection to them; both end with the test.
func dial(t *testing.T, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	register(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	return conn
}

// tracerClient serves tr in-process and returns the host's client for it.
func tracerClient(t *testing.T, tr sdk.Tracer) pluginpb.TracerClient {
	t.Helper()
	conn := dial(t, func(s *grpc.Server) { pluginpb.RegisterTracerServer(s, sdk.NewServer(tr, nil)) })
	return pluginpb.NewTracerClient(conn)
}

// call is one Tracer call the recorder saw.
type call struct {
	Events []sdk.Event
	Stack  *sdk.Stack
	Lost   *sdk.Lost
}

// recorder is a Tracer that records its calls. fail, when set, is consulted
// before each call is recorded: it may panic or return an error.
type recorder struct {
	mu    sync.Mutex
	calls []call
	desc  sdk.Description
	info  sdk.DescribeInfo
	fail  func(c call) error
}

func (r *recorder) Describe(_ context.Context, info sdk.DescribeInfo) (sdk.Description, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.info = info
	return r.desc, nil
}

func (r *recorder) record(c call) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(c); err != nil {
			return err
		}
	}
	r.calls = append(r.calls, c)
	return nil
}

func (r *recorder) Events(_ context.Context, ev []sdk.Event) error { return r.record(call{Events: ev}) }
func (r *recorder) Stack(_ context.Context, s sdk.Stack) error     { return r.record(call{Stack: &s}) }
func (r *recorder) Lost(_ context.Context, l sdk.Lost) error       { return r.record(call{Lost: &l}) }

func (r *recorder) seen() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// deliver opens a Deliver stream, sends batches one by one (waiting for each
// ack) and returns the acks received and the error that ended the stream
// (nil if it ended cleanly after the host closed its side).
func deliver(t *testing.T, c pluginpb.TracerClient, batches ...*pluginpb.Batch) (acks []uint64, err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.Deliver(ctx)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	for _, b := range batches {
		if err := stream.Send(b); err != nil {
			break // the server ended the stream; Recv reports why
		}
		ack, err := stream.Recv()
		if err != nil {
			return acks, err
		}
		acks = append(acks, ack.GetSeq())
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	for {
		ack, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return acks, nil
			}
			return acks, err
		}
		acks = append(acks, ack.GetSeq())
	}
}
