package sdk

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// codec is gRPC's protobuf codec with the connection's own buffer pool
// (bufferPool) instead of gRPC's default one. gRPC's codec marshals every
// message into a buffer of the process-wide default pool, and
// unmarshals a message that came in several frames from one, and that
// pool zeroes a buffer's whole capacity on every Get: the host cleared a
// 1 MiB buffer for each 46 KiB batch it sent, 5% of its CPU in
// BenchmarkDeliver/outbox-interned. Its name is "proto", so the wire is
// the same as with gRPC's codec, and either end may use either.
type codec struct {
	pool mem.BufferPool
}

var _ encoding.CodecV2 = codec{}

func (c codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("sdk: marshal %T: not a proto.Message", v)
	}
	size := proto.Size(m)
	// UseCachedSize: the size was just computed, and the message is not
	// changed concurrently (gRPC marshals before Send returns).
	opts := proto.MarshalOptions{UseCachedSize: true}
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	buf := c.pool.Get(size)
	if _, err := opts.MarshalAppend((*buf)[:0], m); err != nil {
		c.pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, nil
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("sdk: unmarshal into %T: not a proto.Message", v)
	}
	buf := data.MaterializeToBuffer(c.pool)
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}
