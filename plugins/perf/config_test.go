package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want config
	}{
		{"defaults", "out: /tmp/x\n", config{Out: "/tmp/x", Hz: 999, MaxPending: 65536, MaxWait: 10 * time.Second}},
		{"every key, comments, quotes, blank lines",
			"---\n# perf plugin\nout: \"/tmp/my dir\"  # the host's --out\n\nhz: 99\nmax_pending: 10\nmax_wait: '1.5s'\n",
			config{Out: "/tmp/my dir", Hz: 99, MaxPending: 10, MaxWait: 1500 * time.Millisecond}},
		{"a # inside a value is kept", "out: /tmp/a#b", config{Out: "/tmp/a#b", Hz: 999, MaxPending: 65536, MaxWait: 10 * time.Second}},
		{"indented, as a YAML block", "  out: /o\n  hz: 1\n", config{Out: "/o", Hz: 1, MaxPending: 65536, MaxWait: 10 * time.Second}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseConfig([]byte(c.in))
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // in the error
	}{
		{"", "out is required"},
		{"hz: 99", "out is required"},
		{"out:", "config line 1: out: want a directory"},
		{"out: /x\nhz: 0", "config line 2: hz \"0\""},
		{"out: /x\nhz: many", "config line 2: hz \"many\""},
		{"out: /x\nhz: 100001", "hz \"100001\": want an integer from 1 to 100000"},
		{"out: /x\nmax_pending: -1", "config line 2: max_pending \"-1\""},
		{"out: /x\nmax_wait: 10", "config line 2: max_wait \"10\""},
		{"out: /x\nmax_wait: -1s", "max_wait \"-1s\""},
		{"out: /x\nfrequency: 99", "config line 2: unknown key \"frequency\""},
		{"out: /x\nout: /y", "config line 2: key \"out\" given twice"},
		{"out /x", "config line 1: want \"key: value\""},
	} {
		t.Run(c.in, func(t *testing.T) {
			_, err := parseConfig([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("parseConfig(%q) = %v, want an error containing %q", c.in, err, c.want)
			}
		})
	}
}
