#!/usr/bin/env bash
# bench-live: `unwindd run` beside its anchors on live programs, in the same
# run (make bench-live); issue 6's speed section.
#
# 1. The perf source: a CPU-bound C program (THREADS threads, each through
#    a call chain, a fixed amount of WORK, not a fixed time, so that tracing
#    shows as extra wall time) run bare, under `unwindd run` with the perf
#    plugin alone at 999 Hz, and under `perf record -F 999 --call-graph
#    dwarf`. Overhead is t - t_bare; the target is overhead(unwindd) <=
#    overhead(perf record). Host CPU per sample is the tool's CPU time
#    (user+sys of the whole tree, by /usr/bin/time, less the program's own,
#    which it prints from getrusage): for unwindd, unwindd and its plugin.
# 2. The ptrace source: a C program making SYSCALLS getppid calls, bare,
#    under `unwindd run --source ptrace` with the ftrace plugin (syscalls:
#    [getppid], a stack for every entry; and, NOSTACKS=1, with a comm filter
#    no task matches: every event, no stack), under `strace -f -o /dev/null`
#    and `strace -f -k -o /dev/null`; ns per syscall above bare. Targets:
#    unwindd <= 0.5x strace -k and <= 1.5x strace.
#
# Every command runs REPS times, interleaved; the medians are taken.
#
#   REPS=3          measurements per command (the median is taken)
#   WORK=800000     iterations per thread of the CPU-bound program (~2 s of
#                   CPU per thread here)
#   THREADS=4       its threads
#   SYSCALLS=20000  getppid calls of the syscall-heavy program (200000 is
#                   the issue's figure; on this 2-CPU VM strace -k alone then
#                   takes ~3 min a run, so the default is 10x smaller: the
#                   costs are per syscall)
#   NOSTACKS=1      also the ptrace run where no plugin wants stacks (0: not)
#   KEEP=1          keep the programs, recordings and outputs (in BENCH_DIR)
#   BENCH_DIR       where they go (default /tmp/unwindd-bench-live)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
REPS=${REPS:-3}
WORK=${WORK:-800000}
THREADS=${THREADS:-4}
SYSCALLS=${SYSCALLS:-20000}
NOSTACKS=${NOSTACKS:-1}
HZ=999
DIR=${BENCH_DIR:-/tmp/unwindd-bench-live}
UNWINDD=$ROOT/bin/unwindd

make -s build
if [ ! -x /usr/bin/time ]; then
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time
fi
for t in gcc perf strace; do
	command -v $t >/dev/null || { echo "bench-live: no $t (make deps installs it)" >&2; exit 1; }
done

