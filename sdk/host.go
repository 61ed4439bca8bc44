package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-plugin"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// logTimeout bounds one Log RPC made by [Host.Logger].
const logTimeout = 5 * time.Second

// Host is a plugin's handle on the host, dialled through go-plugin's broker
// when the host calls Describe. It is safe for concurrent use. It stays valid
// until the plugin stops or the host describes it again (a new connection,
// with a new Host); after that its calls fail.
type Host struct {
	client pluginpb.HostClient // nil: no Host service
	conn   *grpc.ClientConn    // nil: no Host service, or not ours to close
	stderr io.Writer           // where Logger writes when there is no host
}

// dialHost connects to the Host service the host serves on broker id; id 0
// (or no broker) gives a Host whose calls fail with ErrNoHost.
func dialHost(broker *plugin.GRPCBroker, id uint32) (*Host, error) {
	if broker == nil || id == 0 {
		return &Host{stderr: os.Stderr}, nil
	}
	conn, err := broker.Dial(id)
	if err != nil {
		return nil, fmt.Errorf("sdk: dial the host service (broker id %d): %w", id, err)
	}
	return &Host{client: pluginpb.NewHostClient(conn), conn: conn, stderr: os.Stderr}, nil
}

// NewHost returns a Host that talks to client, for tests and harnesses that
// serve pluginpb.HostServer themselves; nil gives a Host whose calls fail
// with [ErrNoHost]. The caller keeps ownership of client's connection.
func NewHost(client pluginpb.HostClient) *Host {
	return &Host{client: client, stderr: os.Stderr}
}

// close releases the connection dialled for h.
func (h *Host) close() error {
	if h == nil || h.conn == nil {
		return nil
	}
	return h.conn.Close()
}

// Request asks the host for the user stack of task tid's current kernel
// entry, as the kernel's unwind_deferred_request does: ret 0 means the
// request is queued now, 1 that it was already queued or already called in
// this entry (both with the entry's cookie); a negative errno means it
// failed, with cookie 0 and a non-nil err that matches one of this package's
// sentinels ([ErrUnknownTask], [ErrNoEntry], [ErrExiting],
// [ErrUnsupportedTask], [ErrBusy], [ErrCancelled], [ErrInvalid]; [ErrNoHost]
// when the host cannot be reached). err is non-nil exactly when ret < 0.
// The stack arrives later, through [Tracer.Stack], with the same cookie.
func (h *Host) Request(ctx context.Context, tid int32) (ret int, cookie uint64, err error) {
	if h.client == nil {
		return Errno(ErrNoHost), 0, fmt.Errorf("sdk: request stack of tid %d: %w", tid, ErrNoHost)
	}
	res, err := h.client.Request(ctx, &pluginpb.HostRequest{Tid: tid})
	if err != nil {
		err = ErrorFromStatus(err)
		return Errno(err), 0, fmt.Errorf("sdk: request stack of tid %d: %w", tid, err)
	}
	switch r := res.GetRet(); {
	case r < 0:
		err := errorFromErrno(int(r), res.GetError())
		return int(r), 0, fmt.Errorf("sdk: request stack of tid %d: %w", tid, err)
	case r > 1 || res.GetCookie() == 0:
		err := fmt.Errorf("%w: host answered ret %d with cookie %#x", ErrProtocol, r, res.GetCookie())
		return Errno(err), 0, fmt.Errorf("sdk: request stack of tid %d: %w", tid, err)
	}
	return int(res.GetRet()), res.GetCookie(), nil
}

// Level is the severity of a [Host.Log] entry.
type Level int8

// The log levels, as the host's log has them.
const (
	LevelDebug Level = iota - 1
	LevelInfo
	LevelWarn
	LevelError
)

// Log writes one entry into the host's log, which adds the plugin's name.
// It fails with [ErrNoHost] when there is no host to write to.
func (h *Host) Log(ctx context.Context, level Level, msg string, fields map[string]string) error {
	if h.client == nil {
		return fmt.Errorf("sdk: log %q: %w", msg, ErrNoHost)
	}
	_, err := h.client.Log(ctx, &pluginpb.LogEntry{Level: logLevel(level), Message: msg, Fields: fields})
	if err != nil {
		return fmt.Errorf("sdk: log %q: %w", msg, ErrorFromStatus(err))
	}
	return nil
}

