package sdk

import (
	"encoding/binary"
	"math"
)

// A batch's columns are byte strings of varints (see plugin.proto). The
// decoders below read one into a scratch slice the decoder reuses from batch
// to batch; an optional column that is empty decodes to an empty slice,
// which [at] reads as zeros.

// uvarints decodes column b, which must hold exactly n uvarints (or be
// empty, if optional), into dst.
func uvarints(dst []uint64, b []byte, n int, optional bool) ([]uint64, bool) {
	dst = dst[:0]
	if len(b) == 0 {
		return dst, optional || n == 0
	}
	if len(b) < n { // each takes at least a byte
		return dst, false
	}
	for len(b) > 0 && len(dst) < n {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return dst, false
		}
		dst = append(dst, v)
		b = b[k:]
	}
	return dst, len(dst) == n && len(b) == 0
}

// svarints decodes column b, which must hold exactly n zigzag varints (or
// be empty, if optional), into dst.
func svarints(dst []int64, b []byte, n int, optional bool) ([]int64, bool) {
	dst = dst[:0]
	if len(b) == 0 {
		return dst, optional || n == 0
	}
	if len(b) < n {
		return dst, false
	}
	for len(b) > 0 && len(dst) < n {
		if c := b[0]; c < 0x80 { // one byte, as most deltas are: inline
			dst = append(dst, int64(c>>1)^-int64(c&1))
			b = b[1:]
			continue
		}
		v, k := binary.Varint(b)
		if k <= 0 {
			return dst, false
		}
		dst = append(dst, v)
		b = b[k:]
	}
	return dst, len(dst) == n && len(b) == 0
}

// int32s decodes an optional column of n zigzag varints that must fit an
// int32.
func int32s(dst []int32, b []byte, n int) ([]int32, bool) {
	dst = dst[:0]
	if len(b) == 0 {
		return dst, true
	}
	if len(b) < n {
		return dst, false
	}
	for len(b) > 0 && len(dst) < n {
		v, k := binary.Varint(b)
		if k <= 0 || v < math.MinInt32 || v > math.MaxInt32 {
			return dst, false
		}
		dst = append(dst, int32(v))
		b = b[k:]
	}
	return dst, len(dst) == n && len(b) == 0
}
