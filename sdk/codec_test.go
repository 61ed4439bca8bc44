package sdk

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// TestCodec: messages small and large marshal as proto.Marshal does, and
// unmarshal from one buffer or from several (a message that came in
// several HTTP/2 frames).
func TestCodec(t *testing.T) {
	c := codec{new(bufferPool)}
	for _, size := range []int{0, 10, 100 << 10} {
		b := &pluginpb.Batch{Seq: 7, Strings: [][]byte{bytes.Repeat([]byte{'x'}, size)}, Runs: []uint32{5, 6}}
		data, err := c.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := proto.Marshal(b)
		if got := data.Materialize(); !bytes.Equal(got, want) {
			t.Fatalf("size %d: marshalled %d bytes, proto.Marshal %d", size, len(got), len(want))
		}
		// Split in 3 buffers, as frames.
		raw := data.Materialize()
		data.Free()
		var frames mem.BufferSlice
		for i, cut := 0, len(raw)/3+1; i < len(raw); i += cut {
			frames = append(frames, mem.SliceBuffer(raw[i:min(i+cut, len(raw))]))
		}
		var got pluginpb.Batch
		if err := c.Unmarshal(frames, &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, b) {
			t.Errorf("size %d: round trip changed the batch", size)
		}
	}
	if _, err := c.Marshal("not a message"); err == nil {
		t.Error("Marshal of a string: no error")
	}
	if err := c.Unmarshal(nil, new(int)); err == nil {
		t.Error("Unmarshal into an int: no error")
	}
}
