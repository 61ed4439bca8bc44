package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

var allSentinels = []error{
	sdk.ErrInvalid, sdk.ErrUnknownTask, sdk.ErrNoEntry, sdk.ErrExiting, sdk.ErrUnsupportedTask,
	sdk.ErrBusy, sdk.ErrCancelled, sdk.ErrNoHost, sdk.ErrProtocol,
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err   error
		code  codes.Code
		errno int
	}{
		{sdk.ErrInvalid, codes.InvalidArgument, -int(syscall.EINVAL)},
		{sdk.ErrUnknownTask, codes.NotFound, -int(syscall.EINVAL)},
		{sdk.ErrNoEntry, codes.FailedPrecondition, -int(syscall.EINVAL)},
		{sdk.ErrExiting, codes.FailedPrecondition, -int(syscall.EINVAL)},
		{sdk.ErrUnsupportedTask, codes.FailedPrecondition, -int(syscall.EINVAL)},
		{sdk.ErrBusy, codes.ResourceExhausted, -int(syscall.EBUSY)},
		{sdk.ErrCancelled, codes.Aborted, -int(syscall.EINVAL)},
		{sdk.ErrNoHost, codes.Unavailable, -int(syscall.ENOTCONN)},
		{sdk.ErrProtocol, codes.InvalidArgument, -int(syscall.EPROTO)},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			wrapped := fmt.Errorf("request tid 42: %w", tt.err)
			st := sdk.StatusFromError(wrapped)
			if got := status.Code(st); got != tt.code {
				t.Errorf("code = %v, want %v", got, tt.code)
			}
			back := sdk.ErrorFromStatus(st)
			for _, s := range allSentinels {
				if got, want := errors.Is(back, s), s == tt.err; got != want {
					t.Errorf("errors.Is(back, %q) = %v, want %v", s, got, want)
				}
			}
			if back.Error() != wrapped.Error() {
				t.Errorf("message = %q, want %q", back, wrapped)
			}
			if got := sdk.Errno(back); got != tt.errno {
				t.Errorf("Errno = %d, want %d", got, tt.errno)
			}
			if status.Code(back) != tt.code {
				t.Errorf("the mapped error lost its status: %v", status.Code(back))
			}
		})
	}
}

func TestErrorMappingEdges(t *testing.T) {
	// An errno the host wraps survives, beside the sentinel.
	st := sdk.StatusFromError(fmt.Errorf("%w: %w", sdk.ErrExiting, syscall.ESRCH))
	back := sdk.ErrorFromStatus(st)
	if !errors.Is(back, sdk.ErrExiting) || !errors.Is(back, syscall.ESRCH) || sdk.Errno(back) != -int(syscall.ESRCH) {
		t.Errorf("errno lost: %v, Errno %d", back, sdk.Errno(back))
	}
	// A status without our detail maps by code.
	if back := sdk.ErrorFromStatus(status.Error(codes.NotFound, "no such tid")); !errors.Is(back, sdk.ErrUnknownTask) {
		t.Errorf("NotFound without detail: %v does not match ErrUnknownTask", back)
	}
	// Context errors both ways.
	if back := sdk.ErrorFromStatus(sdk.StatusFromError(context.DeadlineExceeded)); !errors.Is(back, context.DeadlineExceeded) {
		t.Errorf("deadline: %v", back)
	}
	// Unknown errors keep their message and map to nothing.
	plain := errors.New("something else")
	st = sdk.StatusFromError(plain)
	if status.Code(st) != codes.Unknown || sdk.ErrorFromStatus(st).Error() != "rpc error: code = Unknown desc = something else" {
		t.Errorf("plain error: %v", sdk.ErrorFromStatus(st))
	}
	if sdk.ErrorFromStatus(plain) != plain || sdk.StatusFromError(nil) != nil || sdk.ErrorFromStatus(nil) != nil {
		t.Error("nil or status-less errors must pass through")
	}
	if sdk.Errno(nil) != 0 || sdk.Errno(plain) != -int(syscall.EINVAL) {
		t.Error("Errno of nil or a plain error")
	}
}

// fakeHost serves pluginpb.HostServer: Request answers from a table, Log
// records.
type fakeHost struct {
	pluginpb.UnimplementedHostServer
	request func(tid int32) (*pluginpb.HostRequestResult, error)
	mu      sync.Mutex
	logs    []*pluginpb.LogEntry
}

