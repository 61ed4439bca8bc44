package main

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/configblock"
	"github.com/unwindd/unwindd/sdk/syscalls"
)

// maxComm is the longest command name the kernel keeps (TASK_COMM_LEN 16,
// less the NUL): a longer one in the comm filter could never match.
const maxComm = 15

// config is the plugin's config block, decoded.
type config struct {
	Out         string   // out: the directory trace.txt is written to (required)
	Syscalls    []string // syscalls: the syscalls traced; empty: every one
	Tracepoints []string // tracepoints: "group:name", each at most once
	Comms       []string // comm: request stacks only for tasks of these command names
	PIDs        []int32  // pid: request stacks only for these processes or threads
}

func (c *config) equal(o *config) bool {
	return c.Out == o.Out && slices.Equal(c.Syscalls, o.Syscalls) && slices.Equal(c.Tracepoints, o.Tracepoints) &&
		slices.Equal(c.Comms, o.Comms) && slices.Equal(c.PIDs, o.PIDs)
}

// knownKeys lists the config's keys for error messages.
const knownKeys = "out, syscalls, tracepoints, comm, pid"

// parseConfig decodes the plugin's config block, a YAML mapping. Unknown
// keys, repeated keys, values of the wrong type and bad values are errors;
// each is an [sdk.ConfigError] naming its key (and list item, as
// "syscalls[2]"), which the host reports at that line of its config file.
// Several are joined.
func parseConfig(b []byte) (config, error) {
	var c config
	m, err := configblock.Mapping(b)
	if err != nil {
		return config{}, err
	}
	var errs configblock.Errors
	bad := errs.Add
	seen := configblock.Keys(m, "", knownKeys, bad, func(k, _ string, v any) {
		switch k {
		case "out":
			c.Out = configblock.Dir(k, v, bad)
		case "syscalls":
			c.Syscalls = stringList(k, v, bad, syscalls.Check)
		case "tracepoints":
			c.Tracepoints = stringList(k, v, bad, checkTracepoint)
		case "comm":
			c.Comms = stringList(k, v, bad, func(s string) string {
				if len(s) > maxComm {
					return fmt.Sprintf("%q is longer than %d bytes, the most the kernel keeps of a command name", s, maxComm)
				}
				return ""
			})
		case "pid":
			c.PIDs = pidList(k, v, bad)
		default:
			bad(k, "unknown key (known: %s)", knownKeys)
		}
	})
	if c.Out == "" && !seen["out"] {
		errs = append(errs, &sdk.ConfigError{Msg: "out is required (the directory to write trace.txt to)"})
	}
	if len(errs) > 0 {
		return config{}, errors.Join(errs...)
	}
	return c, nil
}

// stringList decodes the list of strings v of key; check returns what is
// wrong with one item, or "". Items that are not strings, empty, repeated
// or refused by check are reported as key[i]. A missing value (key: with
// nothing after it) is an empty list.
func stringList(key string, v any, bad func(field, format string, args ...any), check func(string) string) []string {
	if v == nil {
		return nil
	}
	items, ok := v.([]any)
	if !ok {
		bad(key, "want a list such as [a, b], got %s", configblock.Show(v))
		return nil
	}
	var out []string
	for i, it := range items {
		field := fmt.Sprintf("%s[%d]", key, i)
		s, ok := it.(string)
		switch {
		case !ok:
			bad(field, "want a string, got %s", configblock.Show(it))
		case s == "":
			bad(field, "empty")
		case slices.Contains(out, s):
			bad(field, "%q given twice", s)
		default:
			if msg := check(s); msg != "" {
				bad(field, "%s", msg)
				continue
			}
			out = append(out, s)
		}
	}
	return out
}

// pidList decodes the pid list: positive integers, each at most once.
func pidList(key string, v any, bad func(field, format string, args ...any)) []int32 {
	if v == nil {
		return nil
	}
	items, ok := v.([]any)
	if !ok {
		bad(key, "want a list of process ids such as [1234], got %s", configblock.Show(v))
		return nil
	}
	var out []int32
	for i, it := range items {
		field := fmt.Sprintf("%s[%d]", key, i)
		n, ok := configblock.Int(it)
		switch {
		case !ok || n < 1 || n > math.MaxInt32:
			bad(field, "want a process id (a positive integer), got %s", configblock.Show(it))
		case slices.Contains(out, int32(n)):
			bad(field, "%d given twice", n)
		default:
			out = append(out, int32(n))
		}
	}
	return out
}

// checkTracepoint says what is wrong with a tracepoint name, or "".
func checkTracepoint(s string) string {
	group, name, ok := strings.Cut(s, ":")
	if !ok || group == "" || name == "" || strings.Contains(name, ":") || strings.ContainsAny(s, " \t/") {
		return fmt.Sprintf("want a tracepoint as group:name (sched:sched_switch), got %q", s)
	}
	if group == "syscalls" {
		return fmt.Sprintf("%q: list syscalls under the syscalls key, by their names (openat)", s)
	}
	return ""
}
