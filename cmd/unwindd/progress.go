package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unwindd/unwindd/host/pluginhost"
)

// Progress goes to stderr, and only when stderr is a terminal: a log file
// or a pipe gets nothing extra. Each display redraws one line with "\r" and
// clears it when done.

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progress draws replay's one-line progress report, at most five times a
// second.
type progress struct {
	w    io.Writer
	last time.Time
	drew bool
}

func (p *progress) update(done, total int64, records uint64) {
	if total <= 0 || time.Since(p.last) < 200*time.Millisecond && done < total {
		return
	}
	p.last, p.drew = time.Now(), true
	fmt.Fprintf(p.w, "\rreplay: %3d%% (%d of %d MiB, %d records)\x1b[K", done*100/total, done>>20, total>>20, records)
}

func (p *progress) done() {
	if p != nil && p.drew {
		fmt.Fprintln(p.w)
	}
}

// liveInterval is how often `unwindd run` redraws its progress line.
const liveInterval = 250 * time.Millisecond

// liveProgress is `unwindd run`'s progress line: elapsed time, events
// dispatched and their rate over the last interval, stacks delivered, and
// what the plugins lost (events and stacks dropped from full outboxes).
// It polls the plugin manager from its own goroutine.
type liveProgress struct {
	w     io.Writer
	begin time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startLive starts drawing the progress of mgr's run to w every interval.
func startLive(w io.Writer, mgr *pluginhost.Manager, interval time.Duration) *liveProgress {
	p := &liveProgress{w: w, begin: time.Now(), stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		var lastEvents uint64
		lastAt := p.begin
		for {
			select {
			case <-p.stop:
				fmt.Fprint(p.w, "\r\x1b[K")
				return
			case now := <-tick.C:
				events := mgr.Dispatched()
				rate := float64(events-lastEvents) / now.Sub(lastAt).Seconds()
				lastEvents, lastAt = events, now
				var stacks, lost uint64
				for _, s := range mgr.Stats() {
					stacks += s.Stacks
					lost += s.DroppedEvents + s.DroppedStacks
				}
				fmt.Fprint(p.w, "\r"+liveLine(now.Sub(p.begin), events, rate, stacks, lost)+"\x1b[K")
			}
		}
	}()
	return p
}

// done stops the display and clears its line; nil does nothing.
func (p *liveProgress) done() {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
}

// liveLine is one progress line.
func liveLine(elapsed time.Duration, events uint64, rate float64, stacks, lost uint64) string {
	return fmt.Sprintf("run: %s  events %d (%s/s)  stacks %d  lost %d",
		elapsed.Truncate(100*time.Millisecond), events, si(rate), stacks, lost)
}

// si formats v with a k or M suffix, 3 significant digits.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
