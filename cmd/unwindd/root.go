package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// app is what every subcommand gets: where to write, and the logger the
// root command builds from --log-level.
type app struct {
	stdout, stderr io.Writer
	log            *zap.Logger
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr, log: zap.NewNop()}
	var level, format string
	root := &cobra.Command{
		Use:           "unwindd",
		Short:         "User-stack tracing for Linux x86-64",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(level, format, stderr)
			if err != nil {
				return err
			}
			a.log = log
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&level, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&format, "log-format", "console", "log format: console (for people) or json (for log collectors)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
	})
	root.AddCommand(newRunCmd(a), newStackCmd(a), newReplayCmd(a), newConfigCmd(a), newPluginsCmd(a), newVersionCmd(a))
	return root
}

// logFromConfig rebuilds a's logger from a deployment's log keys, for each
// of --log-level and --log-format not given on the command line.
func (a *app) logFromConfig(cmd *cobra.Command, level, format string) error {
	lf, ff := cmd.Flag("log-level"), cmd.Flag("log-format")
	if lf == nil || ff == nil || lf.Changed && ff.Changed {
		return nil
	}
	if lf.Changed {
		level = lf.Value.String()
	}
	if ff.Changed {
		format = ff.Value.String()
	}
	log, err := newLogger(level, format, a.stderr)
	if err != nil {
		return err
	}
	a.log = log
	return nil
}

// newLogger returns a logger writing to w at level, in format console
// (one readable line per entry) or json (one JSON object per line, zap's
// production encoding, for log collectors).
func newLogger(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, usageError{fmt.Errorf("--log-level: %w", err)}
	}
	var enc zapcore.Encoder
	switch format {
	case "console":
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		enc = zapcore.NewConsoleEncoder(cfg)
	case "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	default:
		return nil, usageError{fmt.Errorf("--log-format %q: want console or json", format)}
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), nil
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of unwindd",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("version: no arguments, got %q", args)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			version := "(unknown)"
			if bi, ok := debug.ReadBuildInfo(); ok {
				version = bi.Main.Version
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						version += " " + s.Value
					}
				}
			}
			_, err := fmt.Fprintf(a.stdout, "unwindd %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
