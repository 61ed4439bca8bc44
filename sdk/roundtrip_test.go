package sdk_test

import (
	"reflect"
	"testing"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/sdktest"
)

// TestEncoderRoundTrip: what sdktest.Encoder encodes, the decoder delivers
// as it was, across batches that reuse the connection's definitions.
func TestEncoderRoundTrip(t *testing.T) {
	m := &sdk.Mapping{Start: 0x400000, Limit: 0x500000, Path: "/bin/app", BuildID: []byte{1}}
	frames := []sdk.Frame{
		{Addr: 0x400100, Mapping: m, Function: "leaf", Offset: 4, Type: sdk.TypeRegs},
		{Addr: 0x7f0000, Type: sdk.TypeFramePointer},
	}
	ev := func(tid int32, time, cookie uint64) sdk.Event {
		return sdk.Event{Kind: sdk.KindSample, Name: "cpu-clock", Time: time, CPU: 1, PID: 7, TID: tid, Comm: "app", Cookie: cookie, Period: 100}
	}
	st := func(cookie uint64, time uint64) sdk.Stack {
		return sdk.Stack{Cookie: cookie, PID: 7, TID: 8, Time: time, Frames: frames, End: sdk.EndOutermost}
	}
	first := []any{ev(8, 100, 1<<32|1), ev(8, 90, 1<<32|1), st(1<<32|1, 110), sdk.Lost{Events: 2, Cookies: []uint64{9}}}
	second := []any{ev(9, 200, 0), st(3<<32|1, 210), st(5<<32|1, 205)}
	enc := sdktest.NewEncoder()
	rec := &recorder{}
	acks, err := deliver(t, tracerClient(t, rec), enc.Batch(first...), enc.Batch(second...))
	if err != nil || len(acks) != 2 {
		t.Fatalf("acks %v, err %v", acks, err)
	}
	want := []call{
		{Events: []sdk.Event{ev(8, 100, 1<<32|1), ev(8, 90, 1<<32|1)}},
		{Stack: &sdk.Stack{Cookie: 1<<32 | 1, PID: 7, TID: 8, Time: 110, Frames: frames, End: sdk.EndOutermost}},
		{Lost: &sdk.Lost{Events: 2, Cookies: []uint64{9}}},
		{Events: []sdk.Event{ev(9, 200, 0)}},
		{Stack: &sdk.Stack{Cookie: 3<<32 | 1, PID: 7, TID: 8, Time: 210, Frames: frames, End: sdk.EndOutermost}},
		{Stack: &sdk.Stack{Cookie: 5<<32 | 1, PID: 7, TID: 8, Time: 205, Frames: frames, End: sdk.EndOutermost}},
	}
	if got := rec.seen(); !reflect.DeepEqual(got, want) {
		t.Errorf("delivered:\n%s\nwant:\n%s", dump(got), dump(want))
	}
}
