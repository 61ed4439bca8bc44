package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/unwindd/unwindd/configs"
	"github.com/unwindd/unwindd/host/deferred"
)

// Limits of a deployment.
const (
	// MaxPlugins is how many plugins a deployment may start: one tracer bit
	// of the deferred engine each.
	MaxPlugins = deferred.MaxTracers
	// MaxSize is the largest deployment file Parse and Load accept, in
	// bytes.
	MaxSize = 1 << 20
)

// SourceKind names the live source of a deployment.
type SourceKind string

// The sources.
const (
	SourcePerf   SourceKind = "perf"   // perf_event_open: samples, tracepoints, user stack copies
	SourcePtrace SourceKind = "ptrace" // ptrace: syscall stops, periodic interrupts, live memory
)

// Method names an unwind method.
type Method string

// The unwind methods.
const (
	MethodSFrame Method = "sframe" // the .sframe section
	MethodCFI    Method = "cfi"    // DWARF call frame information from .eh_frame
	MethodFP     Method = "fp"     // frame pointers
)

// Config is one deployment: the source, the unwinder, the logs, the output
// directory and the plugins. [Parse] fills every field, applying the
// documented default of each key the file leaves out; see configs/README.md
// for the keys.
//
// A Config is plain data once parsed: callers may change fields (e.g. Output
// from --out) before calling [Config.Specs]. It keeps the file's text and
// syntax tree for [Config.PluginProblem], and is not safe for concurrent
// modification.
type Config struct {
	// File is the name the deployment was parsed under; it prefixes every
	// problem.
	File string
	// Output is the directory the plugins write to (key output), as written:
	// a relative path is relative to unwindd's working directory. Built-in
	// plugins get it as their config's out key unless they set one.
	Output  string
	Log     Log      // key log
	Source  Source   // key source
	Unwind  []Method // key unwind: the methods, in the order they are tried
	Plugins []Plugin // key plugins: at least one, at most MaxPlugins, names unique

	dir string // relative plugin paths are relative to it
	doc *docInfo
}

// Log is the key log.
type Log struct {
	Level  string // debug, info, warn or error (zap's level names)
	Format string // console or json
}

// Source is the key source: which live source runs, and the settings of
// each (only the chosen one's are used).
type Source struct {
	Kind   SourceKind
	Perf   PerfSource
	Ptrace PtraceSource
}

// PerfSource is the key source.perf.
type PerfSource struct {
	// Frequency is the cpu-clock sampling rate per task, in Hz, used when
	// some plugin subscribes to cpu-clock samples.
	Frequency int
	// StackSize is the bytes of user stack copied per sample
	// (PERF_SAMPLE_STACK_USER): a multiple of 8, at most 65528.
	StackSize int
	// Events are tracepoints ("group:name") the source opens in addition to
	// those the plugins subscribe to.
	Events []string
}

// PtraceSource is the key source.ptrace.
type PtraceSource struct {
	// Frequency is the rate of periodic samples (PTRACE_INTERRUPT) per
	// task, in Hz, used when some plugin subscribes to cpu-clock samples.
	Frequency int
}

// Plugin is one entry of the key plugins: how to start a tracer plugin.
// [Config.Specs] turns it into a [pluginhost.Spec].
type Plugin struct {
	Name string // unique in the deployment; [a-z0-9_-]+
	// Path is the binary as written: a bare name (no "/") is a built-in
	// plugin, see [Plugin.Builtin]; any other path is a file, relative to
	// the deployment file's directory unless absolute.
	Path   string
	SHA256 string   // "" or 64 lowercase hex digits
	User   string   // "" or a user name or numeric id
	Group  string   // "" or a group name or numeric id
	Args   []string // the arguments after the program name
	Env    []string // "KEY=value", in the file's order
	// Outbox bounds the items waiting to be sent to the plugin.
	Outbox int
	// DecideDeadline bounds each of the plugin's decisions (request mode
	// decide).
	DecideDeadline time.Duration
	// Config is the plugin's config block re-serialized as YAML, or nil if
	// the entry has no config key (or a null one). Comments, anchors and
	// the original layout are gone; keys keep their order.
	Config []byte

	src pluginSrc
}

// pluginSrc is where a plugin entry's parts are in the file.
type pluginSrc struct {
	entry      pos      // the entry (its first key, or its "-")
	name, path pos      // the values of name and path
	user       pos      // the value of user
	group      pos      // the value of group
	configKey  pos      // the config key; zero if absent
	config     ast.Node // the config value; nil if absent
}

// builtinPrefix is the file name prefix of a built-in plugin's binary.
const builtinPrefix = "unwindd-plugin-"

// Builtin reports whether p names a built-in plugin: a Path without "/",
// which resolves to the executable "unwindd-plugin-<Path>" in the directory
// of built-in plugins (normally the one holding unwindd, see
// [ExecutableDir]).
func (p *Plugin) Builtin() bool {
	return !strings.Contains(p.Path, "/")
}

// BinaryPath returns the file p runs: for a built-in plugin,
// builtinDir/unwindd-plugin-<Path>; otherwise Path, joined to the directory
// of the deployment file if relative.
func (c *Config) BinaryPath(p *Plugin, builtinDir string) string {
	switch {
	case p.Builtin():
		return filepath.Join(builtinDir, builtinPrefix+p.Path)
	case filepath.IsAbs(p.Path):
		return filepath.Clean(p.Path)
	default:
		return filepath.Join(c.dir, p.Path)
	}
}

// ExecutableDir returns the directory of the running executable, with
// symbolic links resolved: where `make install` puts the built-in plugins
// beside unwindd.
func ExecutableDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("config: find the built-in plugins: %w", err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return filepath.Dir(exe), nil
}

// Load reads and parses the deployment file at path (see [Parse]); relative
// plugin paths in it are relative to path's directory. A file that cannot
// be read yields that error, wrapped; a bad one an [*Error].
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse decodes one deployment from data, named name in its problems, and
// checks it against the schema: unknown keys (anywhere but inside a
// plugin's config block), wrong types, bad values, missing required keys,
// duplicate plugin names and too many plugins are problems, each at its
// line and column. It returns an [*Error] holding every problem found (up
// to [MaxProblems]), or the Config with every default applied. Relative
// plugin paths are relative to name's directory.
//
// Parse touches no file: [Config.Specs] checks the plugin binaries, users
// and groups.
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, filepath.Dir(name), data)
}

// Default returns the embedded default deployment (configs/default.yaml),
// parsed. Each call returns a new Config. It panics if the embedded file is
// invalid, which the package's tests rule out.
func Default() *Config {
	c, err := parse(configs.DefaultName, ".", configs.Default())
	if err != nil {
		panic("config: the embedded default deployment is invalid:\n" + err.Error())
	}
	return c
}
