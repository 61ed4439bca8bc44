package main

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/syscalls"
)

func TestParseConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want config
	}{
		{"out alone: every syscall", "out: /tmp/x\n", config{Out: "/tmp/x"}},
		{"every key, comments, quotes, blank lines",
			"---\n# ftrace plugin\nout: \"/tmp/my dir\"  # the host's --out\n\nsyscalls: [openat, 'read']\ntracepoints:\n  - sched:sched_switch\n  - \"raw_syscalls:sys_enter\"\ncomm: [myapp, \"my worker\"]\npid: [1, 4194304]\n",
			config{Out: "/tmp/my dir", Syscalls: []string{"openat", "read"}, Tracepoints: []string{"sched:sched_switch", "raw_syscalls:sys_enter"},
				Comms: []string{"myapp", "my worker"}, PIDs: []int32{1, 4194304}}},
		{"empty lists and keys without values", "out: /o\nsyscalls: []\ntracepoints:\ncomm: []\npid:\n", config{Out: "/o"}},
		{"syscalls the kernel names otherwise, and new ones", "out: /o\nsyscalls: [fstat, uname, umount2, mseal, file_setattr, uprobe, _sysctl]",
			config{Out: "/o", Syscalls: []string{"fstat", "uname", "umount2", "mseal", "file_setattr", "uprobe", "_sysctl"}}},
		{"a comm of 15 bytes", "out: /o\ncomm: [systemd-journal]", config{Out: "/o", Comms: []string{"systemd-journal"}}},
		{"indented, as a YAML block", "  out: /o\n  pid: [7]\n", config{Out: "/o", PIDs: []int32{7}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseConfig([]byte(c.in))
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if !got.equal(&c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct {
		in    string
		field string // of the only ConfigError
		want  string // in its message
	}{
		// The block and its keys.
		{"", "", "out is required"},
		{"syscalls: [read]", "", "out is required"},
		{"out /x", "", "not a YAML mapping"},
		{"- out: /x", "", "not a YAML mapping"},
		{"out: /x\nout: /y", "", "already defined"},
		{"out: /x\nsyscall: [read]", "syscall", "unknown key (known: out, syscalls, tracepoints, comm, pid)"},
		{"out: /x\n1: a", "1", "keys are names"},
		// out
		{"out:", "out", "want a directory, got nothing"},
		{"out: 7", "out", `want a directory, got "7"`},
		{"out: [a]", "out", "want a directory, got a list"},
		// syscalls
		{"out: /x\nsyscalls: read", "syscalls", `want a list such as [a, b], got "read"`},
		{"out: /x\nsyscalls: {read: 1}", "syscalls", "got a mapping"},
		{"out: /x\nsyscalls: [read, 1]", "syscalls[1]", `want a string, got "1"`},
		{"out: /x\nsyscalls: [read, [write]]", "syscalls[1]", "want a string, got a list"},
		{"out: /x\nsyscalls: [read, '']", "syscalls[1]", "empty"},
		{"out: /x\nsyscalls: [read, read]", "syscalls[1]", `"read" given twice`},
		{"out: /x\nsyscalls: [read, opnat]", "syscalls[1]", `no x86-64 syscall "opnat" (did you mean "openat"?)`},
		{"out: /x\nsyscalls: [frobnicate]", "syscalls[0]", `no x86-64 syscall "frobnicate"`},
		{"out: /x\nsyscalls: [newfstat]", "syscalls[0]", `"newfstat" is the kernel's tracepoint name; the syscall is "fstat"`},
		{"out: /x\nsyscalls: [sys_read]", "syscalls[0]", `(did you mean "read"?)`},
		{"out: /x\nsyscalls: [socketcall]", "syscalls[0]", `no x86-64 syscall "socketcall"`}, // i386 only
		// tracepoints
		{"out: /x\ntracepoints: sched:sched_switch", "tracepoints", "want a list"},
		{"out: /x\ntracepoints: [sched_switch]", "tracepoints[0]", `want a tracepoint as group:name (sched:sched_switch), got "sched_switch"`},
		{"out: /x\ntracepoints: [a:b, ':b']", "tracepoints[1]", `got ":b"`},
		{"out: /x\ntracepoints: ['sched:']", "tracepoints[0]", `got "sched:"`},
		{"out: /x\ntracepoints: ['a:b:c']", "tracepoints[0]", `got "a:b:c"`},
		{"out: /x\ntracepoints: ['sched: sched_switch']", "tracepoints[0]", `got "sched: sched_switch"`},
		{"out: /x\ntracepoints: ['sched/sched_switch:x']", "tracepoints[0]", "want a tracepoint as group:name"},
		{"out: /x\ntracepoints: [a:b, a:b]", "tracepoints[1]", `"a:b" given twice`},
		{"out: /x\ntracepoints: [syscalls:sys_enter_openat]", "tracepoints[0]", "list syscalls under the syscalls key"},
		{"out: /x\ntracepoints: [7]", "tracepoints[0]", "want a string"},
		// comm
		{"out: /x\ncomm: myapp", "comm", `want a list such as [a, b], got "myapp"`},
		{"out: /x\ncomm: [a, 1]", "comm[1]", "want a string"},
		{"out: /x\ncomm: [a, '']", "comm[1]", "empty"},
		{"out: /x\ncomm: [a, a]", "comm[1]", `"a" given twice`},
		{"out: /x\ncomm: [a-very-long-name]", "comm[0]", `"a-very-long-name" is longer than 15 bytes`},
		// pid
		{"out: /x\npid: 1234", "pid", `want a list of process ids such as [1234], got "1234"`},
		{"out: /x\npid: [1, x]", "pid[1]", `want a process id (a positive integer), got "x"`},
		{"out: /x\npid: [0]", "pid[0]", `got "0"`},
		{"out: /x\npid: [-5]", "pid[0]", `got "-5"`},
		{"out: /x\npid: [2147483648]", "pid[0]", `got "2147483648"`},
		{"out: /x\npid: ['12']", "pid[0]", `got "12"`},
		{"out: /x\npid: [1.5]", "pid[0]", `got "1.5"`},
		{"out: /x\npid: [3, 3]", "pid[1]", "3 given twice"},
	} {
		t.Run(c.in, func(t *testing.T) {
			_, err := parseConfig([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("parseConfig(%q) = %v, want an error containing %q", c.in, err, c.want)
			}
			if !errors.Is(err, sdk.ErrInvalid) {
				t.Errorf("parseConfig(%q) = %v, not an sdk.ErrInvalid", c.in, err)
			}
			ces := sdk.ConfigErrors(err)
			if len(ces) != 1 || ces[0].Field != c.field {
				t.Errorf("parseConfig(%q): config errors %v, want one for field %q", c.in, ces, c.field)
			}
		})
	}
}

// Every mistake of a block is reported, each with its field.
func TestParseConfigErrorsJoined(t *testing.T) {
	_, err := parseConfig([]byte("out: 1\nsyscalls: [reed, write, write]\ntracepoints: [x]\ncomm: 3\npid: [0]\nextra: 1\n"))
	var fields []string
	for _, ce := range sdk.ConfigErrors(err) {
		fields = append(fields, ce.Field)
	}
	want := "out syscalls[0] syscalls[2] tracepoints[0] comm pid[0] extra"
	if got := strings.Join(fields, " "); got != want {
		t.Errorf("fields %q, want %q (error: %v)", got, want, err)
	}
}

func TestSyscallTable(t *testing.T) {
	seen := map[string]int{}
	for nr, n := range syscalls.All() {
		seen[n] = nr
	}
	for _, c := range []struct {
		name string
		nr   int
	}{{"read", 0}, {"openat", 257}, {"uprobe", 336}, {"pidfd_send_signal", 424}, {"file_setattr", 469}} {
		if nr, ok := syscalls.Number(c.name); !ok || nr != c.nr {
			t.Errorf("syscalls.Number(%q) = %d, %v; want %d", c.name, nr, ok, c.nr)
		}
	}
	for in, want := range map[string]string{"fstat": "newfstat", "openat": "openat", "syscall_462": "mseal", "syscall_4": "newstat", "syscall_400": "syscall_400", "syscall_x": "syscall_x", "unknown": "unknown"} {
		if got := kernelName(in); got != want {
			t.Errorf("kernelName(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseConfig: no panic, and an error exactly when no config, each a
// ConfigError.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"out: /x", "out: /x\nsyscalls: [read]\ncomm: [a]\npid: [1]\ntracepoints: [a:b]", "pid: [[1]]", "syscalls: {a: b}", "- 1", "&a [*a]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := parseConfig([]byte(in))
		if err != nil {
			if !errors.Is(err, sdk.ErrInvalid) || len(sdk.ConfigErrors(err)) == 0 {
				t.Fatalf("parseConfig(%q) = %v: not ConfigErrors", in, err)
			}
			return
		}
		if c.Out == "" {
			t.Fatalf("parseConfig(%q) = %+v without out", in, c)
		}
	})
}

// The ftrace plugin's block of configs/syscall-audit.yaml, with the out key
// the host adds, is accepted.
func TestSyscallAuditExample(t *testing.T) {
	b, err := os.ReadFile("../../configs/syscall-audit.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Plugins []struct {
			Path   string        `yaml:"path"`
			Config yaml.MapSlice `yaml:"config"`
		} `yaml:"plugins"`
	}
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range d.Plugins {
		if p.Path != "ftrace" {
			continue
		}
		n++
		block, err := yaml.Marshal(append(p.Config, yaml.MapItem{Key: "out", Value: "/tmp/out"}))
		if err != nil {
			t.Fatal(err)
		}
		c, err := parseConfig(block)
		if err != nil {
			t.Errorf("syscall-audit.yaml's block:\n%s: %v", block, err)
		}
		if len(c.Comms)+len(c.PIDs) == 0 || len(c.Syscalls) == 0 {
			t.Errorf("syscall-audit.yaml's block gives %+v", c)
		}
	}
	if n != 1 {
		t.Errorf("%d ftrace plugins in syscall-audit.yaml", n)
	}
}