func (h *fakeHost) Request(_ context.Context, r *pluginpb.HostRequest) (*pluginpb.HostRequestResult, error) {
	return h.request(r.GetTid())
}

func (h *fakeHost) Log(_ context.Context, e *pluginpb.LogEntry) (*pluginpb.LogAck, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, e)
	return &pluginpb.LogAck{}, nil
}

func hostFor(t *testing.T, fh *fakeHost) *sdk.Host {
	conn := dial(t, func(s *grpc.Server) { pluginpb.RegisterHostServer(s, fh) })
	return sdk.NewHost(pluginpb.NewHostClient(conn))
}

// TestHostRequest: the kernel's return values and the sentinels survive the
// trip from the host's Request handler to the plugin's Host.Request, whether
// the host answers with a status (StatusFromError) or a negative ret.
func TestHostRequest(t *testing.T) {
	tests := []struct {
		name     string
		res      *pluginpb.HostRequestResult
		err      error
		ret      int
		cookie   uint64
		sentinel error
	}{
		{"queued", &pluginpb.HostRequestResult{Ret: 0, Cookie: 0x100000001}, nil, 0, 0x100000001, nil},
		{"already", &pluginpb.HostRequestResult{Ret: 1, Cookie: 0x300000001}, nil, 1, 0x300000001, nil},
		{"status unknown task", nil, sdk.StatusFromError(fmt.Errorf("tid 9: %w", sdk.ErrUnknownTask)), -int(syscall.EINVAL), 0, sdk.ErrUnknownTask},
		{"status no entry", nil, sdk.StatusFromError(sdk.ErrNoEntry), -int(syscall.EINVAL), 0, sdk.ErrNoEntry},
		{"status busy", nil, sdk.StatusFromError(sdk.ErrBusy), -int(syscall.EBUSY), 0, sdk.ErrBusy},
		{"ret busy", &pluginpb.HostRequestResult{Ret: -int32(syscall.EBUSY), Error: "deferred: all bits in use"}, nil, -int(syscall.EBUSY), 0, sdk.ErrBusy},
		{"ret einval", &pluginpb.HostRequestResult{Ret: -int32(syscall.EINVAL)}, nil, -int(syscall.EINVAL), 0, sdk.ErrInvalid},
		{"ret names sentinel", &pluginpb.HostRequestResult{Ret: -int32(syscall.EINVAL), Error: "tid 9: " + sdk.ErrUnknownTask.Error()}, nil, -int(syscall.EINVAL), 0, sdk.ErrUnknownTask},
		{"ret without cookie", &pluginpb.HostRequestResult{Ret: 0}, nil, -int(syscall.EPROTO), 0, sdk.ErrProtocol},
		{"ret 2", &pluginpb.HostRequestResult{Ret: 2, Cookie: 1}, nil, -int(syscall.EPROTO), 0, sdk.ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hostFor(t, &fakeHost{request: func(tid int32) (*pluginpb.HostRequestResult, error) {
				if tid != 9 {
					return nil, fmt.Errorf("tid %d, want 9", tid)
				}
				return tt.res, tt.err
			}})
			ret, cookie, err := h.Request(context.Background(), 9)
			if ret != tt.ret || cookie != tt.cookie {
				t.Errorf("Request = %d, %#x; want %d, %#x", ret, cookie, tt.ret, tt.cookie)
			}
			if (err != nil) != (ret < 0) {
				t.Errorf("err %v with ret %d: err must be non-nil exactly when ret < 0", err, ret)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("err %v does not match %v", err, tt.sentinel)
			}
			if err != nil && !strings.Contains(err.Error(), "tid 9") {
				t.Errorf("err %q does not name the tid", err)
			}
		})
	}
}

func TestHostUnconnected(t *testing.T) {
	h := sdk.NewHost(nil)
	ret, cookie, err := h.Request(context.Background(), 1)
	if ret != -int(syscall.ENOTCONN) || cookie != 0 || !errors.Is(err, sdk.ErrNoHost) {
		t.Errorf("Request = %d, %d, %v; want -ENOTCONN, 0, ErrNoHost", ret, cookie, err)
	}
	if err := h.Log(context.Background(), sdk.LevelInfo, "x", nil); !errors.Is(err, sdk.ErrNoHost) {
		t.Errorf("Log = %v, want ErrNoHost", err)
	}
}

