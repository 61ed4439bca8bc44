package pluginhost

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// errNoStream says the Decisions stream cannot carry a request (the plugin
// does not serve it, or it broke): the caller falls back to a Decide call.
var errNoStream = errors.New("pluginhost: no decisions stream")

// maxInFlight bounds the requests waiting on one Decisions stream. Past it
// a request is answered "no" at once and counted as a timeout: the plugin
// is not keeping up, and its unanswered requests (a few hundred bytes
// each) must never fill the stream's flow-control window, where Send
// would block the source.
const maxInFlight = 64

// decisions is a decide-mode plugin's Decisions stream: each request goes
// out with a seq and the caller waits for the response with that seq, or
// its deadline. One message each way instead of a new unary call halves
// the round trip (BenchmarkDecide). Requests from several dispatchers may
// be in flight at once; an answer that comes after its deadline finds no
// waiter and is dropped.
type decisions struct {
	stream pluginpb.Tracer_DecisionsClient
	log    *zap.Logger

	sendMu sync.Mutex // serialises Send and seq
	seq    uint64

	mu      sync.Mutex
	waiting map[uint64]chan *pluginpb.DecideResponse
	broken  bool          // the receiver ended: no more requests on the stream
	done    chan struct{} // closed when the receiver ends
}

// openDecisions opens the Decisions stream on ctx (the instance's, which
// ends it). When the stream cannot be opened, every ask says errNoStream.
func openDecisions(ctx context.Context, c pluginpb.TracerClient, log *zap.Logger) *decisions {
	d := &decisions{log: log, waiting: make(map[uint64]chan *pluginpb.DecideResponse), done: make(chan struct{})}
	stream, err := c.Decisions(ctx)
	if err != nil {
		log.Debug("no decisions stream; Decide calls instead", zap.Error(err))
		d.broken = true
		close(d.done)
		return d
	}
	d.stream = stream
	go d.receive()
	return d
}

// receive hands each response to its waiter until the stream ends.
func (d *decisions) receive() {
	defer close(d.done)
	for {
		resp, err := d.stream.Recv()
		if err != nil {
			d.mu.Lock()
			d.broken = true
			d.mu.Unlock()
			if status.Code(err) == codes.Unimplemented {
				d.log.Debug("the plugin does not serve the decisions stream; Decide calls instead")
			} else if status.Code(err) != codes.Canceled {
				d.log.Debug("decisions stream ended", zap.Error(err))
			}
			return
		}
		d.mu.Lock()
		ch, ok := d.waiting[resp.GetSeq()]
		delete(d.waiting, resp.GetSeq())
		d.mu.Unlock()
		if ok {
			ch <- resp // buffered: never blocks
		}
	}
}

// ask sends req and waits for its answer until deadline. It returns
// errNoStream when the stream cannot carry it (nothing was decided: the
// caller may ask otherwise), context.DeadlineExceeded when the deadline
// passed, ctx's error when ctx ended.
func (d *decisions) ask(ctx context.Context, req *pluginpb.DecideRequest, deadline time.Time) (*pluginpb.DecideResponse, error) {
	if d == nil {
		return nil, errNoStream
	}
	ch := make(chan *pluginpb.DecideResponse, 1)
	d.sendMu.Lock()
	d.mu.Lock()
	if d.broken {
		d.mu.Unlock()
		d.sendMu.Unlock()
		return nil, errNoStream
	}
	if len(d.waiting) >= maxInFlight {
		d.mu.Unlock()
		d.sendMu.Unlock()
		return nil, context.DeadlineExceeded
	}
	d.seq++
	seq := d.seq
	d.waiting[seq] = ch
	d.mu.Unlock()
	req.Seq, req.BudgetNs = seq, uint64(max(time.Until(deadline), 0))
	err := d.stream.Send(req)
	d.sendMu.Unlock()
	if err != nil {
		d.forget(seq)
		return nil, errNoStream
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case resp := <-ch:
		return resp, nil
	case <-t.C:
		d.forget(seq)
		return nil, context.DeadlineExceeded
	case <-ctx.Done():
		d.forget(seq)
		return nil, ctx.Err()
	case <-d.done:
		// The stream ended; the answer may still have come just before.
		select {
		case resp := <-ch:
			return resp, nil
		default:
		}
		d.forget(seq)
		return nil, errNoStream
	}
}

func (d *decisions) forget(seq uint64) {
	d.mu.Lock()
	delete(d.waiting, seq)
	d.mu.Unlock()
}

// wait waits for the receiver to end (its context has been cancelled);
// nil does nothing.
func (d *decisions) wait() {
	if d != nil {
		<-d.done
	}
}
