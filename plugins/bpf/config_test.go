package main

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/unwindd/unwindd/sdk"
)

func TestParseConfig(t *testing.T) {
	prog := func(probe, filter, agg string, by ...string) programConfig {
		return programConfig{Probe: probe, Filter: filter, Aggregate: agg, By: by}
	}
	for _, c := range []struct {
		name string
		in   string
		want config
	}{
		{"defaults", "out: /o\nprograms: [{probe: 'syscall:read'}]",
			config{Out: "/o", Interval: 10 * time.Second, MaxPending: 65536, MaxKeys: 65536, Programs: []programConfig{prog("syscall:read", "", "count")}}},
		{"every key, block style, comments", `
# the bpf plugin
out: "/tmp/my dir"
interval: 1.5s
max_pending: 10
max_keys: 20
programs:
  - name: '@opens'
    probe: syscall:openat
    filter: comm == "bash"       # a plain YAML scalar
    aggregate: count
    by: [comm, ustack]
  - probe: syscall:read
    aggregate: hist(args.count)
    by:
      - pid
      - args.fd
  - probe: profile:hz:99
    by: []
`, config{Out: "/tmp/my dir", Interval: 1500 * time.Millisecond, MaxPending: 10, MaxKeys: 20, Programs: []programConfig{
			{Name: "@opens", Probe: "syscall:openat", Filter: `comm == "bash"`, Aggregate: "count", By: []string{"comm", "ustack"}},
			prog("syscall:read", "", "hist(args.count)", "pid", "args.fd"),
			prog("profile:hz:99", "", "count"),
		}}},
		{"interval 0: only at exit", "out: /o\ninterval: 0\nprograms: [{probe: 'syscall:read'}]",
			config{Out: "/o", MaxPending: 65536, MaxKeys: 65536, Programs: []programConfig{prog("syscall:read", "", "count")}}},
		{"interval 0s", "out: /o\ninterval: 0s\nprograms: [{probe: 'syscall:read', by: }]",
			config{Out: "/o", MaxPending: 65536, MaxKeys: 65536, Programs: []programConfig{prog("syscall:read", "", "count")}}},
		{"spaces around values are trimmed", "out: /o\nprograms: [{probe: ' syscall:read ', aggregate: ' sum(args.count) ', by: [' comm ']}]",
			config{Out: "/o", Interval: 10 * time.Second, MaxPending: 65536, MaxKeys: 65536, Programs: []programConfig{prog("syscall:read", "", "sum(args.count)", "comm")}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseConfig([]byte(c.in))
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			for i := range got.Programs { // nil and empty by are the same here
				if len(got.Programs[i].By) == 0 {
					got.Programs[i].By = nil
				}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestParseConfigErrors: each mistake is an sdk.ConfigError for its field.
func TestParseConfigErrors(t *testing.T) {
	const progs = "\nprograms: [{probe: 'syscall:read'}]"
	for _, c := range []struct {
		in    string
		field string // of the first ConfigError
		want  string // in its message
	}{
		{"programs: [{probe: 'syscall:read'}]", "", "out is required"},
		{"out: /o", "", "programs is required"},
		{"out:" + progs, "out", "want a directory, got nothing"},
		{"out: /o\ninterval: 10" + progs, "interval", `want 0 (print only at exit) or a duration of at least 100ms such as 10s, got "10"`},
		{"out: /o\ninterval: 10ms" + progs, "interval", `got "10ms"`},
		{"out: /o\ninterval: -1s" + progs, "interval", `got "-1s"`},
		{"out: /o\nmax_pending: 0" + progs, "max_pending", `want a positive integer (at most 16777216), got "0"`},
		{"out: /o\nmax_keys: many" + progs, "max_keys", `got "many"`},
		{"out: /o\nfrequency: 99" + progs, "frequency", `unknown key "frequency" (known: out, interval, max_pending, max_keys, programs)`},
		{"out: /o\nhz.max: 99" + progs, "", `unknown key "hz.max"`},
		{"out: /o\n1: 99" + progs, "1", `"1": keys are names`},
		{"out: /o\nprograms: []", "programs", "want a list of programs (each a mapping with a probe), got a list"},
		{"out: /o\nprograms: {probe: x}", "programs", "got a mapping"},
		{"out: /o\nprograms: [syscall:read]", "programs[0]", `want a mapping with a probe (keys: name, probe, filter, aggregate, by), got "syscall:read"`},
		{"out: /o\nprograms: [{aggregate: count}]", "programs[0]", "probe is required"},
		{"out: /o\nprograms: [{probe: 'syscall:read'}, {probe: 'syscall:write', agregate: count}]", "programs[1].agregate", `unknown key "agregate" (known: name, probe, filter, aggregate, by)`},
		{"out: /o\nprograms: [{probe: 'syscall:read', 'by[0]': x}]", "programs[0]", `unknown key "by[0]"`},
		{"out: /o\nprograms: [{probe: 'syscall:read', filter: ''}]", "programs[0].filter", `want a CEL expression such as 'comm == "bash"', got ""`},
		{"out: /o\nprograms: [{probe: 'syscall:read', filter: 1}]", "programs[0].filter", `got "1"`},
		{"out: /o\nprograms: [{probe: 'syscall:read', by: comm}]", "programs[0].by", `want a list of keys such as [comm, ustack], got "comm"`},
		{"out: /o\nprograms: [{probe: 'syscall:read', by: [comm, 7, comm]}]", "programs[0].by[1]", `want a key (pid, tid, comm, cpu, probe, ustack or an expression such as args.fd), got "7"`},
		{"out: /o\nprograms: [{probe: 'syscall:read', by: [comm, ustack, comm]}]", "programs[0].by[2]", `"comm" given twice`},
		{"out: /o\nprograms: [{probe: 'syscall:read', probe: 'syscall:write'}]", "", `mapping key "probe" already defined at [2:13]`},
		{"out /o", "", "not a YAML mapping"},
		{"- a\n- b", "", "not a YAML mapping"},
	} {
		t.Run(c.in, func(t *testing.T) {
			_, err := parseConfig([]byte(c.in))
			checkConfigError(t, err, c.field, c.want)
		})
	}
}

// checkConfigError: err is an sdk.ErrInvalid whose first ConfigError is
// for field and says want.
func checkConfigError(t *testing.T, err error, field, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s: %s", field, want)
	}
	if !errors.Is(err, sdk.ErrInvalid) {
		t.Errorf("%v is not an sdk.ErrInvalid", err)
	}
	ces := sdk.ConfigErrors(err)
	if len(ces) == 0 {
		t.Fatalf("%v carries no sdk.ConfigError", err)
	}
	if ces[0].Field != field || !strings.Contains(ces[0].Msg, want) {
		t.Errorf("first config error %q: %q\nwant                 %q: ...%q...", ces[0].Field, ces[0].Msg, field, want)
	}
}

// compileBlock parses and compiles a config block with the fixture
// tracefs.
func compileBlock(block string) ([]*program, error) {
	c, err := parseConfig([]byte("out: /o\n" + block))
	if err != nil {
		return nil, err
	}
	return compile(&c, fixtureTracefs())
}

// TestCompileErrors: probes, expressions that do not parse or type-check,
// unknown arguments, bad aggregations and keys are errors at their field,
// with the column for an expression.
func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		name, program string // one item of programs, flow style
		field, want   string
	}{
		// Probes.
		{"no probe type", `{probe: 'kprobe:vfs_read'}`, "programs[0].probe", `no probe type "kprobe": the host delivers syscalls, tracepoints and cpu-clock samples`},
		{"no colon", `{probe: openat}`, "programs[0].probe", `want a probe (syscall:NAME, syscall:*, syscall_exit:NAME, syscall_exit:*, tracepoint:GROUP:NAME or profile:hz:N), got "openat"`},
		{"misspelt syscall", `{probe: 'syscall:opnat'}`, "programs[0].probe", `no x86-64 syscall "opnat" (did you mean "openat"?)`},
		{"kernel name", `{probe: 'syscall:newfstat'}`, "programs[0].probe", `"newfstat" is the kernel's tracepoint name; the syscall is "fstat"`},
		{"tracepoint name", `{probe: 'syscall:sys_enter_read'}`, "programs[0].probe", `(did you mean "read"?)`},
		{"syscalls tracepoint", `{probe: 'tracepoint:syscalls:sys_enter_newfstat'}`, "programs[0].probe", "write syscall:fstat"},
		{"syscalls exit tracepoint", `{probe: 'tracepoint:syscalls:sys_exit_read'}`, "programs[0].probe", "write syscall_exit:read"},
		{"raw_syscalls", `{probe: 'tracepoint:raw_syscalls:sys_enter'}`, "programs[0].probe", "write syscall:* or syscall_exit:*"},
		{"tracepoint without group", `{probe: 'tracepoint:sched_switch'}`, "programs[0].probe", "want a tracepoint as tracepoint:GROUP:NAME"},
		{"no such tracepoint", `{probe: 'tracepoint:sched:sched_swtich'}`, "programs[0].probe", "no tracepoint sched:sched_swtich on this machine"},
		{"profile unit", `{probe: 'profile:ms:10'}`, "programs[0].probe", "want profile:hz:N with N from 1 to 100000"},
		{"profile rate", `{probe: 'profile:hz:0'}`, "programs[0].probe", `got "profile:hz:0"`},

		// Filters.
		{"type error", `{probe: 'syscall:openat', filter: 'comm == 1'}`, "programs[0].filter", "column 6: found no matching overload for '_==_' applied to '(string, int)'"},
		{"unknown variable", `{probe: 'syscall:openat', filter: 'uid == 0'}`, "programs[0].filter", "column 1: undeclared reference to 'uid' (did you mean 'pid' or 'tid'?) (variables: pid, tid, cpu, comm, probe, and the probe's args)"},
		{"not bool", `{probe: 'syscall:openat', filter: 'pid + 1'}`, "programs[0].filter", `want a bool expression (such as comm == "bash"), got int`},
		{"syntax", `{probe: 'syscall:openat', filter: 'pid =='}`, "programs[0].filter", "column 7: Syntax error: mismatched input '<EOF>'"},
		{"unsigned literal", `{probe: 'syscall:write', filter: 'args.fd == 1u'}`, "programs[0].filter", "found no matching overload for '_==_' applied to '(int, uint)'"},
		{"unknown argument", `{probe: 'syscall:openat', filter: 'args.fd == 3'}`, "programs[0].filter", `column 5: syscall openat has no argument "fd" (its arguments: dfd, filename, flags, mode)`},
		{"named argument of syscall:*", `{probe: 'syscall:*', filter: 'args.fd == 3'}`, "programs[0].filter", "args.fd: syscall:* has no named arguments, only args[0]…args[5] (also arg0…arg5)"},
		{"no tracepoint, no names", `{probe: 'syscall:init_module', filter: 'args.len > 0'}`, "programs[0].filter", "the argument names of syscall init_module are not known (it has no tracepoint)"},
		{"ret on entry", `{probe: 'syscall:read', filter: 'ret < 0'}`, "programs[0].filter", "column 1: undeclared reference to 'ret' (ret is the return value of a syscall_exit: probe)"},
		{"args on exit", `{probe: 'syscall_exit:read', filter: 'args.count > 0'}`, "programs[0].filter", "args.count: a syscall exit has only ret (also args.ret)"},
		{"positional on exit", `{probe: 'syscall_exit:read', filter: 'arg0 > 0'}`, "programs[0].filter", "(a syscall exit has only ret, also as args.ret)"},
		{"args of profile", `{probe: 'profile:hz:99', filter: 'args.x == 1'}`, "programs[0].filter", "probe profile:hz:99 has no arguments"},
		{"positional of profile", `{probe: 'profile:hz:99', filter: 'arg0 == 1'}`, "programs[0].filter", "(probe profile:hz:99 has no arguments)"},
		{"tracepoint field", `{probe: 'tracepoint:sched:sched_switch', filter: 'args.prev_cmd == "x"'}`, "programs[0].filter", `tracepoint sched:sched_switch has no field "prev_cmd" (its fields: next_comm, next_pid, next_prio, prev_comm, prev_pid, prev_prio, prev_state)`},
		{"tracepoint field type", `{probe: 'tracepoint:sched:sched_switch', filter: 'args.prev_comm == 1'}`, "programs[0].filter", "applied to '(string, int)'"},
		{"tracepoint array", `{probe: 'tracepoint:test:arrays', filter: 'args.vals == 1'}`, "programs[0].filter", `field "vals" of tracepoint test:arrays is an array of numbers, which programs cannot read`},

		{"too costly", `{probe: 'syscall:write', filter: '[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20].map(a, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20].map(b, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20].map(c, a+b+c))).size() > args.size()'}`, "programs[0].filter", "too costly to run on every event: CEL estimates its comprehensions at up to 149885 steps, more than 100000"},

		// Aggregations.
		{"unknown aggregation", `{probe: 'syscall:read', aggregate: 'stats(args.count)'}`, "programs[0].aggregate", `no aggregation "stats": want count, sum(EXPR), min(EXPR), max(EXPR), avg(EXPR), hist(EXPR) or lhist(EXPR, MIN, MAX, STEP)`},
		{"count with argument", `{probe: 'syscall:read', aggregate: 'count(pid)'}`, "programs[0].aggregate", "count takes no argument"},
		{"sum without argument", `{probe: 'syscall:read', aggregate: 'sum'}`, "programs[0].aggregate", "sum needs an integer expression: sum(args.count)"},
		{"unclosed", `{probe: 'syscall:read', aggregate: 'hist(args.count'}`, "programs[0].aggregate", "(no closing parenthesis)"},
		{"value not int", `{probe: 'syscall:read', aggregate: 'sum(comm)'}`, "programs[0].aggregate", "sum wants an int expression, got string"},
		{"value type error", `{probe: 'syscall:read', aggregate: 'hist(args.count + "x")'}`, "programs[0].aggregate", "column 12: found no matching overload for '_+_' applied to '(int, string)'"},
		{"lhist arguments", `{probe: 'syscall:read', aggregate: 'lhist(args.count, 0, 100)'}`, "programs[0].aggregate", "want lhist(EXPR, MIN, MAX, STEP)"},
		{"lhist step", `{probe: 'syscall:read', aggregate: 'lhist(args.count, 0, 100, 0)'}`, "programs[0].aggregate", "lhist's STEP must be at least 1, got 0"},
		{"lhist max", `{probe: 'syscall:read', aggregate: 'lhist(args.count, 10, 10, 1)'}`, "programs[0].aggregate", "lhist's MAX (10) must be more than its MIN (10)"},
		{"lhist multiple", `{probe: 'syscall:read', aggregate: 'lhist(args.count, 0, 100, 30)'}`, "programs[0].aggregate", "lhist's MAX - MIN (100) must be a multiple of STEP (30)"},
		{"lhist buckets", `{probe: 'syscall:read', aggregate: 'lhist(args.count, 0, 100000, 1)'}`, "programs[0].aggregate", "has more than 1000 buckets"},
		{"lhist bound", `{probe: 'syscall:read', aggregate: 'lhist(args.count, 0, x, 1)'}`, "programs[0].aggregate", `lhist's MAX must be an integer, got "x"`},

		// Keys and names.
		{"key type", `{probe: 'syscall:read', by: [comm, '[args.fd]']}`, "programs[0].by[1]", "a key must be an int, uint, bool, string or bytes expression"},
		{"key error", `{probe: 'syscall:read', by: [args.fdd]}`, "programs[0].by[0]", `syscall read has no argument "fdd" (its arguments: fd, buf, count)`},
		{"bad name", `{name: '@1st', probe: 'syscall:read'}`, "programs[0].name", `want a map name: @ and a letter or _, then letters, digits or _ (@opens), got "@1st"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := compileBlock("programs:\n  - " + c.program + "\n")
			checkConfigError(t, err, c.field, c.want)
		})
	}
}

// TestCompileErrorsAll: every program's mistakes are reported, each at its
// field.
func TestCompileErrorsAll(t *testing.T) {
	_, err := compileBlock(`programs:
  - {probe: 'syscall:read', filter: 'comm == 1', aggregate: 'sum(comm)'}
  - {name: reads, probe: 'syscall:write'}
  - {name: '@reads', probe: 'syscall:opnat'}
  - {name: '@reads', probe: 'syscall:close', by: [args.fdd]}
`)
	var got []string
	for _, ce := range sdk.ConfigErrors(err) {
		got = append(got, ce.Field)
	}
	want := []string{"programs[0].filter", "programs[0].aggregate", "programs[2].probe", "programs[3].by[0]", "programs[2].name", "programs[3].name"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config errors for %v, want %v\n%v", got, want, err)
	}
}

// TestMapNames: a program's map is named by its name key, or from its
// probe, made unique with its index.
func TestMapNames(t *testing.T) {
	progs, err := compileBlock(`programs:
  - {probe: 'syscall:openat'}
  - {probe: 'syscall:openat'}
  - {probe: 'syscall_exit:openat'}
  - {probe: 'syscall:*'}
  - {probe: 'tracepoint:sched:sched_switch'}
  - {probe: 'profile:hz:99'}
  - {name: opens, probe: 'syscall:open'}
  - {name: '@', probe: 'syscall:read'}
  - {name: '@profile', probe: 'syscall:write'}
  - {probe: 'profile:hz:49'}
`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range progs {
		got = append(got, p.name)
	}
	want := []string{"@openat", "@openat_1", "@openat_exit", "@syscalls", "@sched_switch", "@profile_5", "@opens", "@", "@profile", "@profile_9"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("names %q\nwant  %q", got, want)
	}
}

// bpfBlock returns the config block of configs/bpf.yaml's bpf plugin.
func bpfBlock(t testing.TB) []byte {
	t.Helper()
	src, err := os.ReadFile("../../configs/bpf.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var deploy struct {
		Plugins []struct {
			Name   string         `yaml:"name"`
			Config yaml.MapSlice  `yaml:"config"`
			Rest   map[string]any `yaml:",inline"`
		} `yaml:"plugins"`
	}
	if err := yaml.UnmarshalWithOptions(src, &deploy, yaml.UseOrderedMap()); err != nil {
		t.Fatal(err)
	}
	for _, p := range deploy.Plugins {
		if p.Name == "bpf" {
			b, err := yaml.Marshal(p.Config)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatal("configs/bpf.yaml has no plugin bpf")
	return nil
}

// TestExampleDeployment: the block of configs/bpf.yaml compiles, into the
// subscriptions and decisions its comments promise.
func TestExampleDeployment(t *testing.T) {
	tr, _, d := describe(t, string(bpfBlock(t)))
	defer tr.Close()
	var subs []string
	for _, s := range d.Subscriptions {
		subs = append(subs, s.String())
	}
	if got, want := strings.Join(subs, " "), "syscalls:openat syscalls:read (events only) cpu-clock@99Hz (events only)"; got != want || d.Mode != sdk.ModeDecide || d.Name != "bpf" {
		t.Errorf("description %+v: subscriptions %q, want %q in mode decide", d, got, want)
	}
	progs := *tr.progs.Load()
	if len(progs) != 3 || progs[0].ustack != 1 || progs[1].ustack != -1 || progs[2].ustack != -1 || tr.cfg.Interval != 10*time.Second {
		t.Errorf("programs %+v, interval %v", progs, tr.cfg.Interval)
	}
}
