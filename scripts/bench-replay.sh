#!/usr/bin/env bash
# bench-replay: `unwindd replay` beside `perf script` on the same perf.data
# files, in the same run (make bench-replay).
#
# Records the demo twice with DWARF stack snapshots (8 KiB stacks): a small
# file (~100 samples) and a large one (>= 50,000 samples, a few hundred MB),
# then times each tool on each file REPS times (median), wall time and peak
# RSS by /usr/bin/time. Steady-state throughput is counted the same way for
# both tools: (N_large - N_small) / (t_large - t_small), so neither side's
# start-up (the plugin launch, perf's init) decides the ratio; the start-up
# is the time on the small file.
#
#   REPS=3        measurements per file and tool (the median is taken)
#   LARGE_MS=3500 how long the demo runs for the large file
#   KEEP=1        keep the recordings and outputs (in BENCH_DIR)
#   BENCH_DIR     where they go (default /tmp/unwindd-bench-replay)
#   DEMO          the program recorded (default bin/demo; make
#                 bench-replay-nofp gives bin/demo-nofp)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
REPS=${REPS:-3}
LARGE_MS=${LARGE_MS:-3500}
MIN_SAMPLES=50000
DIR=${BENCH_DIR:-/tmp/unwindd-bench-replay}
UNWINDD=$ROOT/bin/unwindd
DEMO=${DEMO:-$ROOT/bin/demo}

make -s build "${DEMO#"$ROOT"/}"
if [ ! -x /usr/bin/time ]; then
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time
fi

rm -rf "$DIR"
mkdir -p "$DIR"
cleanup() { [ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"; }
trap cleanup EXIT

# samples FILE: the file's sample count, as perf counts it.
samples() {
	perf report -i "$1" --stats 2>/dev/null | awk '/SAMPLE events:/ { print $3; exit }'
}

SMALL_REC=(perf record -q -e cpu-clock -F 999 --call-graph dwarf,8192 -o "$DIR/small.data" -- "$DEMO" 50)
echo "== ${SMALL_REC[*]}"
"${SMALL_REC[@]}" >/dev/null
# The large file: the demo's samples depend on the CPU it gets (and perf
# drops some when it cannot keep up), so a short recording is made again,
# longer, up to three times.
declare -A N SIZE
for try in 1 2 3; do
	LARGE_REC=(perf record -q -m 8M -e cpu-clock -F 10000 --call-graph dwarf,8192 -o "$DIR/large.data" -- "$DEMO" "$LARGE_MS")
	echo "== ${LARGE_REC[*]}"
	"${LARGE_REC[@]}" >/dev/null
	N[large]=$(samples "$DIR/large.data")
	[ "${N[large]}" -ge "$MIN_SAMPLES" ] && break
	echo "   ${N[large]} samples, fewer than $MIN_SAMPLES: again, longer"
	LARGE_MS=$((LARGE_MS * (MIN_SAMPLES * 11 / 10) / (N[large] + 1) + 1))
done
rm -f "$DIR/large.data.old"
N[small]=$(samples "$DIR/small.data")
for f in small large; do
	SIZE[$f]=$(stat -c %s "$DIR/$f.data")
done
echo "small: ${N[small]} samples, $((SIZE[small] >> 20)) MiB; large: ${N[large]} samples, $((SIZE[large] >> 20)) MiB"
if [ "${N[large]}" -lt "$MIN_SAMPLES" ]; then
	echo "bench-replay: the large file has ${N[large]} samples, fewer than $MIN_SAMPLES; raise LARGE_MS" >&2
	exit 1
fi

# measure NAME CMD...: runs CMD once (stdout to /dev/null), appends
# "wall-seconds peak-RSS-KiB" to $DIR/NAME.times.
measure() {
	local name=$1
	shift
	local t=$DIR/$name.time1
	if ! /usr/bin/time -o "$t" -f '%e %M' "$@" >/dev/null 2>"$DIR/$name.stderr"; then
		echo "bench-replay: $* failed:" >&2
		cat "$DIR/$name.stderr" >&2
		exit 1
	fi
	tail -n 1 "$t" >>"$DIR/$name.times"
}

# median NAME COLUMN: the median of a column of $DIR/NAME.times.
median() {
	sort -n -k "$2" "$DIR/$1.times" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}

echo "== timing, $REPS runs each (interleaved):"
for f in small large; do
	echo "   perf script -i $DIR/$f.data > /dev/null"
	echo "   $UNWINDD replay --out $DIR/out-$f $DIR/$f.data > /dev/null"
done
for ((i = 1; i <= REPS; i++)); do
	for f in small large; do
		measure "perf-$f" perf script -i "$DIR/$f.data"
		measure "unwindd-$f" "$UNWINDD" replay --out "$DIR/out-$f" "$DIR/$f.data"
	done
done

declare -A T RSS
for tool in perf unwindd; do
	for f in small large; do
		T[$tool-$f]=$(median "$tool-$f" 1)
		RSS[$tool-$f]=$(median "$tool-$f" 2)
	done
done

# rate TOOL: steady-state samples/s.
rate() {
	awk -v nl="${N[large]}" -v ns="${N[small]}" -v tl="${T[$1-large]}" -v ts="${T[$1-small]}" \
		'BEGIN { d = tl - ts; if (d <= 0) d = 0.01; printf "%.0f", (nl - ns) / d }'
}
R_PERF=$(rate perf)
R_UNWINDD=$(rate unwindd)
RATIO=$(awk -v a="$R_UNWINDD" -v b="$R_PERF" 'BEGIN { printf "%.1f", a / b }')

echo
echo "files: small ${N[small]} samples ($((SIZE[small] >> 20)) MiB), large ${N[large]} samples ($((SIZE[large] >> 20)) MiB); medians of $REPS"
printf '%-16s %12s %12s %16s %14s %14s\n' tool "start-up s" "large s" "steady samples/s" "RSS small MiB" "RSS large MiB"
for tool in perf unwindd; do
	label=$tool
	[ "$tool" = perf ] && label="perf script"
	[ "$tool" = unwindd ] && label="unwindd replay"
	r=$R_PERF
	[ "$tool" = unwindd ] && r=$R_UNWINDD
	printf '%-16s %12s %12s %16s %14d %14d\n' "$label" "${T[$tool-small]}" "${T[$tool-large]}" "$r" \
		$((RSS[$tool-small] / 1024)) $((RSS[$tool-large] / 1024))
done
echo "ratio (unwindd replay / perf script, steady-state samples/s): ${RATIO}x (target >= 10x)"
