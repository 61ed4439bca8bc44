package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/syscalls"
)

// compileOne compiles one program on the fixture tracefs (nil tracefs when
// noTracefs).
func compileOne(t testing.TB, program string, noTracefs bool) *program {
	t.Helper()
	c, err := parseConfig([]byte("out: /o\nprograms:\n  - " + program + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	tfs := fixtureTracefs()
	if noTracefs {
		tfs = nil
	}
	progs, err := compile(&c, tfs)
	if err != nil {
		t.Fatal(err)
	}
	return progs[0]
}

// TestExpressions evaluates keys on events: every variable, converted as
// bpftrace would (the C type of a syscall argument), from the fields of
// every kind of event the host sends.
func TestExpressions(t *testing.T) {
	openat := enter("openat", 257, 0xffffff9c, 0x55eeb89dd2b0, 0x80000, 0o644)
	// The same syscall from the syscalls:sys_enter_openat tracepoint: named
	// fields.
	openatTP := sdk.Event{Kind: sdk.KindSyscallEnter, Name: "openat", PID: 7, TID: 8, CPU: 3, Comm: "cat", Fields: []sdk.Field{
		sdk.IntField("__syscall_nr", 257), sdk.UintField("dfd", 0xffffff9c), sdk.UintField("filename", 0x55eeb89dd2b0),
		sdk.UintField("flags", 0x80000), sdk.UintField("mode", 0x1a4)}}
	fstatTP := sdk.Event{Kind: sdk.KindSyscallEnter, Name: "newfstat", Comm: "cat", Fields: []sdk.Field{
		sdk.IntField("__syscall_nr", 5), sdk.UintField("fd", 0xffffffff00000003), sdk.UintField("statbuf", 0x7ffc0000)}}
	write := enter("write", 1, 1, 0x7ffc0000, 4096)
	sw := sdk.Event{Kind: sdk.KindTracepoint, Name: "sched:sched_switch", Comm: "swapper/0", Fields: []sdk.Field{
		sdk.StringField("prev_comm", "bash"), sdk.IntField("prev_pid", 100), sdk.IntField("prev_prio", 120), sdk.IntField("prev_state", 1),
		sdk.StringField("next_comm", "swapper/0"), sdk.IntField("next_pid", 0), sdk.IntField("next_prio", 120)}}
	arrays := sdk.Event{Kind: sdk.KindTracepoint, Name: "test:arrays", Fields: []sdk.Field{
		sdk.UintField("vals[0]", 1), sdk.BytesField("blob", []byte{0xca, 0xfe}), sdk.UintField("n", 0xffffffff)}}
	sample := sdk.Event{Kind: sdk.KindSample, Name: "cpu-clock", PID: 300, TID: 301, CPU: -1, Comm: "app"}

	for _, c := range []struct {
		name      string
		program   string // with one key
		noTracefs bool
		ev        sdk.Event
		want      string // the key's text
	}{
		{"pid", `{probe: 'syscall:write', by: [pid]}`, false, with(write, "sh", 4242, 4243, 0), "4242"},
		{"tid", `{probe: 'syscall:write', by: [tid]}`, false, with(write, "sh", 4242, 4243, 0), "4243"},
		{"cpu", `{probe: 'profile:hz:99', by: [cpu]}`, false, sample, "-1"},
		{"comm", `{probe: 'syscall:write', by: [comm]}`, false, write, "bash"},
		{"probe of syscall:*", `{probe: 'syscall:*', by: [probe]}`, false, write, "syscall:write"},
		{"probe of an exit", `{probe: 'syscall_exit:*', by: [probe]}`, false, exit("read", 0, 5), "syscall_exit:read"},
		{"probe of profile", `{probe: 'profile:hz:49', by: [probe]}`, false, sample, "profile:hz:49"},
		{"probe of a tracepoint", `{probe: 'tracepoint:sched:sched_switch', by: [probe]}`, false, sw, "tracepoint:sched:sched_switch"},
		{"probe in an expression", `{probe: 'syscall:*', by: ['probe + "!"']}`, false, write, "syscall:write!"},
		{"int argument sign-extended", `{probe: 'syscall:openat', by: [args.dfd]}`, false, openat, "-100"},
		{"int argument", `{probe: 'syscall:openat', by: [args.flags]}`, false, openat, "524288"},
		{"umode_t argument", `{probe: 'syscall:openat', by: [args.mode]}`, false, openat, "420"},
		{"pointer argument", `{probe: 'syscall:openat', by: [args.filename]}`, false, openat, "94483787928240"},
		{"size_t argument", `{probe: 'syscall:write', by: [args.count]}`, false, write, "4096"},
		{"positional register", `{probe: 'syscall:openat', by: ['args[0]']}`, false, openat, "4294967196"},
		{"argN", `{probe: 'syscall:openat', by: [arg3]}`, false, openat, "420"},
		{"positional of syscall:*", `{probe: 'syscall:*', by: ['args[2] + arg2']}`, false, write, "8192"},
		{"named fields of a syscalls tracepoint", `{probe: 'syscall:openat', by: ['string(pid) + "," + string(tid) + "," + string(cpu) + "," + string(args.dfd) + "," + string(args.mode) + "," + string(args[1])']}`, false, openatTP, "7,8,3,-100,420,94483787928240"},
		{"kernel name of a tracepoint event", `{probe: 'syscall:fstat', by: [args.fd]}`, false, fstatTP, "3"},
		{"ret", `{probe: 'syscall_exit:read', by: [ret]}`, false, exit("read", 0, -11), "-11"},
		{"args.ret", `{probe: 'syscall_exit:read', by: [args.ret]}`, false, exit("read", 0, 42), "42"},
		{"bool key", `{probe: 'syscall_exit:read', by: ['ret < 0']}`, false, exit("read", 0, -11), "true"},
		{"uint key", `{probe: 'syscall:write', by: [uint(args.count)]}`, false, write, "4096"},
		{"tracepoint string field", `{probe: 'tracepoint:sched:sched_switch', by: [args.prev_comm]}`, false, sw, "bash"},
		{"tracepoint int field", `{probe: 'tracepoint:sched:sched_switch', by: ['args.prev_pid + args.prev_prio']}`, false, sw, "220"},
		{"tracepoint unsigned field", `{probe: 'tracepoint:test:arrays', by: [args.n]}`, false, arrays, "4294967295"},
		{"tracepoint bytes field", `{probe: 'tracepoint:test:arrays', by: [args.blob]}`, false, arrays, "cafe"},
		{"tracepoint, no tracefs", `{probe: 'tracepoint:sched:sched_switch', by: ['string(args["next_pid"]) + args.next_comm']}`, true, sw, "0swapper/0"},
		{"string functions", `{probe: 'tracepoint:sched:sched_switch', by: ['args.next_comm.startsWith("swapper") && comm.matches("^swap.*/[0-9]+$")']}`, false, sw, "true"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := compileOne(t, c.program, c.noTracefs)
			a := newActivation()
			ev := c.ev
			a.reset(&ev)
			ok, err := p.matches(a)
			if err != nil || !ok {
				t.Fatalf("matches = %v, %v", ok, err)
			}
			key := make([]keyVal, len(p.keys))
			if err := p.key(a, key); err != nil {
				t.Fatalf("key: %v", err)
			}
			if got := keyText(key); got != c.want {
				t.Errorf("key %q, want %q", got, c.want)
			}
		})
	}
}

// TestFilters: probes and filters select events.
func TestFilters(t *testing.T) {
	read := enter("read", 0, 3, 0x7ffc0000, 100)
	for _, c := range []struct {
		program string
		ev      sdk.Event
		want    bool
		err     bool
	}{
		{`{probe: 'syscall:read'}`, read, true, false},
		{`{probe: 'syscall:read'}`, enter("write", 1, 3), false, false},
		{`{probe: 'syscall:read'}`, exit("read", 0, 5), false, false},
		{`{probe: 'syscall_exit:read'}`, exit("read", 0, 5), true, false},
		{`{probe: 'syscall:*'}`, enter("write", 1, 3), true, false},
		{`{probe: 'syscall:fstat'}`, sdk.Event{Kind: sdk.KindSyscallEnter, Name: "newfstat"}, true, false},
		{`{probe: 'profile:hz:99'}`, read, false, false},
		{`{probe: 'tracepoint:sched:sched_switch'}`, sdk.Event{Kind: sdk.KindTracepoint, Name: "sched:sched_switch"}, true, false},
		{`{probe: 'tracepoint:sched:sched_switch'}`, sdk.Event{Kind: sdk.KindTracepoint, Name: "sched:sched_wakeup"}, false, false},
		{`{probe: 'syscall:read', filter: 'args.fd == 3 && args.count >= 100'}`, read, true, false},
		{`{probe: 'syscall:read', filter: 'args.fd == 3 && args.count > 100'}`, read, false, false},
		{`{probe: 'syscall:read', filter: 'comm in ["bash", "sh"]'}`, read, true, false},
		{`{probe: 'syscall:read', filter: 'args.map(x, args.map(y, args.map(z, x+y+z))).exists(l, l.exists(m, m.exists(s, s == 9)))'}`, read, true, false},       // 3+3+3, 6³ steps
		{`{probe: 'syscall:read', filter: 'args.count / (args.fd - 3) > 0'}`, read, false, true},                                                                 // division by zero
		{`{probe: 'tracepoint:sched:sched_switch', filter: 'args.prev_pid == 1'}`, sdk.Event{Kind: sdk.KindTracepoint, Name: "sched:sched_switch"}, false, true}, // no such field in the event
	} {
		t.Run(c.program+" "+c.ev.Name, func(t *testing.T) {
			p := compileOne(t, c.program, false)
			a := newActivation()
			a.reset(&c.ev)
			got, err := p.matches(a)
			if got != c.want || (err != nil) != c.err {
				t.Errorf("matches = %v, %v; want %v, error %v", got, err, c.want, c.err)
			}
		})
	}
}

func TestArgConv(t *testing.T) {
	for _, c := range []struct {
		ctype string
		reg   uint64
		want  int64
	}{
		{"int", 0xffffff9c, -100},
		{"const int", 0xffffffffffffff9c, -100},
		{"pid_t", 0x1_0000_0005, 5},
		{"const clockid_t", 1, 1},
		{"const enum landlock_rule_type", 0xffffffff, -1},
		{"unsigned int", 0xffffffff_ffffffff, 0xffffffff},
		{"u32", 0x1_0000_0007, 7},
		{"uid_t", 0xffffffff, 0xffffffff},
		{"umode_t", 0x1_81a4, 0x81a4},
		{"size_t", 4096, 4096},
		{"long", 0xffffffff_fffffff0, -16},
		{"const char *", 0x7ffc_0000_1000, 0x7ffc_0000_1000},
		{"const char *const *", 0xffffffff_ffffffff, -1},
		{"unsigned long", 1 << 63, -1 << 63},
	} {
		if got := convOf(c.ctype).apply(c.reg); got != c.want {
			t.Errorf("%s of %#x = %d, want %d", c.ctype, c.reg, got, c.want)
		}
	}
}

// TestSyscallTable: the generated table has the arguments of the syscalls
// bpftrace users reach for, by their kernel names.
func TestSyscallTable(t *testing.T) {
	for name, want := range map[string]string{
		"openat": "dfd, filename, flags, mode",
		"read":   "fd, buf, count",
		"write":  "fd, buf, count",
		"fstat":  "fd, statbuf", // sys_enter_newfstat
		"getpid": "none",
		"mmap":   "addr, len, prot, flags, fd, off",
		"execve": "filename, argv, envp",
	} {
		args, ok := argsOf(name)
		if got := argNames(args); !ok || got != want {
			t.Errorf("arguments of %s: %q (%v), want %q", name, got, ok, want)
		}
	}
	for name, args := range syscallArgs {
		if _, ok := syscalls.Number(name); !ok || len(args) > 6 {
			t.Errorf("table entry %s: %d arguments (not a syscall, or more than 6)", name, len(args))
		}
	}
}

func TestParseTracepointFormat(t *testing.T) {
	b := []byte(`name: x
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:char comm[16];	offset:8;	size:16;	signed:0;
	field:__data_loc char[] filename;	offset:24;	size:4;	signed:0;
	field:__data_loc u8[] raw;	offset:28;	size:4;	signed:0;
	field:unsigned long args[6];	offset:32;	size:48;	signed:0;
	field:const char * name;	offset:80;	size:8;	signed:0;
	field:pid_t pid;	offset:88;	size:4;	signed:1;

print fmt: "..."
`)
	got, ok := parseTracepointFormat(b)
	var s []string
	for _, f := range got {
		s = append(s, f.Name+":"+[...]string{"skip", "int", "string", "bytes"}[f.Type])
	}
	want := "comm:string filename:string raw:bytes args:skip name:int pid:int"
	if !ok || strings.Join(s, " ") != want {
		t.Errorf("fields %q (%v), want %q", strings.Join(s, " "), ok, want)
	}
	if _, ok := parseTracepointFormat([]byte("no format here")); ok {
		t.Error("a file without fields parsed")
	}
}

// TestProfileSubsampling: a thread sampled steadily at 999 Hz for 10 s
// gives a profile:hz:99 program 990 samples (±1), profile:hz:999 every
// sample, and profile:hz:5000 every sample too (the source is slower); a
// sample without a period is kept.
func TestProfileSubsampling(t *testing.T) {
	const rate, seconds = 999, 10
	period := uint64(time.Second) / rate
	for _, c := range []struct {
		hz       uint32
		min, max int
	}{
		{99, 99*seconds - 1, 99*seconds + 1},
		{999, rate * seconds, rate * seconds},
		{5000, rate * seconds, rate * seconds},
		{1, seconds - 1, seconds + 1},
	} {
		p, msg := parseProbe(fmt.Sprintf("profile:hz:%d", c.hz))
		if msg != "" {
			t.Fatal(msg)
		}
		kept := 0
		start := uint64(1_700_000_000_123_456_789) // an odd wall-clock start
		for k := range rate * seconds {
			ev := sdk.Event{Kind: sdk.KindSample, Name: "cpu-clock", Time: start + uint64(k)*period, Period: period}
			if p.match(&ev) {
				kept++
			}
		}
		if kept < c.min || kept > c.max {
			t.Errorf("profile:hz:%d on a 999 Hz source for %d s: kept %d samples, want %d to %d", c.hz, seconds, kept, c.min, c.max)
		}
	}
	p, _ := parseProbe("profile:hz:99")
	if !p.match(&sdk.Event{Kind: sdk.KindSample, Time: 12345}) {
		t.Error("a sample without a period: not kept")
	}
}
