package pluginhost

import (
	"bytes"
	"io"
	"log"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapHclog is an hclog.Logger that writes into a *zap.Logger: go-plugin logs
// through it (its own messages and the plugin's stderr), so the host has one
// log. Trace maps to zap's Debug. hclog's key/value pairs become zap fields;
// an odd trailing value is kept under the key "EXTRA_VALUE_AT_END", as hclog
// does. Keys in reserved (fields the zap logger already carries, such as
// "plugin") get the prefix "hclog_", so that JSON output has no duplicate
// keys.
type zapHclog struct {
	z        *zap.Logger
	reserved []string
	name     string
	implied  []any
	level    *atomic.Int32 // hclog.Level, shared by loggers derived with With/Named
}

// newHclog returns an hclog.Logger over z. Its level starts at the most
// verbose level z enables.
func newHclog(z *zap.Logger, reserved ...string) hclog.Logger {
	lvl := new(atomic.Int32)
	lvl.Store(int32(hclogLevel(z.Core())))
	return &zapHclog{z: z, reserved: reserved, level: lvl}
}

// hclogLevel is the most verbose hclog level that core enables.
func hclogLevel(core zapcore.Core) hclog.Level {
	switch {
	case core.Enabled(zapcore.DebugLevel):
		return hclog.Debug
	case core.Enabled(zapcore.InfoLevel):
		return hclog.Info
	case core.Enabled(zapcore.WarnLevel):
		return hclog.Warn
	case core.Enabled(zapcore.ErrorLevel):
		return hclog.Error
	}
	return hclog.Off
}

func zapLevel(l hclog.Level) zapcore.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return zapcore.DebugLevel
	case hclog.Warn:
		return zapcore.WarnLevel
	case hclog.Error:
		return zapcore.ErrorLevel
	}
	return zapcore.InfoLevel
}

func (l *zapHclog) fields(args []any) []zap.Field {
	fs := make([]zap.Field, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			fs = append(fs, zap.Any("EXTRA_VALUE_AT_END", args[i]))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = "BAD_KEY"
		}
		if slices.Contains(l.reserved, key) {
			key = "hclog_" + key
		}
		fs = append(fs, zap.Any(key, args[i+1]))
	}
	return fs
}

func (l *zapHclog) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || (level != hclog.NoLevel && level < hclog.Level(l.level.Load())) {
		return
	}
	ce := l.z.Check(zapLevel(level), msg)
	if ce == nil {
		return
	}
	fs := l.fields(append(append([]any(nil), l.implied...), args...))
	if l.name != "" {
		fs = append(fs, zap.String("hclog", l.name))
	}
	ce.Write(fs...)
}

func (l *zapHclog) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *zapHclog) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *zapHclog) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *zapHclog) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *zapHclog) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *zapHclog) enabled(level hclog.Level) bool {
	return level >= hclog.Level(l.level.Load()) && l.z.Core().Enabled(zapLevel(level))
}

func (l *zapHclog) IsTrace() bool { return l.enabled(hclog.Trace) }
func (l *zapHclog) IsDebug() bool { return l.enabled(hclog.Debug) }
func (l *zapHclog) IsInfo() bool  { return l.enabled(hclog.Info) }
func (l *zapHclog) IsWarn() bool  { return l.enabled(hclog.Warn) }
func (l *zapHclog) IsError() bool { return l.enabled(hclog.Error) }

func (l *zapHclog) ImpliedArgs() []any { return append([]any(nil), l.implied...) }

func (l *zapHclog) With(args ...any) hclog.Logger {
	c := *l
	c.implied = append(append([]any(nil), l.implied...), args...)
	return &c
}

func (l *zapHclog) Name() string { return l.name }

func (l *zapHclog) Named(name string) hclog.Logger {
	c := *l
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (l *zapHclog) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name = name
	return &c
}

func (l *zapHclog) SetLevel(level hclog.Level) { l.level.Store(int32(level)) }
func (l *zapHclog) GetLevel() hclog.Level      { return hclog.Level(l.level.Load()) }

func (l *zapHclog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

func (l *zapHclog) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	var o hclog.StandardLoggerOptions
	if opts != nil {
		o = *opts
	}
	return &stdWriter{l: l, opts: o}
}

// stdWriter logs each write as one message, like hclog's stdlog adapter:
// with InferLevels, a leading "[DEBUG]"-style tag picks the level.
type stdWriter struct {
	l    *zapHclog
	opts hclog.StandardLoggerOptions
}

func (w *stdWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, " \t\r\n"))
	level := hclog.Info
	if w.opts.ForceLevel != hclog.NoLevel {
		level = w.opts.ForceLevel
	} else if w.opts.InferLevels {
		for tag, lv := range map[string]hclog.Level{"[TRACE]": hclog.Trace, "[DEBUG]": hclog.Debug, "[INFO]": hclog.Info, "[WARN]": hclog.Warn, "[ERROR]": hclog.Error, "[ERR]": hclog.Error} {
			if rest, ok := strings.CutPrefix(msg, tag); ok {
				level, msg = lv, strings.TrimSpace(rest)
				break
			}
		}
	}
	w.l.Log(level, msg)
	return len(p), nil
}

var _ hclog.Logger = (*zapHclog)(nil)
