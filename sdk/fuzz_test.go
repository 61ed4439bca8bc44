package sdk

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// baseBatch defines mapping 1, function 1, locations 1–2 and stack 1, and
// uses them.
func baseBatch() *pluginpb.Batch {
	return &pluginpb.Batch{
		Seq:       1,
		Mappings:  []*pluginpb.Mapping{{Id: 1, Start: 0x1000, Limit: 0x2000, Path: "/bin/a"}},
		Functions: []*pluginpb.Function{{Id: 1, Name: "main"}},
		Locations: []*pluginpb.Location{{Id: 1, Address: 0x1010, MappingId: 1, FunctionId: 1}, {Id: 2, Address: 0x1020}},
		Stacks:    []*pluginpb.StackDef{{Id: 1, LocationIds: []uint64{1, 2}, FrameTypes: []byte{4, 3}, End: 1}},
		Items: []*pluginpb.Item{
			{Item: &pluginpb.Item_Event{Event: &pluginpb.Event{Kind: 1, Tid: 1, Cookie: 5, Fields: []*pluginpb.Field{{Name: "a", Value: &pluginpb.Field_Int{Int: 1}}}}}},
			{Item: &pluginpb.Item_Stack{Stack: &pluginpb.StackRef{Cookie: 5, Tid: 1, StackId: 1}}},
			{Item: &pluginpb.Item_Lost{Lost: &pluginpb.Lost{Events: 1, Cookies: []uint64{6}}}},
		},
	}
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
		{Seq: 2, Items: []*pluginpb.Item{{Item: &pluginpb.Item_Stack{Stack: &pluginpb.StackRef{Cookie: 9, StackId: 1}}}}},
		{Seq: 2, Locations: []*pluginpb.Location{{Id: 3, MappingId: 1}}, Stacks: []*pluginpb.StackDef{{Id: 2, LocationIds: []uint64{3, 1, 3}, FrameTypes: []byte{4, 2, 1}, End: 5}}},
		{Seq: 3, Items: []*pluginpb.Item{{Item: &pluginpb.Item_Stack{Stack: &pluginpb.StackRef{Cookie: 9, StackId: 7}}}}},
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
			if c.items != len(b.GetItems()) {
				t.Fatalf("delivered %d items of %d", c.items, len(b.GetItems()))
			}
		}
		run(newDecoder())
		primed := newDecoder()
		if err := primed.batch(context.Background(), baseBatch(), &checker{t: t}); err != nil {
			t.Fatalf("base batch: %v", err)
		}
		if b.Seq < 2 {
			b.Seq = 2
		}
		run(primed)
	})
}
