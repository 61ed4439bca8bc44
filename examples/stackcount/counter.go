package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/unwindd/unwindd/sdk"
)

// Counter counts stacks per function: Self is how often a function was the
// leaf, Total how often it was on the stack at all (once per stack, however
// deep the recursion). It is safe for concurrent use.
type Counter struct {
	mu    sync.Mutex
	self  map[string]uint64
	total map[string]uint64
	n     uint64
}

// NewCounter returns an empty Counter.
func NewCounter() *Counter {
	return &Counter{self: make(map[string]uint64), total: make(map[string]uint64)}
}

// name is a frame's function, or its mapping and offset when unsymbolized.
func name(f sdk.Frame) string {
	switch {
	case f.Function != "":
		return f.Function
	case f.Mapping != nil:
		return fmt.Sprintf("%s+%#x", f.Mapping.Path, f.Addr-f.Mapping.Start+f.Mapping.Offset)
	}
	return fmt.Sprintf("%#x", f.Addr)
}

// Add counts one stack.
func (c *Counter) Add(frames []sdk.Frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if len(frames) == 0 {
		c.self["[no frames]"]++
		return
	}
	c.self[name(frames[0])]++
	seen := make(map[string]bool, len(frames))
	for _, f := range frames {
		fn := name(f)
		if !seen[fn] {
			seen[fn] = true
			c.total[fn]++
		}
	}
}

// WriteTo writes the top functions by Self count, like `perf report
// --no-children`, with their Total counts.
func (c *Counter) WriteTo(w io.Writer) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.total)+1)
	for fn := range c.total {
		names = append(names, fn)
	}
	if _, ok := c.self["[no frames]"]; ok {
		names = append(names, "[no frames]")
	}
	sort.Slice(names, func(i, j int) bool {
		if c.self[names[i]] != c.self[names[j]] {
			return c.self[names[i]] > c.self[names[j]]
		}
		return names[i] < names[j]
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%d stacks\n%10s %10s  function\n", c.n, "self", "total")
	for _, fn := range names {
		fmt.Fprintf(&b, "%10d %10d  %s\n", c.self[fn], c.total[fn], fn)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
