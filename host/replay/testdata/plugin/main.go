// Command plugin is the test plugin of package replay, built on package sdk
// alone: in mode always it takes cpu-clock samples and every syscall, joins
// each event to its stack by cookie, and at shutdown writes one JSON object
// per event to OUT/events.jsonl (its config is "out: OUT").
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/unwindd/unwindd/sdk"
)

// Record is one event with its stack, as the test decodes it.
type Record struct {
	Kind     string
	Name     string
	Time     uint64
	PID, TID int32
	Comm     string
	Cookie   uint64
	HasStack bool
	Funcs    []string // frame functions, leaf first ("" unknown)
	Addrs    []uint64
	Types    []string
	Paths    []string
	Offsets  []uint64 // file offset of each address in its mapping (0: unmapped)
	End      string
	Fields   map[string]string
}

type tracer struct {
	mu      sync.Mutex
	out     string
	pending map[uint64][]Record
	done    []Record
	stacks  map[uint64]bool
	dups    int
}

func (t *tracer) Describe(ctx context.Context, info sdk.DescribeInfo) (sdk.Description, error) {
	for _, line := range strings.Split(string(info.Config), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "out" {
			t.out = strings.TrimSpace(v)
		}
	}
	if t.out == "" {
		return sdk.Description{}, fmt.Errorf("config: out: missing")
	}
	return sdk.Description{
		Name: "replaytest", Version: "0.0.1", Mode: sdk.ModeAlways,
		Subscriptions: []sdk.Subscription{sdk.CPUClock(999), sdk.Syscalls()},
	}, nil
}

func (t *tracer) Events(_ context.Context, evs []sdk.Event) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range evs {
		r := Record{Kind: e.Kind.String(), Name: e.Name, Time: e.Time, PID: e.PID, TID: e.TID, Comm: e.Comm, Cookie: e.Cookie}
		for _, f := range e.Fields {
			if r.Fields == nil {
				r.Fields = map[string]string{}
			}
			r.Fields[f.Name] = fmt.Sprint(f.Value())
		}
		if e.Cookie == 0 {
			t.done = append(t.done, r)
			continue
		}
		t.pending[e.Cookie] = append(t.pending[e.Cookie], r)
	}
	return nil
}

func (t *tracer) Stack(_ context.Context, s sdk.Stack) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stacks[s.Cookie] {
		t.dups++
	}
	t.stacks[s.Cookie] = true
	for _, r := range t.pending[s.Cookie] {
		r.HasStack, r.End = true, s.End.String()
		for _, f := range s.Frames {
			r.Funcs = append(r.Funcs, f.Function)
			r.Addrs = append(r.Addrs, f.Addr)
			r.Types = append(r.Types, f.Type.String())
			p, off := "", uint64(0)
			if f.Mapping != nil {
				p, off = f.Mapping.Path, f.Addr-f.Mapping.Start+f.Mapping.Offset
			}
			r.Paths = append(r.Paths, p)
			r.Offsets = append(r.Offsets, off)
		}
		t.done = append(t.done, r)
	}
	delete(t.pending, s.Cookie)
	return nil
}

func (t *tracer) Lost(context.Context, sdk.Lost) error { return nil }

func (t *tracer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, rs := range t.pending { // events whose stack never came
		t.done = append(t.done, rs...)
	}
	f, err := os.Create(filepath.Join(t.out, "events.jsonl"))
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, r := range t.done {
		if err := enc.Encode(r); err != nil {
			f.Close()
			return err
		}
	}
	if t.dups > 0 {
		fmt.Fprintf(os.Stderr, "replaytest: %d duplicate stacks\n", t.dups)
	}
	return f.Close()
}

func main() {
	sdk.Serve(&tracer{pending: map[uint64][]Record{}, stacks: map[uint64]bool{}})
}
