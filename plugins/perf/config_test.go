package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unwindd/unwindd/sdk"
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
		in    string
		field string // of the first ConfigError
		want  string // in the error
	}{
		{"", "", "out is required"},
		{"hz: 99", "", "out is required"},
		{"out:", "out", "want a directory, got nothing"},
		{"out: /x\nhz: 0", "hz", `want an integer from 1 to 100000, got "0"`},
		{"out: /x\nhz: many", "hz", `got "many"`},
		{"out: /x\nhz: 100001", "hz", "want an integer from 1 to 100000"},
		{"out: /x\nmax_pending: -1", "max_pending", `want a positive integer, got "-1"`},
		{"out: /x\nmax_wait: 10", "max_wait", `want a positive duration such as 10s, got "10"`},
		{"out: /x\nmax_wait: -1s", "max_wait", `got "-1s"`},
		{"out: /x\nfrequency: 99", "frequency", "unknown key"},
		{"out: /x\nout: /y", "", "already defined"},
		{"out /x", "", "not a YAML mapping"},
	} {
		t.Run(c.in, func(t *testing.T) {
			_, err := parseConfig([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("parseConfig(%q) = %v, want an error containing %q", c.in, err, c.want)
			}
			if !errors.Is(err, sdk.ErrInvalid) {
				t.Errorf("parseConfig(%q) = %v, not an sdk.ErrInvalid", c.in, err)
			}
			if ces := sdk.ConfigErrors(err); len(ces) == 0 || ces[0].Field != c.field {
				t.Errorf("parseConfig(%q): config errors %v, want the first for field %q", c.in, ces, c.field)
			}
		})
	}
}
