package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The config's defaults and limits.
const (
	defaultHz         = 999
	maxHz             = 100000 // the kernel's default perf_event_max_sample_rate
	defaultMaxPending = 65536
	defaultMaxWait    = 10 * time.Second
)

// config is the plugin's config block, decoded.
type config struct {
	Out        string        // out: the directory the three files are written to (required)
	Hz         uint32        // hz: cpu-clock sampling frequency
	MaxPending int           // max_pending: samples held while they wait for their stack
	MaxWait    time.Duration // max_wait: how long, in sample time, a sample waits for its stack
}

// parseConfig decodes the plugin's config: one "key: value" per line, as in
// a flat YAML mapping. Blank lines and "#" comments are skipped, a value may
// be quoted, and unknown or repeated keys are errors. Every error names the
// line and the key.
func parseConfig(b []byte) (config, error) {
	c := config{Hz: defaultHz, MaxPending: defaultMaxPending, MaxWait: defaultMaxWait}
	seen := map[string]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		n := i + 1
		line = stripComment(line)
		if strings.TrimSpace(line) == "" || strings.TrimSpace(line) == "---" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return config{}, fmt.Errorf("config line %d: want \"key: value\", got %q", n, strings.TrimSpace(line))
		}
		k, v = strings.TrimSpace(k), unquote(strings.TrimSpace(v))
		if seen[k] {
			return config{}, fmt.Errorf("config line %d: key %q given twice", n, k)
		}
		seen[k] = true
		switch k {
		case "out":
			if v == "" {
				return config{}, fmt.Errorf("config line %d: out: want a directory, got nothing", n)
			}
			c.Out = v
		case "hz":
			hz, err := strconv.ParseUint(v, 10, 32)
			if err != nil || hz == 0 || hz > maxHz {
				return config{}, fmt.Errorf("config line %d: hz %q: want an integer from 1 to %d", n, v, maxHz)
			}
			c.Hz = uint32(hz)
		case "max_pending":
			m, err := strconv.Atoi(v)
			if err != nil || m <= 0 {
				return config{}, fmt.Errorf("config line %d: max_pending %q: want a positive integer", n, v)
			}
			c.MaxPending = m
		case "max_wait":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return config{}, fmt.Errorf("config line %d: max_wait %q: want a positive duration such as 10s", n, v)
			}
			c.MaxWait = d
		default:
			return config{}, fmt.Errorf("config line %d: unknown key %q (known: out, hz, max_pending, max_wait)", n, k)
		}
	}
	if c.Out == "" {
		return config{}, fmt.Errorf("config: out is required (the directory to write profile.pb.gz, stacks.folded and perf.script.txt to)")
	}
	return c, nil
}

// stripComment cuts a YAML comment: a "#" at the start of the line or after
// a space, outside quotes.
func stripComment(line string) string {
	var quote byte
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i]
		}
	}
	return line
}

// unquote removes one pair of matching quotes around v.
func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}
