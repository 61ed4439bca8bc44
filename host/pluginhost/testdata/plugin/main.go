// Command plugin is the test plugin of package pluginhost, built on package
// sdk alone: a tracer whose behaviour the test picks through UNWINDD_TEST_*
// environment variables, and which checks what it receives (events before
// their stack, exactly one stack per cookie) and writes its counts as JSON
// to $UNWINDD_TEST_OUT/<name>-<pid>.json when the host stops it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// Counts is what the plugin reports; the test decodes the same fields.
type Counts struct {
	Name          string
	PID, UID      int
	Batches       uint64 // Events, Stack and Lost calls
	Events        uint64 // all events
	CookieEvents  uint64 // events carrying a cookie
	Stacks        uint64
	StackSum      uint64 // Σ over stacks of hash(cookie, frame addresses)
	DupStacks     uint64 // a second stack for a cookie
	EventAfter    uint64 // an event carrying a cookie whose stack came earlier
	SeqErrors     uint64 // unused with the sdk: it checks sequence numbers itself
	BadRefs       uint64 // invalid frames
	StackDefs     uint64
	LostNotices   uint64
	LostEvents    uint64
	LostStacks    uint64
	LostCookies   uint64
	DecideEntries uint64
	DecideYes     uint64
	RequestRet    int32 // Host.Request for an unknown tid, made in Describe
	RequestErr    string
	RequestIsSDK  bool // errors.Is(err, sdk.ErrUnknownTask)
}

type tracer struct {
	mu       sync.Mutex
	c        Counts
	done     map[uint64]bool // cookies whose stack arrived
	slow     time.Duration
	hang     bool
	panicAt  uint64
	reported bool
	host     *sdk.Host // for LATENCY reports
	latency  bool
	first    bool // the first Events call was reported
	nocheck  bool // benchmarks: count, do not track cookies (a map of every cookie would be most of the plugin's work)
}

func env(k string) string { return os.Getenv("UNWINDD_TEST_" + k) }

func (t *tracer) Describe(ctx context.Context, info sdk.DescribeInfo) (sdk.Description, error) {
	t.host = info.Host
	// QUIET_DESCRIBE: describe without calling the host, as the built-in
	// plugins do (BenchmarkStartup/quiet).
	if env("QUIET_DESCRIBE") == "" {
		if err := info.Host.Log(ctx, sdk.LevelInfo, "test plugin describing", map[string]string{"config": string(info.Config)}); err != nil {
			return sdk.Description{}, err
		}
		ret, _, err := info.Host.Request(ctx, -12345)
		t.c.RequestRet = int32(ret)
		if err != nil {
			t.c.RequestErr = err.Error()
			t.c.RequestIsSDK = isUnknownTask(err)
		}
	}
	d := sdk.Description{Name: "test-" + env("MODE"), Version: "0.0.1"}
	for id := range strings.SplitSeq(env("STACK_IDS"), ",") { // the host's StackFilter
		if n, err := strconv.ParseInt(id, 10, 32); err == nil {
			d.StackFilter.IDs = append(d.StackFilter.IDs, int32(n))
		}
	}
	switch env("MODE") {
	case "always":
		d.Mode = sdk.ModeAlways
	case "decide":
		d.Mode = sdk.ModeDecide
	default:
		d.Mode = sdk.ModeNever
	}
	for s := range strings.SplitSeq(env("SUBS"), ",") {
		switch {
		case s == "sample":
			d.Subscriptions = append(d.Subscriptions, sdk.CPUClock(99))
		case strings.HasPrefix(s, "sys:"):
			var names []string
			if n := strings.TrimPrefix(s, "sys:"); n != "*" {
				names = []string{n}
			}
			d.Subscriptions = append(d.Subscriptions, sdk.Syscalls(names...))
		case strings.HasPrefix(s, "tp:"):
			g, n, _ := strings.Cut(strings.TrimPrefix(s, "tp:"), ":")
			d.Subscriptions = append(d.Subscriptions, sdk.Tracepoint(g, n))
		}
	}
	return d, nil
}

