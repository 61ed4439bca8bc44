package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/unwindd/unwindd/host/entry"
	"github.com/unwindd/unwindd/host/replay"
)

// summaryJSON is the summary `--summary-json FILE` writes: the same counts
// the text summary prints, for scripts.
type summaryJSON struct {
	Command    string           `json:"command"` // "run" or "replay"
	What       string           `json:"what"`    // the file replayed, or the target traced
	DurationMS int64            `json:"duration_ms"`
	Feed       replay.FeedStats `json:"feed"`
	Tracker    entry.Stats      `json:"tracker"`
	Unwinds    uint64           `json:"unwinds"`   // stacks walked: one per entry some plugin asked in
	Callbacks  uint64           `json:"callbacks"` // stacks delivered, over all plugins
	Cached     uint64           `json:"cached"`    // callbacks served from an entry's cache, not walked again
	Plugins    []pluginJSON     `json:"plugins"`
	Target     string           `json:"target,omitempty"` // how a traced target ended
}

type pluginJSON struct {
	Name            string `json:"name"`
	State           string `json:"state"`
	Events          uint64 `json:"events"`
	Callbacks       uint64 `json:"callbacks"`
	RequestsRefused uint64 `json:"requests_refused"`
	DroppedEvents   uint64 `json:"dropped_events"`
	DroppedStacks   uint64 `json:"dropped_stacks"`
	LostNotices     uint64 `json:"lost_notices"`
	DecideCalls     uint64 `json:"decide_calls"`
	DecideTimeouts  uint64 `json:"decide_timeouts"`
	Crashes         uint64 `json:"crashes"`
	Error           string `json:"error,omitempty"`
}

// writeSummaryJSON writes s as JSON to path ("" does nothing).
func writeSummaryJSON(path, command, what, target string, s *replay.Summary) error {
	if path == "" || s == nil {
		return nil
	}
	out := summaryJSON{Command: command, What: what, DurationMS: s.Duration.Milliseconds(), Feed: s.Feed, Tracker: s.Tracker, Target: target}
	for _, p := range s.Plugins {
		pj := pluginJSON{Name: p.Name, State: p.State.String(), Events: p.Events, Callbacks: p.Stacks + p.DroppedStacks,
			RequestsRefused: p.RequestsRefused, DroppedEvents: p.DroppedEvents, DroppedStacks: p.DroppedStacks,
			LostNotices: p.LostNotices, DecideCalls: p.DecideCalls, DecideTimeouts: p.DecideTimeouts, Crashes: p.Crashes}
		if p.Err != nil {
			pj.Error = p.Err.Error()
		}
		out.Plugins = append(out.Plugins, pj)
		out.Callbacks += pj.Callbacks
	}
	out.Unwinds = s.Tracker.Unwinds
	out.Cached = cached(out.Callbacks, out.Unwinds)
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--summary-json: %w", err)
	}
	return nil
}
