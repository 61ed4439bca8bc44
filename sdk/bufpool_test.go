package sdk

import "testing"

func TestBufferPool(t *testing.T) {
	var p bufferPool
	for _, tc := range []struct{ n, cap int }{
		{0, 256}, {1, 256}, {256, 256}, {257, 512}, {200 << 10, 256 << 10}, {1 << 20, 1 << 20},
		{4 << 20, 4 << 20}, {4<<20 + 1, 4<<20 + 1},
	} {
		b := p.Get(tc.n)
		if len(*b) != tc.n || cap(*b) != tc.cap {
			t.Errorf("Get(%d): len %d cap %d, want %d, %d", tc.n, len(*b), cap(*b), tc.n, tc.cap)
		}
		p.Put(b)
	}
	// A buffer put back is handed out again, at the length asked for,
	// whether it came back whole or as a prefix.
	b := p.Get(3000)
	(*b)[0] = 42
	*b = (*b)[:10]
	p.Put(b)
	for range 100 { // sync.Pool may drop it; it keeps it mostly
		c := p.Get(4000)
		if len(*c) != 4000 || cap(*c) != 4096 {
			t.Fatalf("Get(4000): len %d cap %d", len(*c), cap(*c))
		}
		if c == b {
			return
		}
		p.Put(c)
	}
	t.Log("the buffer put back was never handed out again (sync.Pool dropped it)")
}

func BenchmarkBufferPool(b *testing.B) {
	var p bufferPool
	b.ReportAllocs()
	for b.Loop() {
		p.Put(p.Get(200 << 10))
	}
}
