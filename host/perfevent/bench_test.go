package perfevent

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unwindd/unwindd/host/perfdata"
)

// BenchmarkRead reads records through ReadInto from a live target:
//
//   - cpu-clock: a CPU-bound target sampled at 999 Hz with 8 KiB stack
//     copies, perf record -F 999 --call-graph dwarf's load. The reader keeps
//     up, so records/s is the sampling rate; what counts is host-ns/record
//     (this process's CPU time per record) and B/sample (bytes read from the
//     rings per sample).
//   - sys_enter: a target calling getppid in a loop, every call a
//     raw_syscalls:sys_enter hit with an 8 KiB stack copy: more than the
//     reader can take, so records/s is what ReadInto delivers flat out, and
//     lost/record what the kernel had to drop meanwhile.
func BenchmarkRead(b *testing.B) {
	exe := buildProg(b)
	for _, c := range []struct {
		name, mode string
		opts       Options
	}{
		{"cpu-clock", "spin", Options{Frequency: 999}},
		{"sys_enter", "flood", Options{Tracepoints: []Tracepoint{{"raw_syscalls", "sys_enter", true}}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			cmd, _ := startProg(b, exe, c.mode)
			opts := c.opts
			opts.PID = cmd.Process.Pid
			s := openOrSkip(b, context.Background(), opts)
			var rec perfdata.Record
			var ru0, ru1 unix.Rusage
			unix.Getrusage(unix.RUSAGE_SELF, &ru0)
			start := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if err := s.ReadInto(&rec); err != nil {
					b.Fatal(err)
				}
			}
			wall := time.Since(start)
			unix.Getrusage(unix.RUSAGE_SELF, &ru1)
			st := s.Stats()
			cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
			n := float64(st.Records)
			b.ReportMetric(n/wall.Seconds(), "records/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/n, "host-ns/record")
			if samples := st.ByType[perfdata.RecordSample]; samples > 0 {
				b.ReportMetric(float64(st.BytesByType[perfdata.RecordSample])/float64(samples), "B/sample")
			}
			b.ReportMetric(float64(st.Lost)/n, "lost/record")
			b.ReportMetric(float64(st.Spilled)/n, "spilled/record")
			b.ReportMetric(float64(st.Waits)/n, "waits/record")
		})
	}
}
