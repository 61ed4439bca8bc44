package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/unwindd/unwindd/sdk"
)

// fieldPath is what a ConfigError's Field looks like: keys joined by ".",
// list items as [i].
var fieldPath = regexp.MustCompile(`^[^.\[\]]+(\.[^.\[\]]+|\[\d+\])*$`)

// FuzzConfig feeds config blocks to the parser and the compiler: no input
// panics; an error is an sdk.ErrInvalid made of ConfigErrors, each with a
// message and a field that is "" or a path starting at a key of the block
// (a programs[i] with i an item of the list); a config that compiles has a
// program per item, uniquely named, a valid description, and its programs
// run on events of every kind without panicking.
func FuzzConfig(f *testing.F) {
	f.Add(bpfBlock(f))
	f.Add([]byte(scenarioBlock))
	for _, s := range []string{
		"interval: 0\nmax_pending: 1\nmax_keys: 1\nprograms: [{probe: 'syscall:*', filter: 'arg0 > 3', by: [probe, 'args[1] % 7']}]",
		"programs: [{probe: 'syscall_exit:read', filter: 'ret < 0', aggregate: 'lhist(ret, -100, 100, 10)', by: [comm, ustack]}]",
		"programs: [{probe: 'tracepoint:sched:sched_switch', filter: 'args.prev_comm != args.next_comm', aggregate: 'max(args.prev_prio)', by: [args.next_comm]}]",
		"programs: [{probe: 'tracepoint:test:arrays', aggregate: 'avg(args.n)', by: [args.blob]}]",
		"programs: [{probe: 'profile:hz:99', by: [pid, tid, cpu]}]",
		"programs: [{name: x, probe: 'syscall:openat', filter: 'args.dfd == -100 && args.flags == 0x100', aggregate: 'min(args.mode)'}]",
		"programs: [{probe: 'syscall:write', filter: 'comm == 1', aggregate: 'hist(args.count', by: [ustack, ustack]}]",
		"programs: [{probe: 'kprobe:x'}, {probe: 'syscall:opnat'}, {name: '1', probe: 'profile:hz:0'}]",
		"out: [x]\ninterval: -1\nprograms: {a: b}",
		"programs:\n  - probe: syscall:read\n    by:\n      - args.fd\n      - 'args.count > 10'\n",
		"programs: [{probe: 'syscall:read', filter: '[1,2].map(a, [3].map(b, a*b)).size() == 2'}]",
		"{",
		"- a",
		"programs: [{probe: 'syscall:read', aggregate: 'lhist(args.count, -9223372036854775808, 9223372036854775807, 1)'}]",
	} {
		f.Add([]byte(s))
	}
	events := []sdk.Event{
		enter("read", 0, 3, 0x7ffc0000, 100),
		enter("openat", 257, 0xffffff9c, 0x55eeb89dd2b0, 0x100, 0o644),
		exit("read", 0, -11),
		{Kind: sdk.KindSample, Name: "cpu-clock", PID: 1, TID: 2, CPU: 3, Comm: "x"},
		{Kind: sdk.KindTracepoint, Name: "sched:sched_switch", Fields: []sdk.Field{sdk.StringField("prev_comm", "a"), sdk.IntField("prev_prio", 120)}},
		{Kind: sdk.KindTracepoint, Name: "test:arrays", Fields: []sdk.Field{sdk.BytesField("blob", []byte{1}), sdk.UintField("n", 7)}},
	}
	tracefs := fixtureTracefs()
	f.Fuzz(func(t *testing.T, block []byte) {
		in := append([]byte("out: /o\n"), block...)
		c, err := parseConfig(in)
		var progs []*program
		if err == nil {
			progs, err = compile(&c, tracefs)
		}
		if err != nil {
			checkFuzzError(t, in, err)
			return
		}
		if len(progs) == 0 || len(progs) != len(c.Programs) {
			t.Fatalf("%d programs compiled of %d", len(progs), len(c.Programs))
		}
		names := map[string]bool{}
		for _, p := range progs {
			if !mapNameRE.MatchString(p.name) || names[p.name] {
				t.Fatalf("map name %q (names so far %v)", p.name, names)
			}
			names[p.name] = true
		}
		d := sdk.Description{Name: "bpf", Subscriptions: subscriptions(progs), Mode: sdk.ModeDecide}
		if err := d.CheckValid(); err != nil {
			t.Fatalf("description: %v", err)
		}
		a := newActivation()
		for i := range events {
			ev := events[i]
			a.reset(&ev)
			for _, p := range progs {
				if ok, err := p.matches(a); !ok || err != nil {
					continue
				}
				p.value(a)
				p.key(a, make([]keyVal, len(p.keys)))
			}
		}
	})
}

// checkFuzzError checks the error of input in.
func checkFuzzError(t *testing.T, in []byte, err error) {
	t.Helper()
	if !errors.Is(err, sdk.ErrInvalid) {
		t.Fatalf("error %v is not an sdk.ErrInvalid", err)
	}
	ces := sdk.ConfigErrors(err)
	if len(ces) == 0 {
		t.Fatalf("error %v carries no ConfigError", err)
	}
	var m yaml.MapSlice
	yerr := yaml.UnmarshalWithOptions(in, &m, yaml.UseOrderedMap())
	programs := -1
	var keys []string
	for _, it := range m {
		k := fmt.Sprint(it.Key)
		keys = append(keys, k)
		if l, ok := it.Value.([]any); ok && k == "programs" {
			programs = len(l)
		}
	}
	for _, ce := range ces {
		if ce.Msg == "" {
			t.Errorf("config error for %q has no message", ce.Field)
		}
		if ce.Field == "" {
			continue
		}
		if yerr != nil {
			t.Errorf("config error for field %q of input that is not YAML (%v)", ce.Field, yerr)
			continue
		}
		ok := false
		for _, k := range keys {
			if rest, found := strings.CutPrefix(ce.Field, k); found && (rest == "" || rest[0] == '.' || rest[0] == '[') {
				ok = true
			}
		}
		if !ok {
			t.Errorf("config error for field %q, not under a key of the block %q", ce.Field, keys)
		}
		var i int
		if n, _ := fmt.Sscanf(ce.Field, "programs[%d]", &i); n == 1 && (i < 0 || i >= programs) {
			t.Errorf("config error for %q: the block has %d programs", ce.Field, programs)
		}
		if !fieldPath.MatchString(ce.Field) {
			t.Errorf("config error for %q: not a field path", ce.Field)
		}
	}
}