rm -rf "$DIR"
mkdir -p "$DIR"
cleanup() { [ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"; }
trap cleanup EXIT

# The CPU-bound program: THREADS threads, each WORK times through
# c1 → c2 → c3 → leaf (1000 dependent multiply-adds); at its end it prints
# its own CPU time to stderr ("spin-cpu SECONDS").
cat >"$DIR/spin.c" <<'EOF'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
static long work;
__attribute__((noinline)) unsigned long leaf(unsigned long x) {
	for (int i = 0; i < 1000; i++) x = x * 6364136223846793005UL + 1442695040888963407UL;
	return x;
}
__attribute__((noinline)) unsigned long c3(unsigned long x) { return leaf(x) ^ 3; }
__attribute__((noinline)) unsigned long c2(unsigned long x) { return c3(x) + 2; }
__attribute__((noinline)) unsigned long c1(unsigned long x) { return c2(x) ^ 1; }
static void *worker(void *arg) {
	unsigned long x = (unsigned long)arg;
	for (long i = 0; i < work; i++) x = c1(x);
	return (void *)x;
}
int main(int argc, char **argv) {
	work = atol(argv[1]);
	int n = atoi(argv[2]);
	if (n < 1 || n > 64) return 2;
	pthread_t t[64];
	for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, worker, (void *)(long)(i + 1));
	unsigned long s = 0;
	for (int i = 0; i < n; i++) { void *r; pthread_join(t[i], &r); s ^= (unsigned long)r; }
	printf("%lx\n", s);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	fprintf(stderr, "spin-cpu %.3f\n", ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	return 0;
}
EOF
# The syscall-heavy program: argv[1] getppid calls from main → loop.
cat >"$DIR/getppid.c" <<'EOF'
#include <stdlib.h>
#include <unistd.h>
__attribute__((noinline)) void loop(long n) { for (long i = 0; i < n; i++) getppid(); }
int main(int argc, char **argv) { loop(atol(argv[1])); return 0; }
EOF
gcc -O2 -g -fno-omit-frame-pointer -pthread -o "$DIR/spin" "$DIR/spin.c"
gcc -O0 -g -fno-omit-frame-pointer -o "$DIR/getppid" "$DIR/getppid.c"

# The deployments: the perf plugin alone at 999 Hz on the perf source; the
# ftrace plugin on getppid on the ptrace source (with a comm no task has:
# every event written, no stack requested).
cat >"$DIR/perf.yaml" <<EOF
source:
  kind: perf
  perf:
    frequency: $HZ
    stack_size: 8192
plugins:
  - name: perf
    path: $ROOT/bin/unwindd-plugin-perf
    config:
      hz: $HZ
      out: $DIR/out-perf
EOF
for v in stacks nostacks; do
	cat >"$DIR/ftrace-$v.yaml" <<EOF
source:
  kind: ptrace
plugins:
  - name: ftrace
    path: $ROOT/bin/unwindd-plugin-ftrace
    config:
      out: $DIR/out-$v
      syscalls: [getppid]
EOF
done
echo "      comm: [no-such-task]" >>"$DIR/ftrace-nostacks.yaml"

# measure NAME CMD...: runs CMD once, appends "wall-s cpu-s rss-KiB
# samples target-cpu-s" to $DIR/NAME.times: wall by date (ms; /usr/bin/time
# has 10 ms), user+sys and peak RSS by /usr/bin/time; samples from unwindd's summary ("samples N") or, for
# perf record, perf report --stats; target-cpu the CPU program's own.
measure() {
	local name=$1
	shift
	local t=$DIR/$name.time1 out=$DIR/$name.stdout err=$DIR/$name.stderr
	local t0 t1
	t0=$(date +%s%N)
	if ! /usr/bin/time -o "$t" -f '%e %U %S %M' "$@" >"$out" 2>"$err"; then
		echo "bench-live: $* failed:" >&2
		cat "$err" >&2
		exit 1
	fi
	t1=$(date +%s%N)
	local n=0 cpu=0
	case $name in
	unwindd-*) n=$(sed -n 's/.*(samples \([0-9]*\),.*/\1/p' "$out" | head -n 1) ;;
	perf-rec) n=$(perf report -i "$DIR/perf.data" --stats 2>/dev/null | awk '/SAMPLE events:/ { print $3; exit }') ;;
	esac
	cpu=$(awk '/^spin-cpu / { print $2; exit }' "$err")
	tail -n 1 "$t" | awk -v w=$(((t1 - t0) / 1000000)) -v n="${n:-0}" -v c="${cpu:-0}" '{ printf "%.3f %.2f %s %s %s\n", w / 1000, $2 + $3, $4, n, c }' >>"$DIR/$name.times"
}

# median NAME COLUMN: the median of a column of $DIR/NAME.times.
median() {
	sort -g -k "$2" "$DIR/$1.times" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}

