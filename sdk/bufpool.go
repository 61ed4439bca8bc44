package sdk

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// bufferPool is the gRPC buffer pool of a plugin connection, at both ends
// (each ServerOptions and DialOptions makes its own): buffers in power-of-two classes from 256
// bytes to 4 MiB, handed out as they were put back, without zeroing.
//
// gRPC's default pool has five classes (256 B, 4, 16, 32 KiB, 1 MiB) and
// zeroes a buffer's whole capacity on every Get, so a 200 KiB batch took a
// 1 MiB buffer and cleared it first: 13% of a plugin's CPU receiving
// distinct stacks (BenchmarkDeliver/steady200k-outbox's profile). gRPC
// reads a message into the buffer before anything reads the buffer, so
// stale bytes are never seen (its internal "dirty" pools rely on this
// too); and both ends of a plugin connection are one process's own
// buffers, so nothing crosses between users.
type bufferPool struct {
	classes [maxPoolClass - minPoolClass + 1]sync.Pool
}

const (
	minPoolClass = 8  // 256 B
	maxPoolClass = 22 // 4 MiB
)

var _ mem.BufferPool = (*bufferPool)(nil)

// Get returns a buffer of length n.
func (p *bufferPool) Get(n int) *[]byte {
	c := max(bits.Len(uint(n-1)), minPoolClass)
	if n <= 0 {
		c = minPoolClass
	}
	if c > maxPoolClass {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[c-minPoolClass].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<c)
	return &b
}

// Put takes back a buffer Get returned (or a prefix of it).
func (p *bufferPool) Put(b *[]byte) {
	c := cap(*b)
	if c < 1<<minPoolClass || c > 1<<maxPoolClass || c&(c-1) != 0 {
		return // not one of ours: let the collector have it
	}
	p.classes[bits.Len(uint(c))-1-minPoolClass].Put(b)
}
