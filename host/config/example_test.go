package config_test

import (
	"errors"
	"fmt"

	"github.com/unwindd/unwindd/host/config"
)

// A deployment with two mistakes: both are reported, each at its line and
// column, with the field at fault.
func ExampleParse() {
	src := []byte(`source:
  kind: perf
  perf:
    frequency: 999
    stak_size: 8192
plugins:
  - name: perf
    path: perf
    outbox: big
`)
	_, err := config.Parse("deploy.yaml", src)
	var e *config.Error
	if errors.As(err, &e) {
		fmt.Println(e.Annotated())
	}
	// Output:
	// deploy.yaml:5:5: source.perf.stak_size: unknown key; known keys here: frequency, stack_size, events
	//     5 |     stak_size: 8192
	//       |     ^
	// deploy.yaml:9:13: plugins[0].outbox: want a positive integer (at most 1048576), got "big"
	//     9 |     outbox: big
	//       |             ^
}

// A plugin rejects a field of its config block; the host reports it at the
// field's line.
func ExampleConfig_PluginProblem() {
	src := []byte(`plugins:
  - name: perf
    path: perf
    config:
      hz: 0
`)
	c, err := config.Parse("deploy.yaml", src)
	if err != nil {
		panic(err)
	}
	p := c.PluginProblem(0, "hz", "want 1 to 100000, got 0")
	fmt.Println(c.NewError(p).Annotated())
	// Output:
	// deploy.yaml:5:11: plugins[0].config.hz: want 1 to 100000, got 0
	//     5 |       hz: 0
	//       |           ^
}

// The embedded default deployment.
func ExampleDefault() {
	c := config.Default()
	fmt.Println(c.Source.Kind, c.Source.Perf.Frequency, c.Unwind)
	for _, p := range c.Plugins {
		fmt.Printf("%s %q\n", p.Name, p.Config)
	}
	// Output:
	// perf 999 [sframe cfi fp]
	// perf "hz: 999\n"
	// ftrace ""
}
