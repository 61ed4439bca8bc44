package pluginhost

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/unwindd/unwindd/host/deferred"
	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// hostServer is the Host service one plugin connection calls back into.
type hostServer struct {
	pluginpb.UnimplementedHostServer
	eng    *deferred.Engine
	tracer *deferred.Tracer
	log    *zap.Logger // has the plugin's name
}

// sdkError names the sdk sentinel for an engine error, so that the plugin's
// errors.Is matches it.
func sdkError(err error) error {
	var s error
	switch {
	case errors.Is(err, deferred.ErrUnknownTask):
		s = sdk.ErrUnknownTask
	case errors.Is(err, deferred.ErrNoEntry):
		s = sdk.ErrNoEntry
	case errors.Is(err, deferred.ErrExiting):
		s = sdk.ErrExiting
	case errors.Is(err, deferred.ErrKernelThread), errors.Is(err, deferred.ErrCompat):
		s = sdk.ErrUnsupportedTask
	case errors.Is(err, deferred.ErrBusy):
		s = sdk.ErrBusy
	case errors.Is(err, deferred.ErrCancelled):
		s = sdk.ErrCancelled
	default:
		s = sdk.ErrInvalid
	}
	return fmt.Errorf("%w: %w", s, err)
}

// Request is the engine's Request for the plugin's tracer. The kernel's
// return value travels in the message (a refusal is not a gRPC error); its
// error text names the sdk sentinel, which the sdk maps back.
func (h *hostServer) Request(_ context.Context, r *pluginpb.HostRequest) (*pluginpb.HostRequestResult, error) {
	ret, c, err := h.eng.Request(h.tracer, r.GetTid())
	res := &pluginpb.HostRequestResult{Ret: int32(ret), Cookie: uint64(c)}
	if err != nil {
		res.Error = sdkError(err).Error()
	}
	return res, nil
}

// Log writes the plugin's message into the host's log.
func (h *hostServer) Log(_ context.Context, e *pluginpb.LogEntry) (*pluginpb.LogAck, error) {
	lvl := zapcore.InfoLevel
	switch e.GetLevel() {
	case pluginpb.LogLevel_LOG_LEVEL_DEBUG:
		lvl = zapcore.DebugLevel
	case pluginpb.LogLevel_LOG_LEVEL_WARN:
		lvl = zapcore.WarnLevel
	case pluginpb.LogLevel_LOG_LEVEL_ERROR:
		lvl = zapcore.ErrorLevel
	}
	if ce := h.log.Check(lvl, e.GetMessage()); ce != nil {
		fs := make([]zap.Field, 0, len(e.GetFields()))
		for k, v := range e.GetFields() {
			fs = append(fs, zap.String(k, v))
		}
		ce.Write(fs...)
	}
	return &pluginpb.LogAck{}, nil
}