// CloseLogTimeout bounds [Host.CloseLog]'s trip to the host: at Close the
// host is shutting the plugin down, and kills it a couple of seconds after
// asking it to stop.
const CloseLogTimeout = 500 * time.Millisecond

// CloseLog is [Host.LogOr] for a plugin's last words, at Close: the host
// gets CloseLogTimeout to take the entry before it goes to w.
func (h *Host) CloseLog(w io.Writer, level Level, msg string, fields map[string]string) {
	ctx, cancel := context.WithTimeout(context.Background(), CloseLogTimeout)
	defer cancel()
	h.LogOr(ctx, w, level, msg, fields)
}

// LogOr writes one entry to the host's log as [Host.Log] does, or, when
// the host cannot take it (a nil or unconnected Host, a host gone at
// shutdown, ctx ended), to w as one line: msg, then "\tkey=value" for each
// field, keys sorted. A plugin's summary at Close is then never lost: the
// plugin's stderr reaches the host's log through go-plugin too.
func (h *Host) LogOr(ctx context.Context, w io.Writer, level Level, msg string, fields map[string]string) {
	if h != nil && h.Log(ctx, level, msg, fields) == nil {
		return
	}
	var b strings.Builder
	b.WriteString(msg)
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		fmt.Fprintf(&b, "\t%s=%s", k, fields[k])
	}
	fmt.Fprintln(w, b.String())
}

func logLevel(l Level) pluginpb.LogLevel {
	switch {
	case l <= LevelDebug:
		return pluginpb.LogLevel_LOG_LEVEL_DEBUG
	case l == LevelInfo:
		return pluginpb.LogLevel_LOG_LEVEL_INFO
	case l == LevelWarn:
		return pluginpb.LogLevel_LOG_LEVEL_WARN
	}
	return pluginpb.LogLevel_LOG_LEVEL_ERROR
}

// levelOf maps a zap level to a Level; zap's levels above Error (DPanic,
// Panic, Fatal) are sent as Error.
func levelOf(l zapcore.Level) Level {
	if l > zapcore.ErrorLevel {
		return LevelError
	}
	return Level(l)
}

// Logger returns a zap logger whose entries go to the host's log through
// [Host.Log], one RPC per entry (each bounded by a few seconds), with every
// field formatted as a string. When the host cannot be reached, entries go
// to the plugin's stderr instead, which go-plugin forwards to the host's log
// too. Logging is for notable things, not for every event. Logger().Sugar()
// logs key-value pairs without importing zap.
func (h *Host) Logger() *zap.Logger {
	return zap.New(&hostCore{LevelEnabler: zapcore.DebugLevel, h: h})
}

// hostCore is the zapcore.Core behind Host.Logger.
type hostCore struct {
	zapcore.LevelEnabler
	h      *Host
	fields []zapcore.Field
}

func (c *hostCore) With(fs []zapcore.Field) zapcore.Core {
	return &hostCore{
		LevelEnabler: c.LevelEnabler,
		h:            c.h,
		fields:       append(c.fields[:len(c.fields):len(c.fields)], fs...),
	}
}

func (c *hostCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *hostCore) Write(ent zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fs {
		f.AddTo(enc)
	}
	m := make(map[string]string, len(enc.Fields)+1)
	for k, v := range enc.Fields {
		m[k] = fmt.Sprint(v)
	}
	if ent.LoggerName != "" {
		m["logger"] = ent.LoggerName
	}
	ctx, cancel := context.WithTimeout(context.Background(), logTimeout)
	defer cancel()
	err := c.h.Log(ctx, levelOf(ent.Level), ent.Message, m)
	if err == nil {
		return nil
	}
	// No host (or it is gone): stderr reaches the host's log through
	// go-plugin, as plain text.
	var b strings.Builder
	fmt.Fprintf(&b, "%s\t%s", ent.Level.CapitalString(), ent.Message)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\t%s=%s", k, m[k])
	}
	b.WriteByte('\n')
	if _, werr := io.WriteString(c.h.stderr, b.String()); werr != nil {
		return errors.Join(err, werr)
	}
	return nil
}

func (c *hostCore) Sync() error { return nil }
