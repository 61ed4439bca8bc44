package main

import "github.com/unwindd/unwindd/sdk"

// A made-up process: a PIE binary and libc, with two stacks through them.
var (
	demoMap = &sdk.Mapping{Start: 0x55d556554000, Limit: 0x55d55655a000, Offset: 0x1000, Path: "/work/main/bin/demo", BuildID: []byte{0xde, 0xad, 0xbe, 0xef}}
	libcMap = &sdk.Mapping{Start: 0x7f8cad028000, Limit: 0x7f8cad1bd000, Offset: 0x28000, Path: "/usr/lib/x86_64-linux-gnu/libc.so.6", BuildID: []byte{0x01, 0x23, 0x45, 0x67, 0x89}}

	// stackA: parse_header ← main ← (libc, unsymbolized) ← __libc_start_call_main ← an unmapped frame.
	stackA = []sdk.Frame{
		{Addr: 0x55d5565581ac, Mapping: demoMap, Function: "parse_header", Offset: 0x13, Type: sdk.TypeRegs},
		{Addr: 0x55d556558300, Mapping: demoMap, Function: "main", Offset: 0x40, Type: sdk.TypeCFI},
		{Addr: 0x7f8cad0a6100, Mapping: libcMap, Type: sdk.TypeCFI},
		{Addr: 0x7f8cad0a624a, Mapping: libcMap, Function: "__libc_start_call_main", Offset: 0x7a, Type: sdk.TypeFramePointer},
		{Addr: 0x1234, Type: sdk.TypeFramePointer},
	}
	// stackB: hash_block ← main, sharing main's frame with stackA.
	stackB = []sdk.Frame{
		{Addr: 0x55d556558010, Mapping: demoMap, Function: "hash_block", Offset: 0x10, Type: sdk.TypeRegs},
		{Addr: 0x55d556558300, Mapping: demoMap, Function: "main", Offset: 0x40, Type: sdk.TypeCFI},
	}
)

// sampleEv is a cpu-clock sample of task pid/tid "demo" with a 1 ms period.
func sampleEv(cookie uint64, tid int32, cpu int32, t uint64) sdk.Event {
	return sdk.Event{Kind: sdk.KindSample, Name: "cpu-clock", Time: t, CPU: cpu, PID: 100, TID: tid, Comm: "demo", Cookie: cookie, Period: 1001001}
}

func stackOf(cookie uint64, tid int32, t uint64, frames []sdk.Frame) sdk.Stack {
	return sdk.Stack{Cookie: cookie, PID: 100, TID: tid, Time: t, Frames: frames, End: sdk.EndOutermost}
}
