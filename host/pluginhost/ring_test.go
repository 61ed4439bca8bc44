package pluginhost

import (
	"sync"
	"testing"
)

// TestRing: producers push concurrently into a small ring while one
// consumer pops, sleeping when it is empty; every accepted item arrives
// exactly once, in each producer's order, and a full ring refuses.
func TestRing(t *testing.T) {
	r := newRing(5) // not a power of two
	for i := range 5 {
		if !r.push(&item{cookie: uint64(i)}) {
			t.Fatalf("push %d into an empty ring refused", i)
		}
	}
	if r.push(&item{}) || r.len() != 5 {
		t.Fatalf("full ring: push accepted, or len %d", r.len())
	}
	var it item
	for i := range 5 {
		if !r.pop(&it) || it.cookie != uint64(i) {
			t.Fatalf("pop %d: %v %+v", i, r.len(), it)
		}
	}
	if r.pop(&it) || r.len() != 0 {
		t.Fatal("empty ring popped")
	}

	const producers, each = 4, 20000
	var wg sync.WaitGroup
	accepted := make([]int, producers)
	for p := range producers {
		wg.Go(func() {
			for i := 1; i <= each; i++ {
				if r.push(&item{pid: int32(p), cookie: uint64(i)}) {
					accepted[p]++
				}
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	last, got := make([]uint64, producers), make([]int, producers)
	finished := false
	for {
		if r.pop(&it) {
			if it.cookie <= last[it.pid] {
				t.Fatalf("producer %d: item %d after %d", it.pid, it.cookie, last[it.pid])
			}
			last[it.pid] = it.cookie
			got[it.pid]++
			continue
		}
		if finished {
			break
		}
		if r.sleep() {
			select {
			case <-r.ready:
			case <-done:
				finished = true
			}
			r.awake()
		}
	}
	for p := range producers {
		if got[p] != accepted[p] {
			t.Errorf("producer %d: %d accepted, %d popped", p, accepted[p], got[p])
		}
	}
}
