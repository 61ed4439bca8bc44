package main

import (
	"fmt"
	"slices"
	"testing"

	"github.com/unwindd/unwindd/sdk"
)

// op is one step of a joiner test: a sample (cookie, time), a stack, a
// lost notice or a flush.
type op struct {
	ev    *sample
	cook  uint64
	stack *sdk.Stack
	lost  []uint64
	flush bool
}

func ev(cookie uint64, tid int32, t uint64) op {
	return op{ev: &sample{Comm: "demo", PID: 100, TID: tid, Time: t, Period: 1}, cook: cookie}
}
func st(cookie uint64, t uint64) op {
	s := stackOf(cookie, 0, t, stackB)
	return op{stack: &s}
}
func lost(cookies ...uint64) op { return op{lost: cookies} }
func flush() op                 { return op{flush: true} }

// released renders what a joiner handed on: "tid@time:cookie" for a
// sample with the stack of cookie, "tid@time:-" for one without.
func runJoiner(maxPending int, maxWait uint64, ops []op) ([]string, joinStats, *joiner) {
	var out []string
	j := newJoiner(maxPending, maxWait, func(samples []sample, s *sdk.Stack) {
		for _, x := range samples {
			c := "-"
			if s != nil {
				c = fmt.Sprint(s.Cookie)
			}
			out = append(out, fmt.Sprintf("%d@%d:%s", x.TID, x.Time, c))
		}
	})
	for _, o := range ops {
		switch {
		case o.ev != nil:
			j.add(o.cook, *o.ev)
		case o.stack != nil:
			j.stack(o.stack)
		case o.lost != nil:
			j.lost(o.lost)
		case o.flush:
			j.flush()
		}
	}
	return out, j.stats, j
}

func TestJoiner(t *testing.T) {
	const big = 1 << 20
	for _, c := range []struct {
		name       string
		maxPending int
		maxWait    uint64
		ops        []op
		want       []string
		stats      joinStats
	}{
		{
			name:  "events before their stack",
			ops:   []op{ev(7, 1, 10), ev(8, 2, 11), st(7, 12), st(8, 13)},
			want:  []string{"1@10:7", "2@11:8"},
			stats: joinStats{Samples: 2, Stacks: 2, Joined: 2},
		},
		{
			name:  "several samples in one entry",
			ops:   []op{ev(7, 1, 10), ev(7, 1, 11), ev(7, 1, 12), st(7, 13)},
			want:  []string{"1@10:7", "1@11:7", "1@12:7"},
			stats: joinStats{Samples: 3, Stacks: 1, Joined: 3},
		},
		{
			name:  "lost cookies are dropped and counted",
			ops:   []op{ev(7, 1, 10), ev(7, 1, 11), ev(8, 2, 12), lost(7, 99), st(7, 13), st(8, 14), flush()},
			want:  []string{"2@12:8"},
			stats: joinStats{Samples: 3, Stacks: 2, Joined: 1, Lost: 2, OrphanStacks: 1},
		},
		{
			name:  "no cookie: released at once without a stack",
			ops:   []op{ev(0, 1, 10), ev(7, 2, 11), st(7, 12)},
			want:  []string{"1@10:-", "2@11:7"},
			stats: joinStats{Samples: 2, Stacks: 1, Joined: 1, Unjoined: 1, NoCookie: 1},
		},
		{
			name:  "a stack with no sample is an orphan",
			ops:   []op{st(5, 10)},
			stats: joinStats{Stacks: 1, OrphanStacks: 1},
		},
		{
			name:  "at close, waiting samples go without a stack, oldest entry first",
			ops:   []op{ev(8, 2, 10), ev(7, 1, 11), ev(8, 2, 12), flush(), st(7, 13)},
			want:  []string{"2@10:-", "2@12:-", "1@11:-"},
			stats: joinStats{Samples: 3, Stacks: 1, Unjoined: 3, AtClose: 3, OrphanStacks: 1},
		},
		{
			name:       "beyond max_pending the oldest entry is evicted",
			maxPending: 2,
			ops:        []op{ev(1, 1, 10), ev(2, 2, 11), ev(2, 2, 12), st(2, 13), ev(3, 3, 14), ev(4, 4, 15), ev(5, 5, 16), st(5, 17)},
			// 1 is evicted by 2's second sample; 3 by 5.
			want:  []string{"1@10:-", "2@11:2", "2@12:2", "3@14:-", "5@16:5"},
			stats: joinStats{Samples: 6, Stacks: 2, Joined: 3, Unjoined: 2, Evicted: 2, Pending: 1},
		},
		{
			name:    "entries older than max_wait are evicted",
			maxWait: 100,
			ops:     []op{ev(1, 1, 10), ev(2, 2, 50), ev(3, 3, 111), st(2, 120), st(1, 121), ev(4, 4, 200)},
			// 111-10 > 100 evicts 1; 2 is joined; at 200, 3 (111) is still young enough.
			want:  []string{"1@10:-", "2@50:2"},
			stats: joinStats{Samples: 4, Stacks: 2, Joined: 1, Unjoined: 1, Evicted: 1, OrphanStacks: 1, Pending: 2},
		},
		{
			// A stack's time is the host's clock, not the source's:
			// a far-off stack time must not evict waiting samples.
			name:    "stack times do not advance the clock",
			maxWait: 100,
			ops:     []op{ev(1, 1, 10), st(9, 1<<60), st(1, 1<<60)},
			want:    []string{"1@10:1"},
			stats:   joinStats{Samples: 1, Stacks: 2, Joined: 1, OrphanStacks: 1},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.maxPending == 0 {
				c.maxPending = big
			}
			if c.maxWait == 0 {
				c.maxWait = big
			}
			got, stats, _ := runJoiner(c.maxPending, c.maxWait, c.ops)
			if !slices.Equal(got, c.want) {
				t.Errorf("released %q, want %q", got, c.want)
			}
			if stats != c.stats {
				t.Errorf("stats %+v, want %+v", stats, c.stats)
			}
			if n := stats.Joined + stats.Lost + stats.Unjoined + uint64(stats.Pending); n != stats.Samples {
				t.Errorf("joined+lost+unjoined+pending = %d, want samples = %d", n, stats.Samples)
			}
		})
	}
}