func (t *tracer) Decide(ctx context.Context, entries []sdk.DecideEntry) ([]bool, error) {
	if d, err := time.ParseDuration(env("DECIDE_SLEEP")); err == nil {
		time.Sleep(d)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	want := make([]bool, len(entries))
	for i, e := range entries {
		t.c.DecideEntries++
		if e.TID%2 == 1 { // odd tids: yes
			t.c.DecideYes++
			want[i] = true
		}
	}
	return want, nil
}

func (t *tracer) call() {
	t.c.Batches++
	if t.panicAt > 0 && t.c.Batches >= t.panicAt {
		panic("test plugin: panic in a callback, as asked")
	}
	if t.hang {
		select {}
	}
	if t.slow > 0 {
		time.Sleep(t.slow)
	}
}

// CopiesEvents: Events keeps only counts and copies (sdk.EventCopier).
func (t *tracer) CopiesEvents() bool { return true }

func (t *tracer) Events(ctx context.Context, evs []sdk.Event) error {
	if t.latency {
		// The host stamps Time with its wall clock (UnixNano) when it
		// dispatches the event; same machine, same clock.
		now := time.Now().UnixNano()
		fields := map[string]string{"latency_ns": strconv.FormatInt(now-int64(evs[0].Time), 10)}
		if !t.first {
			t.first = true
			fields["first_ns"] = strconv.FormatInt(now, 10)
		}
		if err := t.host.Log(ctx, sdk.LevelInfo, "latency", fields); err != nil {
			return err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.call()
	if t.nocheck {
		t.c.Events += uint64(len(evs))
		return nil
	}
	for _, e := range evs {
		t.c.Events++
		if e.Cookie != 0 {
			t.c.CookieEvents++
			if t.done[e.Cookie] {
				t.c.EventAfter++
			}
		}
	}
	return nil
}

func hash(cookie uint64, fs []sdk.Frame) uint64 {
	h := cookie
	for _, f := range fs {
		h = h*31 + f.Addr
	}
	return h
}

func (t *tracer) Stack(_ context.Context, s sdk.Stack) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.call()
	if err := s.CheckValid(); err != nil {
		t.c.BadRefs++
	}
	if t.nocheck {
		t.c.Stacks++
		t.c.StackSum += hash(s.Cookie, s.Frames)
		return nil
	}
	if t.done[s.Cookie] {
		t.c.DupStacks++
	}
	t.done[s.Cookie] = true
	t.c.Stacks++
	t.c.StackSum += hash(s.Cookie, s.Frames)
	return nil
}

func (t *tracer) Lost(_ context.Context, l sdk.Lost) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.c.LostNotices++
	t.c.LostEvents += l.Events
	t.c.LostStacks += l.Stacks
	t.c.LostCookies += uint64(len(l.Cookies))
	return nil
}

// Close writes the report once the host has shut the plugin down.
func (t *tracer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	dir := env("OUT")
	if dir == "" || t.reported {
		return nil
	}
	t.reported = true
	t.c.Name, t.c.PID, t.c.UID = env("NAME"), os.Getpid(), os.Getuid()
	b, err := json.Marshal(&t.c)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s-%d.json", t.c.Name, t.c.PID))
	if err := os.WriteFile(tmp, b, 0o666); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, fmt.Sprintf("%s-%d.json", t.c.Name, t.c.PID)))
}

func main() {
	if env("GARBAGE") != "" {
		fmt.Println("hello, I am not a plugin handshake")
	}
	if v, err := strconv.ParseUint(env("PROTO"), 10, 32); err == nil {
		sdk.Handshake.ProtocolVersion = uint(v) // a plugin built for another protocol version
	}
	if f := env("CPUPROFILE"); f != "" { // profile the plugin side of a benchmark
		w, err := os.Create(f)
		if err == nil && pprof.StartCPUProfile(w) == nil {
			defer func() {
				pprof.StopCPUProfile()
				w.Close()
			}()
		}
	}
	t := &tracer{done: map[uint64]bool{}, hang: env("HANG") != "", latency: env("LATENCY") != "", nocheck: env("NOCHECK") != ""}
	t.slow, _ = time.ParseDuration(env("SLOW"))
	t.panicAt, _ = strconv.ParseUint(env("PANIC_AFTER"), 10, 64)
	if env("NO_DECISIONS") != "" {
		serveLegacy(t)
		return
	}
	sdk.Serve(t)
}

// legacyServer is the sdk's server without the Decisions stream, as a
// plugin built before it: the host must fall back to Decide calls.
type legacyServer struct{ *sdk.Server }

func (legacyServer) Decisions(pluginpb.Tracer_DecisionsServer) error {
	return status.Error(codes.Unimplemented, "method Decisions not implemented")
}

type legacyPlugin struct{ sdk.GRPCPlugin }

func (p *legacyPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	pluginpb.RegisterTracerServer(s, legacyServer{sdk.NewServer(p.Impl, broker)})
	return nil
}

func serveLegacy(t *tracer) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: sdk.Handshake,
		Plugins:         plugin.PluginSet{sdk.PluginName: &legacyPlugin{sdk.GRPCPlugin{Impl: t}}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
	if err := t.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "close: %v\n", err)
	}
}
