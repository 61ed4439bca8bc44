package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/unwindd/unwindd/configs"
	"github.com/unwindd/unwindd/host/config"
	"github.com/unwindd/unwindd/host/deferred"
	"github.com/unwindd/unwindd/host/pluginhost"
	"github.com/unwindd/unwindd/sdk"
)

func newConfigCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the default deployment, or check a deployment file",
		Long: `A deployment is a YAML file: the source, the unwind methods, the output
directory and the plugins with their config blocks (configs/README.md
documents every key). Without --config, unwindd uses the embedded default.`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "Print the embedded default deployment",
		Args:  noArgs("config default"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := a.stdout.Write(configs.Default())
			return err
		},
	}, &cobra.Command{
		Use:   "check FILE",
		Short: "Check a deployment file, and each plugin's config block, without tracing",
		Long: `Check a deployment file: its keys and values, that every plugin binary
exists (a bare name is a built-in plugin beside unwindd), and each plugin's
own config block, which the plugin itself checks: every plugin is started,
handed its block, and stopped. Each mistake is reported at its file, line
and column.`,
		Example: "  unwindd config check configs/profile-only.yaml",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("config check: give one file, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, specs, err := loadDeployment(args[0])
			if err != nil {
				return err
			}
			if err := checkPlugins(cmd.Context(), a.log, cfg, specs); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "%s: ok (%d plugins)\n", cfg.File, len(specs))
			return err
		},
	})
	return cmd
}

func noArgs(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("%s: no arguments, got %q", what, args)}
		}
		return nil
	}
}

// configError shows a deployment's problems with their source lines.
type configError struct{ e *config.Error }

func (c configError) Error() string { return "deployment has mistakes:\n" + c.e.Annotated() }
func (c configError) Unwrap() error { return c.e }

// wrapConfigError gives a *config.Error its annotated form.
func wrapConfigError(err error) error {
	var ce *config.Error
	if errors.As(err, &ce) {
		return configError{ce}
	}
	return err
}

// loadDeployment reads the deployment at path ("" for the embedded default)
// and turns its plugins into specs, built-in ones found beside unwindd.
func loadDeployment(path string) (*config.Config, []pluginhost.Spec, error) {
	cfg := config.Default()
	if path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return nil, nil, wrapConfigError(err)
		}
	}
	specs, err := deploymentSpecs(cfg)
	return cfg, specs, err
}

// deploymentSpecs turns cfg's plugins into specs.
func deploymentSpecs(cfg *config.Config) ([]pluginhost.Spec, error) {
	dir, err := config.ExecutableDir()
	if err != nil {
		return nil, err
	}
	specs, err := cfg.Specs(dir)
	if err != nil {
		return nil, wrapConfigError(err)
	}
	return specs, nil
}

// checkTimeout bounds the start of the plugins `config check` starts.
const checkTimeout = 20 * time.Second

// checkPlugins starts every plugin of specs once, as the host would, hands
// it its config block, and stops it. A plugin that refuses its block with
// sdk.ConfigErrors gets each reported at its key's line; one that does not
// start at all, at its entry.
func checkPlugins(ctx context.Context, log *zap.Logger, cfg *config.Config, specs []pluginhost.Spec) error {
	stats, err := startPlugins(ctx, log, specs)
	if err != nil {
		return err
	}
	var ps []config.Problem
	for i, s := range stats {
		if s.Err == nil {
			continue
		}
		ces := sdk.ConfigErrors(s.Err)
		if len(ces) == 0 {
			ps = append(ps, cfg.PluginProblem(i, "", fmt.Sprintf("plugin %s does not start: %v", s.Name, s.Err)))
		}
		for _, ce := range ces {
			ps = append(ps, cfg.PluginProblem(i, ce.Field, ce.Msg))
		}
	}
	if e := cfg.NewError(ps...); e != nil {
		return configError{e}
	}
	return nil
}

// startPlugins starts every plugin of specs once, as the host would (a
// fresh engine, no restarts), waits until each runs or fails to start, and
// stops them; it returns their stats from then: their descriptions, or why
// they did not start.
func startPlugins(ctx context.Context, log *zap.Logger, specs []pluginhost.Spec) ([]pluginhost.Stats, error) {
	eng, err := deferred.New(deferred.Options{})
	if err != nil {
		return nil, err
	}
	mgr, err := pluginhost.New(eng, specs, pluginhost.Options{HostVersion: "unwindd", MaxQuickCrashes: 1, Check: true}, log)
	if err != nil {
		return nil, err
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Run(mctx) }()
	stats, werr := waitStarted(ctx, mgr, checkTimeout)
	stop()
	<-done
	return stats, werr
}

// waitStarted waits until every plugin of mgr has either started (run) or
// been given up (with MaxQuickCrashes 1, its first failure), and returns
// their stats then. It must not settle on the crash count: the manager
// counts a crash before it records the error and the given-up state, and
// a check that read the stats in between would find no error and call a
// refused plugin ok.
func waitStarted(ctx context.Context, mgr *pluginhost.Manager, timeout time.Duration) ([]pluginhost.Stats, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		stats := mgr.Stats()
		settled := 0
		for _, s := range stats {
			if s.State == pluginhost.StateRunning || s.State == pluginhost.StateFailed {
				settled++
			}
		}
		if settled == len(stats) {
			return stats, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("plugins not started after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-tick.C:
		}
	}
}