SPIN=("$DIR/spin" "$WORK" "$THREADS")
GETPPID=("$DIR/getppid" "$SYSCALLS")
UNWINDD_PERF=("$UNWINDD" run --log-level warn --out "$DIR/out-perf" --config "$DIR/perf.yaml" -- "${SPIN[@]}")
PERF_REC=(perf record -q -F $HZ --call-graph dwarf -o "$DIR/perf.data" -- "${SPIN[@]}")
UNWINDD_PT=("$UNWINDD" run --log-level warn --source ptrace --out "$DIR/out-stacks" --config "$DIR/ftrace-stacks.yaml" -- "${GETPPID[@]}")
UNWINDD_PT0=("$UNWINDD" run --log-level warn --source ptrace --out "$DIR/out-nostacks" --config "$DIR/ftrace-nostacks.yaml" -- "${GETPPID[@]}")
STRACE=(strace -f -o /dev/null -- "${GETPPID[@]}")
STRACE_K=(strace -f -k -o /dev/null -- "${GETPPID[@]}")

echo "== timing, $REPS runs each (interleaved):"
printf '   %s\n' "${SPIN[*]}" "${UNWINDD_PERF[*]}" "${PERF_REC[*]}" "${GETPPID[*]}" "${UNWINDD_PT[*]}"
[ "$NOSTACKS" = 1 ] && printf '   %s\n' "${UNWINDD_PT0[*]}"
printf '   %s\n' "${STRACE[*]}" "${STRACE_K[*]}"
for ((i = 1; i <= REPS; i++)); do
	echo "   run $i of $REPS"
	measure bare-spin "${SPIN[@]}"
	measure unwindd-perf "${UNWINDD_PERF[@]}"
	measure perf-rec "${PERF_REC[@]}"
	measure bare-getppid "${GETPPID[@]}"
	measure unwindd-ptrace "${UNWINDD_PT[@]}"
	[ "$NOSTACKS" = 1 ] && measure unwindd-ptrace0 "${UNWINDD_PT0[@]}"
	measure strace "${STRACE[@]}"
	measure strace-k "${STRACE_K[@]}"
done
# perf.data of the last perf record run, and that run's samples.
PERF_FILE_BYTES=$(stat -c %s "$DIR/perf.data")
PERF_FILE_SAMPLES=$(tail -n 1 "$DIR/perf-rec.times" | awk '{ print $4 }')

NAMES=(bare-spin unwindd-perf perf-rec bare-getppid unwindd-ptrace strace strace-k)
[ "$NOSTACKS" = 1 ] && NAMES+=(unwindd-ptrace0)
declare -A T CPU RSS N TCPU
for n in "${NAMES[@]}"; do
	T[$n]=$(median "$n" 1)
	CPU[$n]=$(median "$n" 2)
	RSS[$n]=$(median "$n" 3)
	N[$n]=$(median "$n" 4)
	TCPU[$n]=$(median "$n" 5)
done

# The program's CPU time is subtracted run by run (then the median), so
# that a run's host CPU is not mixed with another run's program.
hostcpu() {
	awk '{ print $2 - $5 }' "$DIR/$1.times" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", v[int((NR + 1) / 2)] }'
}
# A sample record as the perf source asks for it (the same as perf record
# --call-graph dwarf): header 8, identifier, ip, tid, time, id, cpu, period
# 7x8; user regs abi 8 + 20x8 (mask 0xff0fff); user stack size 8 + 8192 +
# dyn_size 8: 8440 bytes, perf record's records' size too (0x20f8 in perf
# report -D).
SAMPLE_BYTES=$((8 + 7 * 8 + 8 + 20 * 8 + 8 + 8192 + 8))

echo
echo "1. perf source: $THREADS threads x $WORK iterations (CPU-bound), $HZ Hz, 8 KiB stacks; medians of $REPS"
printf '%-22s %8s %10s %9s %10s %15s %8s\n' "" "wall s" "overhead s" "samples" "host CPU s" "host CPU/sample" "RSS MiB"
printf '%-22s %8s %10s %9s %10s %15s %8d\n' "bare" "${T[bare-spin]}" "-" "-" "-" "-" $((RSS[bare-spin] / 1024))
for n in unwindd-perf perf-rec; do
	label="unwindd run"
	[ "$n" = perf-rec ] && label="perf record"
	ov=$(awk -v a="${T[$n]}" -v b="${T[bare-spin]}" 'BEGIN { printf "%.3f", a - b }')
	hc=$(hostcpu "$n")
	per=$(awk -v c="$hc" -v s="${N[$n]}" 'BEGIN { if (s > 0) printf "%.1f us", c / s * 1e6; else print "-" }')
	printf '%-22s %8s %10s %9s %10s %15s %8d\n' "$label" "${T[$n]}" "$ov" "${N[$n]}" "$hc" "$per" $((RSS[$n] / 1024))
