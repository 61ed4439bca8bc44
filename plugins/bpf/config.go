package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/configblock"
)

// The config's defaults and limits.
const (
	defaultInterval   = 10 * time.Second
	minInterval       = 100 * time.Millisecond
	defaultMaxPending = 65536
	defaultMaxKeys    = 65536
	maxPrograms       = 64
	maxExprLen        = 4096 // bytes of one CEL expression
)

// config is the plugin's config block, decoded but not compiled.
type config struct {
	Out        string          // out: the directory bpf.txt and bpf.json are written to (required)
	Interval   time.Duration   // interval: how often the maps are printed; 0: only at exit
	MaxPending int             // max_pending: entries whose events wait for their stack
	MaxKeys    int             // max_keys: keys per map
	Programs   []programConfig // programs: at least one
}

// programConfig is one item of programs, as written.
type programConfig struct {
	Name      string   // name: the map's name; "" for the default
	Probe     string   // probe: syscall:NAME, syscall_exit:NAME, tracepoint:GROUP:NAME, profile:hz:N
	Filter    string   // filter: a CEL expression of type bool; "" for none
	Aggregate string   // aggregate: count, sum(e), min(e), max(e), avg(e), hist(e), lhist(e, min, max, step)
	By        []string // by: the map's key: pid, tid, comm, cpu, probe, ustack or CEL expressions
}

// The keys of the block and of a program, for error messages.
const (
	knownKeys        = "out, interval, max_pending, max_keys, programs"
	knownProgramKeys = "name, probe, filter, aggregate, by"
)

// parseConfig decodes the plugin's config block, a YAML mapping. Unknown
// keys, repeated keys, values of the wrong type and bad values are errors;
// each is an [sdk.ConfigError] naming its key as a path in the block
// ("programs[1].by[0]"), which the host reports at that line of its config
// file. Several are joined. The programs' probes, filters, aggregates and
// keys are checked as strings here and compiled by [compile].
func parseConfig(b []byte) (config, error) {
	c := config{Interval: defaultInterval, MaxPending: defaultMaxPending, MaxKeys: defaultMaxKeys}
	m, err := configblock.Mapping(b)
	if err != nil {
		return config{}, err
	}
	var errs configblock.Errors
	bad := errs.Add
	seen := configblock.Keys(m, "", knownKeys, bad, func(k, _ string, v any) {
		switch k {
		case "out":
			c.Out = configblock.Dir(k, v, bad)
		case "interval":
			d, ok := duration(v)
			if !ok || d < 0 || d > 0 && d < minInterval {
				bad(k, "want 0 (print only at exit) or a duration of at least %v such as 10s, got %s", minInterval, configblock.Show(v))
				return
			}
			c.Interval = d
		case "max_pending":
			n, ok := configblock.Int(v)
			if !ok || n < 1 || n > 1<<24 {
				bad(k, "want a positive integer (at most %d), got %s", 1<<24, configblock.Show(v))
				return
			}
			c.MaxPending = int(n)
		case "max_keys":
			n, ok := configblock.Int(v)
			if !ok || n < 1 || n > 1<<24 {
				bad(k, "want a positive integer (at most %d), got %s", 1<<24, configblock.Show(v))
				return
			}
			c.MaxKeys = int(n)
		case "programs":
			c.Programs = parsePrograms(k, v, bad)
		default:
			bad(configblock.Field("", k), "unknown key %q (known: %s)", k, knownKeys)
		}
	})
	if !seen["out"] {
		errs = append(errs, &sdk.ConfigError{Msg: "out is required (the directory to write bpf.txt and bpf.json to)"})
	}
	if !seen["programs"] {
		errs = append(errs, &sdk.ConfigError{Msg: "programs is required: a list of programs, each with a probe (see the bpf plugin's documentation)"})
	}
	if len(errs) > 0 {
		return config{}, errors.Join(errs...)
	}
	return c, nil
}

// parsePrograms decodes the programs list.
func parsePrograms(key string, v any, bad func(field, format string, args ...any)) []programConfig {
	items, ok := v.([]any)
	if !ok || len(items) == 0 {
		bad(key, "want a list of programs (each a mapping with a probe), got %s", configblock.Show(v))
		return nil
	}
	if len(items) > maxPrograms {
		bad(key, "%d programs: at most %d", len(items), maxPrograms)
		return nil
	}
	var out []programConfig
	for i, it := range items {
		field := fmt.Sprintf("%s[%d]", key, i)
		m, ok := it.(yaml.MapSlice)
		if !ok {
			bad(field, "want a mapping with a probe (keys: %s), got %s", knownProgramKeys, configblock.Show(it))
			continue
		}
		p, ok := parseProgram(field, m, bad)
		if ok {
			out = append(out, p)
		}
	}
	return out
}

// parseProgram decodes one program; ok is false if it had errors.
func parseProgram(field string, m yaml.MapSlice, bad func(field, format string, args ...any)) (programConfig, bool) {
	var p programConfig
	ok := true
	fail := func(f, format string, args ...any) {
		bad(f, format, args...)
		ok = false
	}
	seen := configblock.Keys(m, field, knownProgramKeys, fail, func(k, f string, v any) {
		switch k {
		case "name", "probe", "filter", "aggregate":
			s, isStr := v.(string)
			s = strings.TrimSpace(s)
			switch {
			case !isStr || s == "":
				fail(f, "want %s, got %s", wantOf[k], configblock.Show(v))
				return
			case len(s) > maxExprLen:
				fail(f, "%d bytes long: at most %d", len(s), maxExprLen)
				return
			}
			switch k {
			case "name":
				p.Name = s
			case "probe":
				p.Probe = s
			case "filter":
				p.Filter = s
			case "aggregate":
				p.Aggregate = s
			}
		case "by":
			items, isList := v.([]any)
			if v != nil && !isList {
				fail(f, "want a list of keys such as [comm, ustack], got %s", configblock.Show(v))
				return
			}
			p.By = []string{} // given, possibly empty
			for j, it := range items {
				fj := fmt.Sprintf("%s[%d]", f, j)
				s, isStr := it.(string)
				s = strings.TrimSpace(s)
				switch {
				case !isStr || s == "":
					fail(fj, "want a key (pid, tid, comm, cpu, probe, ustack or an expression such as args.fd), got %s", configblock.Show(it))
				case len(s) > maxExprLen:
					fail(fj, "%d bytes long: at most %d", len(s), maxExprLen)
				case slices.Contains(p.By, s):
					fail(fj, "%q given twice", s)
				default:
					p.By = append(p.By, s)
				}
			}
		default:
			fail(f, "unknown key %q (known: %s)", k, knownProgramKeys)
		}
	})
	if !seen["probe"] {
		fail(field, "probe is required (syscall:NAME, syscall_exit:NAME, tracepoint:GROUP:NAME or profile:hz:N)")
	}
	if p.Aggregate == "" {
		p.Aggregate = "count"
	}
	return p, ok
}

// wantOf says what a program's string keys want, for error messages.
var wantOf = map[string]string{
	"name":      "a map name such as @opens",
	"probe":     "a probe such as syscall:openat",
	"filter":    "a CEL expression such as 'comm == \"bash\"'",
	"aggregate": "an aggregation such as count or hist(args.count)",
}

// duration returns v as a duration: a string Go's time.ParseDuration
// takes, or the integer 0.
func duration(v any) (time.Duration, bool) {
	switch x := v.(type) {
	case string:
		d, err := time.ParseDuration(x)
		return d, err == nil
	default:
		if n, ok := configblock.Int(v); ok && n == 0 {
			return 0, true
		}
	}
	return 0, false
}
