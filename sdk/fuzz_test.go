package sdk

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// baseBatch defines strings 1–2, mapping 1, locations 1–2 and stack 1, and
// uses them.
func baseBatch() *pluginpb.Batch {
	return NewWireBatch(1).
		Strings("/bin/a", "main").
		Mapping(&pluginpb.Mapping{Start: 0x1000, Limit: 0x2000, Path: 1}).
		Locs(WireLoc{Addr: 0x1010, Mapping: 1, Function: 2}, WireLoc{Addr: 0x1020}).
		StackDef(1, []byte{4, 3}, 1, 2).
		Event(WireEvent{Kind: 1, TID: 1, Name: 2, Cookie: 5, Fields: []*pluginpb.Field{{Name: "a", Value: &pluginpb.Field_Int{Int: 1}}}}).
		Stack(5, 1, 0, 1, 0).
		Lost(&pluginpb.Lost{Events: 1, Cookies: []uint64{6}}).
		Build()
}

// items is the number of items b carries.
func items(b *pluginpb.Batch) int {
	return len(b.GetEvents().GetContexts()) + len(b.GetRefs().GetStackIds()) + len(b.GetLost())
}

// checker is a Tracer that checks what the decoder hands it.
type checker struct {
	t     *testing.T
	calls int
	items int // events, stacks and lost notices seen
}

func (c *checker) Describe(context.Context, DescribeInfo) (Description, error) {
	return Description{}, nil
}

func (c *checker) Events(_ context.Context, ev []Event) error {
	if len(ev) == 0 {
		c.t.Error("Events called with no events")
	}
	c.calls++
	c.items += len(ev)
	return nil
}

func (c *checker) Stack(_ context.Context, s Stack) error {
	if err := s.CheckValid(); err != nil {
		c.t.Errorf("decoder delivered an invalid stack: %v", err)
	}
	c.calls++
	c.items++
	return nil
}

func (c *checker) Lost(context.Context, Lost) error {
	c.calls++
	c.items++
	return nil
}

// FuzzBatch feeds arbitrary Batch messages to the decoder, on a fresh
// connection and on one that already has definitions: it must never panic;
// it either delivers every item, each stack valid, or fails with a protocol
// error before delivering anything.
func FuzzBatch(f *testing.F) {
	seeds := []*pluginpb.Batch{
		baseBatch(),
		NewWireBatch(2).ContextsDefined(1).Stack(9, 1, 3, 4, 100).Event(WireEvent{Kind: 1, TID: 1, Name: 2, Cookie: 9, Time: 3}).Build(),
		NewWireBatch(2).Locs(WireLoc{Mapping: 1}).StackDef(5, []byte{4, 2, 1}, 3, 1, 3).Stack(9, 2, 0, 0, 0).Event(WireEvent{Comm: 1, Period: 7}).Build(),
		NewWireBatch(3).Stack(9, 7, 0, 0, 0).Build(),
		NewWireBatch(3).ResetTables().Strings("x").Locs(WireLoc{Addr: 1, Function: 1}).StackDef(1, []byte{3}, 1).Stack(9, 1, 0, 0, 0).Build(),
		NewWireBatch(2).ContextsDefined(1).Event(WireEvent{Name: 1, Fields: []*pluginpb.Field{{Name: "s", Value: &pluginpb.Field_Str{Str: []byte("v")}}}}).Event(WireEvent{Time: 5}).Build(),
		{},
	}
	for _, b := range seeds {
		data, err := proto.Marshal(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := new(pluginpb.Batch)
		if err := proto.Unmarshal(data, b); err != nil {
			return // not a Batch: gRPC would have refused it
		}
		run := func(d *decoder) {
			c := &checker{t: t}
			err := d.batch(context.Background(), b, c)
			if err != nil {
				if !errors.Is(err, ErrProtocol) || !strings.HasPrefix(err.Error(), "sdk: protocol error: batch ") {
					t.Fatalf("error %q is not a protocol error naming the batch", err)
				}
				if c.calls != 0 {
					t.Fatalf("a bad batch delivered %d calls before failing: %v", c.calls, err)
				}
				return
			}
			if c.items != items(b) {
				t.Fatalf("delivered %d items of %d", c.items, items(b))
			}
		}
		seq := b.Seq
		for _, reuse := range []bool{false, true} { // a Tracer that is an EventCopier, or not
			b.Seq = seq
			fresh := newDecoder()
			fresh.reuse = reuse
			run(fresh)
			primed := newDecoder()
			primed.reuse = reuse
			if err := primed.batch(context.Background(), baseBatch(), &checker{t: t}); err != nil {
				t.Fatalf("base batch: %v", err)
			}
			if b.Seq < 2 {
				b.Seq = 2
			}
			run(primed)
		}
	})
}

// yesDecider wants every entry it is asked about.
type yesDecider struct{ checker }

func (yesDecider) Decide(_ context.Context, entries []DecideEntry) ([]bool, error) {
	want := make([]bool, len(entries))
	for i := range want {
		want[i] = true
	}
	return want, nil
}

// FuzzDecide feeds arbitrary DecideRequest messages to the server's
// answer, as the Decide call and the Decisions stream do: it must never
// panic, and the keys it wants are the request's.
func FuzzDecide(f *testing.F) {
	for _, r := range []*pluginpb.DecideRequest{
		{Seq: 1, BudgetNs: 1e6, Entries: []*pluginpb.DecideEntry{{Key: 1, Pid: 2, Tid: 3, Events: []*pluginpb.Event{
			{Kind: pluginpb.EventKind_EVENT_KIND_SYSCALL_ENTER, Name: []byte("read"), Comm: []byte("app"), Fields: []*pluginpb.Field{
				{Name: "fd", Value: &pluginpb.Field_Int{Int: 3}}, {Name: "buf", Value: &pluginpb.Field_Raw{Raw: []byte{1}}}, {Name: "x"}}}}}}},
		{Entries: []*pluginpb.DecideEntry{{Key: 7}, {Key: 7}, {}}},
		{},
	} {
		data, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	s := NewServer(&yesDecider{}, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := new(pluginpb.DecideRequest)
		if err := proto.Unmarshal(data, r); err != nil {
			return
		}
		resp, err := s.answer(context.Background(), r)
		if err != nil {
			t.Fatalf("answer: %v", err)
		}
		if len(resp.GetWant()) != len(r.GetEntries()) {
			t.Fatalf("%d keys wanted of %d entries, all wanted", len(resp.GetWant()), len(r.GetEntries()))
		}
		for i, k := range resp.GetWant() {
			if k != r.GetEntries()[i].GetKey() {
				t.Fatalf("want[%d] = %d, the entry's key is %d", i, k, r.GetEntries()[i].GetKey())
			}
		}
	})
}
