package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"go.uber.org/zap"

	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// Server serves a [Tracer] as pluginpb.TracerServer: the plugin side of the
// protocol. [Serve] builds one; tests and in-process harnesses can register
// one on any grpc.Server.
type Server struct {
	pluginpb.UnimplementedTracerServer
	t      Tracer
	broker *plugin.GRPCBroker // nil: no broker, every Host is unconnected

	// callMu serialises Describe and delivery callbacks, so the Tracer sees
	// one call at a time even if the host opens a second stream. Decide does
	// not take it. mu guards host; take callMu first when both are needed.
	callMu sync.Mutex
	mu     sync.Mutex
	host   *Host // from the latest Describe; nil before it
}

// NewServer returns a Server for t. broker is the go-plugin broker the
// Host service is dialled through; nil means no Host service (every
// [DescribeInfo.Host] then fails with [ErrNoHost]).
func NewServer(t Tracer, broker *plugin.GRPCBroker) *Server {
	return &Server{t: t, broker: broker}
}

// currentHost is the Host of the latest Describe, or an unconnected one.
func (s *Server) currentHost() *Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.host == nil {
		return NewHost(nil)
	}
	return s.host
}

// recovered turns a panic value from a Tracer method into an error and logs
// it with the goroutine's stack.
func (s *Server) recovered(what string, r any) error {
	err := fmt.Errorf("sdk: panic in %s: %v", what, r)
	s.currentHost().Logger().Error("plugin panicked",
		zap.String("in", what),
		zap.String("panic", fmt.Sprint(r)),
		zap.String("stack", string(debug.Stack())))
	return err
}

// Describe dials the Host service, hands the tracer its config and returns
// its description.
func (s *Server) Describe(ctx context.Context, req *pluginpb.DescribeRequest) (*pluginpb.Description, error) {
	h, err := dialHost(s.broker, req.GetHostBrokerId())
	if err != nil {
		return nil, StatusFromError(err)
	}
	s.callMu.Lock()
	defer s.callMu.Unlock()
	d, err := s.describe(ctx, req, h)
	if err == nil {
		err = d.CheckValid()
	}
	if err == nil && d.Mode == ModeDecide {
		if _, ok := s.t.(Decider); !ok {
			err = fmt.Errorf("%w: mode decide, but the tracer has no Decide method", ErrInvalid)
		}
	}
	if err != nil {
		h.close()
		return nil, StatusFromError(fmt.Errorf("sdk: describe: %w", err))
	}
	s.mu.Lock()
	old := s.host
	s.host = h
	s.mu.Unlock()
	old.close() // a new connection replaces the old one
	return descriptionToProto(&d), nil
}

func (s *Server) describe(ctx context.Context, req *pluginpb.DescribeRequest, h *Host) (d Description, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.recovered("Tracer.Describe", r)
		}
	}()
	return s.t.Describe(ctx, DescribeInfo{Config: req.GetConfig(), HostVersion: req.GetHostVersion(), Check: req.GetCheck(), Host: h})
}

// Deliver receives batches, turns them into Tracer calls and acknowledges
// each one once its calls have returned. A protocol error, an error from the
// Tracer or a panic in it ends the stream with that error (and the batch is
// not acknowledged); the host's closing its side ends it with nil.
func (s *Server) Deliver(stream pluginpb.Tracer_DeliverServer) error {
	ctx := stream.Context()
	d := newDecoder()
	if c, ok := s.t.(EventCopier); ok && c.CopiesEvents() {
		d.reuse = true
	}
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.deliver(ctx, d, b); err != nil {
			return StatusFromError(err)
		}
		if err := stream.Send(&pluginpb.Ack{Seq: b.GetSeq()}); err != nil {
			return err
		}
	}
}

func (s *Server) deliver(ctx context.Context, d *decoder, b *pluginpb.Batch) (err error) {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = s.recovered(fmt.Sprintf("%s (batch %d)", d.doing, b.GetSeq()), r)
		}
	}()
	return d.batch(ctx, b, s.t)
}

// Decide asks the tracer's Decider which entries it wants stacks for; a
// tracer that is not a Decider wants none.
func (s *Server) Decide(ctx context.Context, req *pluginpb.DecideRequest) (*pluginpb.DecideResponse, error) {
	resp, err := s.answer(ctx, req)
	if err != nil {
		return nil, StatusFromError(err)
	}
	return resp, nil
}

// Decisions serves the Decide stream: each request is answered in turn,
// under its budget, with its seq; a Decider's error or panic is the
// response's error (the host answers "no" and counts it), not the end of
// the stream. The host's closing its side ends it with nil. Answering on
// the stream's goroutine saves a goroutine hand-off per request (a third
// of the round trip, BenchmarkDecide); a slow Decider only delays the
// answers behind it, which the host then counts as timeouts, and the host
// never has more than a few requests in flight, so the stream's window
// never fills.
func (s *Server) Decisions(stream pluginpb.Tracer_DecisionsServer) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if b := req.GetBudgetNs(); b > 0 {
			rctx, cancel = context.WithTimeout(ctx, time.Duration(b))
		}
		resp, err := s.answer(rctx, req)
		cancel()
		if err != nil {
			resp = &pluginpb.DecideResponse{Error: err.Error()}
		}
		resp.Seq = req.GetSeq()
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// answer runs the tracer's Decider on req.
func (s *Server) answer(ctx context.Context, req *pluginpb.DecideRequest) (*pluginpb.DecideResponse, error) {
	dec, ok := s.t.(Decider)
	if !ok {
		return &pluginpb.DecideResponse{}, nil
	}
	pe := req.GetEntries()
	entries := make([]DecideEntry, len(pe))
	for i, e := range pe {
		entries[i] = DecideEntry{PID: e.GetPid(), TID: e.GetTid()}
		if evs := e.GetEvents(); len(evs) > 0 {
			entries[i].Events = eventsFromProto(evs)
		}
	}
	want, err := s.decide(ctx, dec, entries)
	if err != nil {
		return nil, fmt.Errorf("sdk: decide: %w", err)
	}
	if len(want) > len(entries) {
		return nil, fmt.Errorf("sdk: decide: %d answers for %d entries", len(want), len(entries))
	}
	resp := &pluginpb.DecideResponse{}
	for i, w := range want {
		if w {
			resp.Want = append(resp.Want, pe[i].GetKey())
		}
	}
	return resp, nil
}

func (s *Server) decide(ctx context.Context, dec Decider, entries []DecideEntry) (want []bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.recovered("Decider.Decide", r)
		}
	}()
	return dec.Decide(ctx, entries)
}
