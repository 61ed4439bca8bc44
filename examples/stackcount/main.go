// Command stackcount is an unwindd tracer plugin that samples cpu-clock,
// asks for the user stack of every sample, and counts stacks per function.
// When the host shuts it down it writes the table to the file its config
// names (or to stderr, which the host logs).
//
// Config (the plugin's block in the host's config), one key per line:
//
//	hz: 99
//	output: /tmp/stackcount.txt
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/unwindd/unwindd/sdk"
)

type stackcount struct {
	counter *Counter
	output  string
	host    *sdk.Host
	check   bool // the host only checks the config: write nothing
}

// parseConfig reads "key: value" lines.
func (s *stackcount) parseConfig(cfg []byte) (hz uint32, err error) {
	hz = 99
	for i, line := range strings.Split(string(cfg), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return 0, fmt.Errorf("config line %d: want key: value, got %q", i+1, line)
		}
		switch k, v = strings.TrimSpace(k), strings.TrimSpace(v); k {
		case "hz":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return 0, fmt.Errorf("config line %d: hz %q: want a positive integer", i+1, v)
			}
			hz = uint32(n)
		case "output":
			s.output = v
		default:
			return 0, fmt.Errorf("config line %d: unknown key %q", i+1, k)
		}
	}
	return hz, nil
}

func (s *stackcount) Describe(_ context.Context, info sdk.DescribeInfo) (sdk.Description, error) {
	hz, err := s.parseConfig(info.Config)
	if err != nil {
		return sdk.Description{}, err
	}
	s.host, s.check = info.Host, info.Check
	return sdk.Description{
		Name:          "stackcount",
		Version:       "1.0.0",
		Subscriptions: []sdk.Subscription{sdk.CPUClock(hz)},
		Mode:          sdk.ModeAlways,
	}, nil
}

func (s *stackcount) Events(context.Context, []sdk.Event) error { return nil }

func (s *stackcount) Stack(_ context.Context, st sdk.Stack) error {
	s.counter.Add(st.Frames) // Frames is shared and read-only: Add only reads it
	return nil
}

func (s *stackcount) Lost(_ context.Context, l sdk.Lost) error {
	s.host.Logger().Sugar().Warnw("host dropped data", "events", l.Events, "stacks", l.Stacks)
	return nil
}

// Close writes the table when the host shuts the plugin down.
func (s *stackcount) Close() error {
	if s.check {
		return nil // unwindd config check: nothing was traced, keep the last table
	}
	if s.output == "" {
		_, err := s.counter.WriteTo(os.Stderr)
		return err
	}
	f, err := os.Create(s.output)
	if err != nil {
		return fmt.Errorf("write counts: %w", err)
	}
	if _, err := s.counter.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write counts to %s: %w", s.output, err)
	}
	return f.Close()
}

func main() {
	sdk.Serve(&stackcount{counter: NewCounter()})
}