// TestJoinerBound feeds many entries whose stacks never come, and a few
// that never stop being young, and checks that the map and the queue stay
// bounded and every sample is accounted for.
func TestJoinerBound(t *testing.T) {
	for _, c := range []struct {
		name       string
		maxPending int
		maxWait    uint64
		step       uint64 // sample time between entries
		wantMax    int    // most samples that may wait
	}{
		{"by count", 100, 1 << 62, 0, 100},
		{"by age", 1 << 20, 1000, 10, 1000/10 + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := newJoiner(c.maxPending, c.maxWait, func([]sample, *sdk.Stack) {})
			var maxMap, maxQueue int
			for i := uint64(1); i <= 100000; i++ {
				j.add(i, sample{Time: i * c.step})
				if i%3 == 0 {
					j.stack(&sdk.Stack{Cookie: i, Time: i * c.step}) // a third are joined at once
				}
				maxMap = max(maxMap, len(j.pending))
				maxQueue = max(maxQueue, len(j.queue)-j.head)
			}
			if maxMap > c.wantMax {
				t.Errorf("map peaked at %d entries, want at most %d", maxMap, c.wantMax)
			}
			if limit := 3*c.wantMax + 1024 + 1; maxQueue > limit {
				t.Errorf("queue peaked at %d entries, want at most %d", maxQueue, limit)
			}
			s := j.stats
			if s.Evicted < 60000 {
				t.Errorf("%d samples evicted, want the 2/3 whose stack never came, less those waiting", s.Evicted)
			}
			if n := s.Joined + s.Lost + s.Unjoined + uint64(s.Pending); n != s.Samples {
				t.Errorf("joined+lost+unjoined+pending = %d, want samples = %d (%+v)", n, s.Samples, s)
			}
		})
	}
}
