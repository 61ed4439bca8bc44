// Package config reads unwindd deployments: YAML files that say which live
// source runs (perf or ptrace, and its settings), which unwind methods are
// tried, how the host logs, where outputs go, and which tracer plugins are
// started with what. It exists so that a deployment written by hand gets
// every mistake reported at its file, line and column before anything is
// traced; the runtime packages never import it, they take the Options and
// Specs built from it.
//
// [Load] and [Parse] decode one deployment strictly and apply the
// documented defaults; [Default] is the embedded configs/default.yaml, what
// `unwindd run` uses without --config. [Config.Specs] checks what depends on
// the machine (plugin binaries, users, groups) and turns each plugin into a
// [pluginhost.Spec], its config block re-serialized as YAML bytes. The
// schema, with every key's type, default and meaning, is in
// configs/README.md.
//
// # Errors
//
// Everything wrong with a file is reported at once, as an [*Error] listing
// up to [MaxProblems] [Problem]s in the order of the file, each printed as
//
//	deploy.yaml:12:13: plugins[1].outbox: want a positive integer (at most 1048576), got "big"
//
// (line and column are 1-based, columns count characters).
// [Error.Annotated] adds each source line with a caret under the column.
// Unknown keys, wrong types, values out of range or not among the allowed
// ones, missing required keys, duplicate plugin names, more than
// [MaxPlugins] plugins, YAML syntax errors, and (from Specs) missing or
// non-executable plugin binaries and unknown users or groups are problems.
// A plugin's config block is free-form here: the plugin validates it,
// [Config.PluginProblem] maps the field a plugin rejects back to its line,
// and [Config.NewError] makes an *Error of such problems.
//
// # Security
//
// Deployment files are trusted to name the binaries the host runs, but
// their parsing is bounded: at most [MaxSize] bytes, aliases expanded into
// at most a fixed number of values, nesting bounded, and FuzzParse checks
// that no input panics and that every error has a position.
//
// # Concurrency
//
// A Config is plain data: safe for concurrent reads, not for concurrent
// modification.
package config