done
OV_U=$(awk -v a="${T[unwindd-perf]}" -v b="${T[bare-spin]}" 'BEGIN { print a - b }')
OV_P=$(awk -v a="${T[perf-rec]}" -v b="${T[bare-spin]}" 'BEGIN { print a - b }')
RATIO1=$(awk -v u="$OV_U" -v p="$OV_P" 'BEGIN { if (p <= 0.005) print "n/a (perf record shows no overhead)"; else printf "%.2fx", u / p }')
echo "ratio (overhead unwindd run / overhead perf record): $RATIO1 (target <= 1)"
echo "bytes read from the rings per sample: not counted by unwindd's summary (perfevent.Stats.Bytes is"
echo "  not printed); estimate from the record layout: $SAMPLE_BYTES B/sample (64 fields + 168 regs + 8208 stack),"
echo "  $(awk -v s="${N[unwindd-perf]}" -v b=$SAMPLE_BYTES 'BEGIN { printf "%.1f MiB", s * b / 1048576 }') for ${N[unwindd-perf]} samples;" \
	"perf record's perf.data (last run): $(awk -v f="$PERF_FILE_BYTES" -v s="$PERF_FILE_SAMPLES" 'BEGIN { printf "%.0f B/sample", f / s }') (other records included)"

echo
echo "2. ptrace source: $SYSCALLS getppid calls; ns per syscall above bare; medians of $REPS"
printf '%-34s %8s %10s %10s %8s\n' "" "wall s" "CPU s" "ns/syscall" "RSS MiB"
nsper() { awk -v a="${T[$1]}" -v b="${T[bare-getppid]}" -v n="$SYSCALLS" 'BEGIN { printf "%.0f", (a - b) / n * 1e9 }'; }
printf '%-34s %8s %10s %10s %8d\n' "bare" "${T[bare-getppid]}" "${CPU[bare-getppid]}" \
	"$(awk -v a="${T[bare-getppid]}" -v n="$SYSCALLS" 'BEGIN { printf "%.0f", a / n * 1e9 }') (all)" $((RSS[bare-getppid] / 1024))
rows=(unwindd-ptrace)
[ "$NOSTACKS" = 1 ] && rows+=(unwindd-ptrace0)
rows+=(strace strace-k)
declare -A NS
for n in "${rows[@]}"; do
	case $n in
	unwindd-ptrace) label="unwindd run (ftrace, stacks)" ;;
	unwindd-ptrace0) label="unwindd run (ftrace, no stacks)" ;;
	strace) label="strace -f -o /dev/null" ;;
	strace-k) label="strace -f -k -o /dev/null" ;;
	esac
	NS[$n]=$(nsper "$n")
	printf '%-34s %8s %10s %10s %8d\n' "$label" "${T[$n]}" "${CPU[$n]}" "${NS[$n]}" $((RSS[$n] / 1024))
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) print "n/a"; else printf "%.2fx", a / b }'; }
echo "ratio (unwindd run, stacks / strace -k): $(ratio "${NS[unwindd-ptrace]}" "${NS[strace-k]}") (target <= 0.5)"
echo "ratio (unwindd run, stacks / strace):    $(ratio "${NS[unwindd-ptrace]}" "${NS[strace]}") (target <= 1.5)"
if [ "$NOSTACKS" = 1 ]; then
	echo "ratio (unwindd run, no stacks / strace): $(ratio "${NS[unwindd-ptrace0]}" "${NS[strace]}")"
fi
