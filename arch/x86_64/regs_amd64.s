// Test support for oracle_test.go, which declares callerRegs.

#include "textflag.h"

// func callerRegs() (ip, sp, bp uint64)
//
// callerRegs returns its caller's registers as they are once it returns: ip
// is the return address, sp the caller's stack pointer just above it, bp the
// caller's frame pointer. It has no frame and leaves BP alone.
TEXT ·callerRegs(SB), NOSPLIT|NOFRAME, $0-24
	MOVQ	0(SP), AX
	MOVQ	AX, ip+0(FP)
	LEAQ	8(SP), AX
	MOVQ	AX, sp+8(FP)
	MOVQ	BP, bp+16(FP)
	RET
