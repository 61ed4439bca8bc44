package pluginhost

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestHclogBridge(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	z := zap.New(core).With(zap.String("plugin", "perf"))
	var l hclog.Logger = newHclog(z, "plugin")

	l.Trace("dropped: hclog's trace is below the default level (debug)")
	l.SetLevel(hclog.Trace)
	l.Trace("trace msg", "k", 1)
	l.With("plugin", "/bin/perf-plugin", "id", 7).Named("stdio").Info("hello", "odd")
	l.Warn("warned")
	l.Error("failed", "err", "boom")
	l.Log(hclog.NoLevel, "no level")

	want := []struct {
		level  zapcore.Level
		msg    string
		fields map[string]any
	}{
		{zapcore.DebugLevel, "trace msg", map[string]any{"plugin": "perf", "k": int64(1)}},
		{zapcore.InfoLevel, "hello", map[string]any{"plugin": "perf", "hclog_plugin": "/bin/perf-plugin", "id": int64(7), "EXTRA_VALUE_AT_END": "odd", "hclog": "stdio"}},
		{zapcore.WarnLevel, "warned", map[string]any{"plugin": "perf"}},
		{zapcore.ErrorLevel, "failed", map[string]any{"plugin": "perf", "err": "boom"}},
		{zapcore.InfoLevel, "no level", map[string]any{"plugin": "perf"}},
	}
	got := logs.AllUntimed()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Level != w.level || g.Message != w.msg {
			t.Errorf("entry %d: %v %q, want %v %q", i, g.Level, g.Message, w.level, w.msg)
		}
		if m := g.ContextMap(); len(m) != len(w.fields) {
			t.Errorf("entry %d: fields %v, want %v", i, m, w.fields)
		} else {
			for k, v := range w.fields {
				if m[k] != v {
					t.Errorf("entry %d: field %s = %#v, want %#v", i, k, m[k], v)
				}
			}
		}
	}

	// Levels: SetLevel filters, and the Is* answers follow both hclog's and zap's level.
	l.SetLevel(hclog.Warn)
	l.Info("filtered")
	if n := logs.FilterMessage("filtered").Len(); n != 0 {
		t.Errorf("info logged at hclog level warn")
	}
	if l.IsInfo() || !l.IsWarn() || l.GetLevel() != hclog.Warn {
		t.Errorf("IsInfo %v IsWarn %v GetLevel %v", l.IsInfo(), l.IsWarn(), l.GetLevel())
	}
	if l.Named("a").Named("b").Name() != "a.b" || l.Named("a").ResetNamed("c").Name() != "c" {
		t.Error("Named/ResetNamed")
	}

	// A logger over an info-level zap core starts at info: go-plugin checks IsDebug.
	infoCore, _ := observer.New(zapcore.InfoLevel)
	if il := newHclog(zap.New(infoCore)); il.IsDebug() || !il.IsInfo() {
		t.Errorf("bridge over an info core: IsDebug %v IsInfo %v", il.IsDebug(), il.IsInfo())
	}

	// The standard writer infers levels from "[LEVEL]" prefixes.
	w := l.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})
	l.SetLevel(hclog.Trace)
	if _, err := w.Write([]byte("[ERROR] from the std logger\n")); err != nil {
		t.Fatal(err)
	}
	e := logs.FilterMessage("from the std logger").All()
	if len(e) != 1 || e[0].Level != zapcore.ErrorLevel {
		t.Errorf("std writer: %+v", e)
	}
	l.StandardLogger(nil).Print("via log.Logger")
	if logs.FilterMessage("via log.Logger").Len() != 1 {
		t.Error("StandardLogger wrote nothing")
	}
}
