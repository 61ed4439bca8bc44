package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/config"
	"github.com/unwindd/unwindd/host/pluginhost"
	"github.com/unwindd/unwindd/host/replay"
	"github.com/unwindd/unwindd/host/unwindinfo"
)

// perfPluginName is the default plugin's binary, looked for beside unwindd.
const perfPluginName = "unwindd-plugin-perf"

// progressMin is the file size from which a terminal gets progress.
const progressMin = 64 << 20

type replayOptions struct {
	out        string
	plugins    []string
	cpuprofile string
	unwind     string
	config     string
	summary    string
}

func newReplayCmd(a *app) *cobra.Command {
	var o replayOptions
	cmd := &cobra.Command{
		Use:   "replay [--config FILE] [--out DIR] [--unwind LIST] [--plugin PATH]... FILE",
		Short: "Replay a perf.data file through the host into the plugins",
		Long: `Replay a perf.data file (perf record's output) through the host: every
sample and tracepoint becomes an event in a kernel entry, every entry's user
stack is walked from the recorded registers and stack copy (perf record
--call-graph dwarf) or taken from the recorded callchain (perf record -g),
and the plugins get both, as they would live. unwindd exits when every
plugin has acknowledged everything, and prints a summary.

The plugins are those of the deployment --config names (a YAML file, see
configs/README.md), by default the embedded one (unwindd config default):
the perf plugin, ` + perfPluginName + `, found beside the unwindd executable.
--out and --unwind override the deployment's output and unwind keys.
--plugin replaces its plugins: each binary given gets the config "out: DIR".`,
		Example: `  perf record -e cpu-clock -F 999 --call-graph dwarf -o perf.data -- ./prog
  unwindd replay --out out perf.data`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("replay: give one perf.data file, got %d arguments", len(args))}
			}
			if o.out == "" {
				return usageError{errors.New("replay: --out must not be empty")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runReplay(cmd, a, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "deployment file (YAML); default: the embedded one")
	f.StringVar(&o.out, "out", "unwindd-out", "directory the plugins write their output to (default: the deployment's output)")
	f.StringArrayVar(&o.plugins, "plugin", nil, "a plugin binary to replay into instead of the perf plugin (repeatable)")
	f.StringVar(&o.unwind, "unwind", "sframe,cfi,fp", "unwind methods in priority order (sframe, cfi, fp), e.g. fp alone")
	f.StringVar(&o.summary, "summary-json", "", "also write the summary to this file, as JSON")
	f.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the replay to this file (for go tool pprof)")
	_ = f.MarkHidden("cpuprofile")
	return cmd
}

func runReplay(cmd *cobra.Command, a *app, o replayOptions, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if !st.Mode().IsRegular() && st.Mode()&fs.ModeNamedPipe == 0 {
		return fmt.Errorf("replay: %s is not a file", path)
	}
	specs, methods, err := replaySetup(cmd, a, &o)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	ro := replay.Options{Plugins: specs, Manager: pluginhost.Options{HostVersion: "unwindd"}, Unwind: methods}
	var prog *progress
	if st.Size() >= progressMin && isTerminal(a.stderr) {
		prog = &progress{w: a.stderr}
		ro.Progress = prog.update
	}
	if o.cpuprofile != "" {
		pf, err := os.Create(o.cpuprofile)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	sum, err := replay.Run(cmd.Context(), path, ro, a.log)
	prog.done()
	if sum != nil {
		writeSummary(a.stdout, fmt.Sprintf("replayed %s in %v", sum.File, sum.Duration.Round(time.Millisecond)), sum)
		err = errors.Join(err, writeSummaryJSON(o.summary, "replay", sum.File, "", sum))
		for _, p := range sum.Plugins {
			if p.State == pluginhost.StateFailed {
				err = errors.Join(err, fmt.Errorf("plugin %s failed: %w", p.Name, p.Err))
			}
		}
	}
	return err
}

// replaySetup reads the deployment (--config, or the embedded default) and
// applies the flags to it: --out and --unwind override its keys, --plugin
// replaces its plugins. It sets o.out to the output directory in effect.
func replaySetup(cmd *cobra.Command, a *app, o *replayOptions) ([]pluginhost.Spec, []x86_64.FrameType, error) {
	flags := cmd.Flags()
	if len(o.plugins) > 0 && o.config != "" {
		return nil, nil, usageError{errors.New("replay: --plugin replaces the deployment's plugins; give it or --config, not both")}
	}
	cfg := config.Default()
	if o.config != "" {
		var err error
		if cfg, err = config.Load(o.config); err != nil {
			return nil, nil, wrapConfigError(err)
		}
	}
	if err := a.logFromConfig(cmd, cfg.Log.Level, cfg.Log.Format); err != nil {
		return nil, nil, err
	}
	if flags.Changed("out") {
		cfg.Output = o.out
	}
	o.out = cfg.Output
	unwind := o.unwind
	if !flags.Changed("unwind") {
		var names []string
		for _, m := range cfg.Unwind {
			names = append(names, string(m))
		}
		unwind = strings.Join(names, ",")
	}
	methods, err := unwindinfo.ParseMethods(unwind)
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("replay: --unwind: %w", err)}
	}
	var specs []pluginhost.Spec
	if len(o.plugins) > 0 {
		specs, err = pluginSpecs(*o)
	} else {
		specs, err = deploymentSpecs(cfg)
	}
	return specs, methods, err
}

