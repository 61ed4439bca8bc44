/* Test program for the sframe package: functions whose SFrame rows cover
   the cases an unwinder meets. Built with -O2 -fomit-frame-pointer. */
#include <alloca.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline, noclone))

volatile int sink;

/* A leaf: one row, CFA = sp+8. */
NOINLINE int leaf(int x) { return x * 3 + 1; }

/* Pushes callee-saved registers: CFA offset changes row by row. */
NOINLINE int pushes(int a, int b, int c) {
	int r = 0;
	for (int i = 0; i < a; i++)
		r += leaf(i + b) * leaf(c - i);
	return r;
}

/* A variable-length array: gcc sets up rbp, the CFA is bp-based and the
   caller's bp is saved at CFA-16. */
NOINLINE int vla(int n) {
	char buf[n];
	memset(buf, n, n);
	sink = buf[n / 2];
	return buf[0] + pushes(n, 1, 2);
}

/* alloca: the same, through another path. */
NOINLINE int use_alloca(int n) {
	char *p = alloca(n);
	memset(p, 1, n);
	return p[n - 1] + vla(n);
}

/* A large frame: CFA offsets need 2 bytes. */
NOINLINE int big_frame(int n) {
	volatile char buf[4000];
	for (int i = 0; i < n && i < 4000; i++)
		buf[i] = i;
	return buf[n % 4000] + use_alloca(n);
}

/* A huge frame: CFA offsets need 4 bytes. */
NOINLINE int huge_frame(int n) {
	volatile char buf[70000];
	for (int i = 0; i < n && i < 70000; i++)
		buf[i] = i;
	return buf[n % 70000] + big_frame(n);
}

/* A stack-realigning function: gcc uses a DRAP register (r10) and the CFA is
   *(bp-8) while the frame is set up; SFrame v1/v2 skip it, v3 describes it
   with a flexible FDE. */
NOINLINE int realign(int n) {
	char buf[n];
	int x __attribute__((aligned(64))) = n;
	memset(buf, 0, n);
	sink = x;
	return buf[0] + huge_frame(n) + *(volatile int *)&x;
}

/* A long function: FRE start offsets need 2 bytes. */
NOINLINE int long_func(int n) {
	int r = 0;
#define STEP(k) r += leaf(n + k) ^ pushes(n, k, r);
#define STEP8(k) STEP(k) STEP(k + 1) STEP(k + 2) STEP(k + 3) STEP(k + 4) STEP(k + 5) STEP(k + 6) STEP(k + 7)
	STEP8(0) STEP8(8) STEP8(16) STEP8(24)
	if (r == 12345) {
		char *p = malloc(n);
		r += realign(n) + (p != NULL);
		free(p);
	}
	return r;
}

/* The outermost frame: .cfi_undefined rip, as _start has. Never called. */
__asm__(".text\n"
	".globl outermost\n"
	".type outermost, @function\n"
	"outermost:\n"
	".cfi_startproc\n"
	".cfi_undefined rip\n"
	"xor %ebp, %ebp\n"
	"call long_func\n"
	"hlt\n"
	".cfi_endproc\n"
	".size outermost, .-outermost\n");

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 16;
	printf("%d\n", long_func(n));
	puts(getenv("HOME") ? "home" : "none");
	return realign(n) & 1;
}

/* Hand-written CFI that only SFrame v3 can describe (gas 2.40/2.44 skip
   these FDEs with a warning): a CFA in r10 (a DRAP register) with bp saved
   relative to the CFA ... */
__asm__(".text\n"
	".globl flexfp\n"
	".type flexfp, @function\n"
	"flexfp:\n"
	".cfi_startproc\n"
	"lea 8(%rsp), %r10\n"
	".cfi_def_cfa %r10, 0\n"
	"push %rbp\n"
	".cfi_offset %rbp, -16\n"
	"nop\n"
	".cfi_def_cfa %rsp, 16\n"
	"pop %rbp\n"
	".cfi_def_cfa_offset 8\n"
	".cfi_restore %rbp\n"
	"ret\n"
	".cfi_endproc\n"
	".size flexfp, .-flexfp\n");

/* ... and a signal frame (v3 marks its FDE with the signal bit). */
__asm__(".text\n"
	".globl sigtramp\n"
	".type sigtramp, @function\n"
	"sigtramp:\n"
	".cfi_startproc\n"
	".cfi_signal_frame\n"
	".cfi_def_cfa %rsp, 160\n"
	".cfi_offset %rbp, -40\n"
	"nop\n"
	"nop\n"
	"ret\n"
	".cfi_endproc\n"
	".size sigtramp, .-sigtramp\n");
