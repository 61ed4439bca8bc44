// Package x86_64 holds what unwindd knows about x86-64 user space: the
// perf register layout (PERF_REG_X86_*), compat (32-bit) task detection and
// the user-stack unwinder.
//
// The unwinder takes user registers ([Regs]: ip, sp, bp) and a [Memory] that
// reads user memory at virtual addresses: a [Snapshot] of stack bytes copied
// at a base address (perf's PERF_SAMPLE_STACK_USER) or a live task read
// through process_vm_readv ([ProcessMemory]). It walks frame by frame, trying
// each [Stepper] in priority order for every frame (SEMANTICS U3: SFrame, then
// CFI, then frame pointers; the first that steps wins the frame), and writes a
// [Trace]: the addresses, the [FrameType] that produced each one, and the
// [EndReason] the walk stopped for (U5). Only the frame-pointer rule exists so
// far ([FramePointer], the kernel's unwind_user_next_fp, U1–U4); further
// steppers plug in without touching the walk loop.
//
// Every walk is bounded: a step must move sp strictly up the stack, and the
// trace stops at [Unwinder] MaxDepth frames (511 by default, the kernel's
// cache size, R15). Garbage registers or memory end the walk with a reason;
// they never panic and never loop. Unreadable memory is kept apart from a zero
// word: a failed read is an end reason, never a value.
//
// An [Unwinder] is immutable after [New] and safe for concurrent use; a
// [Trace] is not, and is meant to be reused across walks so that a walk
// allocates nothing.
package x86_64