// pluginSpecs returns the plugins of --plugin, each with the config
// "out: DIR".
func pluginSpecs(o replayOptions) ([]pluginhost.Spec, error) {
	config := []byte("out: " + o.out + "\n")
	paths := o.plugins
	var specs []pluginhost.Spec
	seen := map[string]int{}
	for _, p := range paths {
		if st, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("replay: plugin: %w", err)
		} else if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			return nil, fmt.Errorf("replay: plugin %s is not an executable file", p)
		}
		name := strings.TrimPrefix(filepath.Base(p), "unwindd-plugin-")
		if seen[name]++; seen[name] > 1 {
			name = fmt.Sprintf("%s-%d", name, seen[name])
		}
		specs = append(specs, pluginhost.Spec{Name: name, Path: p, Config: config})
	}
	return specs, nil
}

func writeSummary(w io.Writer, title string, s *replay.Summary) {
	f, t := s.Feed, s.Tracker
	fmt.Fprintln(w, title)
	fmt.Fprintf(w, "  records  %d (samples %d, skipped %d)\n", f.Records, f.Samples, f.Skipped)
	var callbacks uint64
	for _, p := range s.Plugins {
		callbacks += p.Stacks + p.DroppedStacks
	}
	fmt.Fprintf(w, "  entries  %d (events %d, refused %d)\n", t.Entries, t.Events, t.Refused)
	fmt.Fprintf(w, "  unwinds  %d, callbacks %d (%d served from the entry's cache: one walk for every plugin that asked)\n", t.Unwinds, callbacks, cached(callbacks, t.Unwinds))
	fmt.Fprintf(w, "  tasks    %d (exited %d), mappings %d\n", t.Tasks, t.Exits, t.Mmaps)
	fmt.Fprintf(w, "  lost     %d records, %d events (%d entries ended early)\n", f.LostRecords, f.LostEvents, t.LostEnds)
	for _, p := range s.Plugins {
		fmt.Fprintf(w, "  plugin %s (%v): events %d, callbacks %d, refused %d, dropped %d events %d stacks, lost notices %d, batches %d acked %d\n",
			p.Name, p.State, p.Events, p.Stacks+p.DroppedStacks, p.RequestsRefused, p.DroppedEvents, p.DroppedStacks, p.LostNotices, p.Batches, p.Acked)
		if p.Mode == pluginhost.ModeDecide {
			fmt.Fprintf(w, "    decide: %d calls, %d timeouts, %d errors\n", p.DecideCalls, p.DecideTimeouts, p.DecideErrors)
		}
		if p.Err != nil {
			fmt.Fprintf(w, "    error: %v\n", p.Err)
		}
	}
}

// cached is how many of the callbacks did not walk a stack: every callback
// past the first of an entry was served from the entry's trace cache.
func cached(callbacks, unwinds uint64) uint64 {
	if callbacks < unwinds {
		return 0
	}
	return callbacks - unwinds
}