func TestHostLogger(t *testing.T) {
	fh := &fakeHost{}
	h := hostFor(t, fh)
	log := h.Logger().Named("counter").With(zap.Int("pid", 7))
	log.Debug("starting")
	log.Warn("skipped a stack", zap.Uint64("cookie", 0x11), zap.Error(errors.New("bad frame")))
	log.Error("fatal-ish")
	fh.mu.Lock()
	defer fh.mu.Unlock()
	want := []struct {
		level  pluginpb.LogLevel
		msg    string
		fields map[string]string
	}{
		{pluginpb.LogLevel_LOG_LEVEL_DEBUG, "starting", map[string]string{"pid": "7", "logger": "counter"}},
		{pluginpb.LogLevel_LOG_LEVEL_WARN, "skipped a stack", map[string]string{"pid": "7", "cookie": "17", "error": "bad frame", "logger": "counter"}},
		{pluginpb.LogLevel_LOG_LEVEL_ERROR, "fatal-ish", map[string]string{"pid": "7", "logger": "counter"}},
	}
	if len(fh.logs) != len(want) {
		t.Fatalf("host got %d log entries, want %d: %v", len(fh.logs), len(want), fh.logs)
	}
	for i, w := range want {
		g := fh.logs[i]
		if g.GetLevel() != w.level || g.GetMessage() != w.msg || fmt.Sprint(g.GetFields()) != fmt.Sprint(w.fields) {
			t.Errorf("entry %d = %v %q %v; want %v %q %v", i, g.GetLevel(), g.GetMessage(), g.GetFields(), w.level, w.msg, w.fields)
		}
	}
}

func TestConfigErrorRoundTrip(t *testing.T) {
	err := fmt.Errorf("sdk: describe: %w", errors.Join(
		&sdk.ConfigError{Field: "hz", Msg: "want 1..100000, got 0"},
		&sdk.ConfigError{Field: "programs[2].filter", Msg: "undeclared reference to 'pidd'"},
	))
	if !errors.Is(err, sdk.ErrInvalid) {
		t.Fatalf("%v does not match ErrInvalid", err)
	}
	back := sdk.ErrorFromStatus(sdk.StatusFromError(err))
	if !errors.Is(back, sdk.ErrInvalid) {
		t.Errorf("across gRPC: %v does not match ErrInvalid", back)
	}
	got := sdk.ConfigErrors(back)
	want := []sdk.ConfigError{{"hz", "want 1..100000, got 0"}, {"programs[2].filter", "undeclared reference to 'pidd'"}}
	if len(got) != len(want) {
		t.Fatalf("ConfigErrors = %v, want %v", got, want)
	}
	for i := range want {
		if *got[i] != want[i] {
			t.Errorf("ConfigErrors[%d] = %+v, want %+v", i, *got[i], want[i])
		}
	}
	if ces := sdk.ConfigErrors(errors.New("plain")); ces != nil {
		t.Errorf("ConfigErrors(plain) = %v", ces)
	}
	if got, want := (&sdk.ConfigError{Msg: "not a mapping"}).Error(), "config: not a mapping"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// logClient is a HostClient whose Log succeeds or fails.
type logClient struct {
	pluginpb.HostClient
	fail    bool
	entries []*pluginpb.LogEntry
}

func (c *logClient) Log(_ context.Context, e *pluginpb.LogEntry, _ ...grpc.CallOption) (*pluginpb.LogAck, error) {
	if c.fail {
		return nil, status.Error(codes.Unavailable, "host gone")
	}
	c.entries = append(c.entries, e)
	return &pluginpb.LogAck{}, nil
}

// TestLogOr: the entry goes to the host when it takes it, else to w as one
// line with the fields sorted (a nil Host, an unconnected one, a host
// gone).
func TestLogOr(t *testing.T) {
	fields := map[string]string{"b": "2", "a": "1"}
	const line = "wrote maps\ta=1\tb=2\n"
	for _, c := range []struct {
		name string
		h    *sdk.Host
		want string
	}{
		{"nil", nil, line},
		{"unconnected", sdk.NewHost(nil), line},
		{"gone", sdk.NewHost(&logClient{fail: true}), line},
		{"taken", sdk.NewHost(&logClient{}), ""},
	} {
		var w strings.Builder
		c.h.LogOr(context.Background(), &w, sdk.LevelInfo, "wrote maps", fields)
		if w.String() != c.want {
			t.Errorf("%s: wrote %q, want %q", c.name, w.String(), c.want)
		}
	}
}
