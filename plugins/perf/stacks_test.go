package main

import (
	"slices"
	"testing"

	"github.com/unwindd/unwindd/sdk"
)

// TestStackTable: a stack is found by content, whether the SDK hands out
// the same frames again or a copy of them; a stack that differs in any
// frame's address, function, offset or mapping is another one.
func TestStackTable(t *testing.T) {
	tab := newStackTable()
	a := tab.lookup(stackA)
	if got := tab.lookup(stackA); got != a {
		t.Errorf("the same frames: another stack")
	}
	cp := slices.Clone(stackA)
	m := *libcMap // an equal mapping at another address
	cp[2].Mapping = &m
	if got := tab.lookup(cp); got != a {
		t.Errorf("a copy of the frames: another stack")
	}
	if tab.lookupStack(nil) != tab.lookup(nil) || tab.lookup(nil) == a {
		t.Errorf("the empty stack")
	}
	for i, change := range []func(f *sdk.Frame){
		func(f *sdk.Frame) { f.Addr++ },
		func(f *sdk.Frame) { f.Function = "other" },
		func(f *sdk.Frame) { f.Offset++ },
		func(f *sdk.Frame) { f.Mapping = nil },
		func(f *sdk.Frame) { m := *f.Mapping; m.Path = "/other"; f.Mapping = &m },
	} {
		d := slices.Clone(stackA)
		change(&d[1])
		if got := tab.lookup(d); got == a {
			t.Errorf("change %d: the same stack", i)
		}
	}
	if got := tab.lookup(stackA[:3]); got == a {
		t.Errorf("a prefix: the same stack")
	}
}
