package main

import (
	"errors"
	"time"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/configblock"
)

// The config's defaults and limits.
const (
	defaultHz         = 999
	maxHz             = 100000 // the kernel's default perf_event_max_sample_rate
	defaultMaxPending = 65536
	defaultMaxWait    = 10 * time.Second
)

// config is the plugin's config block, decoded.
type config struct {
	Out        string        // out: the directory the files are written to (required)
	Hz         uint32        // hz: cpu-clock sampling frequency
	MaxPending int           // max_pending: samples held while they wait for their stack
	MaxWait    time.Duration // max_wait: how long, in sample time, a sample waits for its stack
}

// parseConfig decodes the plugin's config block, a YAML mapping. Unknown
// keys, repeated keys and bad values are errors; each is an
// [sdk.ConfigError] naming its key, which the host reports at that key's
// line in its config file. Several are joined.
func parseConfig(b []byte) (config, error) {
	c := config{Hz: defaultHz, MaxPending: defaultMaxPending, MaxWait: defaultMaxWait}
	m, err := configblock.Mapping(b)
	if err != nil {
		return config{}, err
	}
	var errs configblock.Errors
	bad := errs.Add
	seen := configblock.Keys(m, "", "out, hz, max_pending, max_wait", bad, func(k, _ string, v any) {
		switch k {
		case "out":
			c.Out = configblock.Dir(k, v, bad)
		case "hz":
			n, ok := configblock.Int(v)
			if !ok || n < 1 || n > maxHz {
				bad(k, "want an integer from 1 to %d, got %s", maxHz, configblock.Show(v))
				return
			}
			c.Hz = uint32(n)
		case "max_pending":
			n, ok := configblock.Int(v)
			if !ok || n < 1 || n > 1<<30 {
				bad(k, "want a positive integer, got %s", configblock.Show(v))
				return
			}
			c.MaxPending = int(n)
		case "max_wait":
			s, _ := v.(string)
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				bad(k, "want a positive duration such as 10s, got %s", configblock.Show(v))
				return
			}
			c.MaxWait = d
		default:
			bad(k, "unknown key (known: out, hz, max_pending, max_wait)")
		}
	})
	if c.Out == "" && !seen["out"] {
		errs = append(errs, &sdk.ConfigError{Msg: "out is required (the directory to write profile.pb.gz, stacks.folded, perf.script.txt and flame.svg to)"})
	}
	if len(errs) > 0 {
		return config{}, errors.Join(errs...)
	}
	return c, nil
}
