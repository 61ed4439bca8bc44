package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/unwindd/unwindd/host/config"
	"github.com/unwindd/unwindd/host/pluginhost"
)

// builtinPrefix is how built-in plugin binaries beside unwindd are named.
const builtinPrefix = "unwindd-plugin-"

func newPluginsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List the plugins of a deployment and the built-in ones",
	}
	var cfgPath string
	list := &cobra.Command{
		Use:   "list [--config FILE]",
		Short: "Start each configured and built-in plugin once and print what it says of itself",
		Long: `Start each plugin of the deployment (--config FILE, or the embedded
default) and each built-in plugin installed beside unwindd once, as the host
would, and print its name, version, request mode and subscriptions, then
stop it. A plugin that does not start is listed with the reason.`,
		Args: noArgs("plugins list"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return listPlugins(cmd, a, cfgPath)
		},
	}
	list.Flags().StringVar(&cfgPath, "config", "", "deployment file (YAML); default: the embedded one")
	cmd.AddCommand(list)
	return cmd
}

func listPlugins(cmd *cobra.Command, a *app, cfgPath string) error {
	cfg := config.Default()
	if cfgPath != "" {
		var err error
		if cfg, err = config.Load(cfgPath); err != nil {
			return wrapConfigError(err)
		}
	}
	dir, err := config.ExecutableDir()
	if err != nil {
		return err
	}
	// A scratch output directory: listing writes nothing anywhere else.
	scratch, err := os.MkdirTemp("", "unwindd-plugins-list-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	cfg.Output = scratch
	// The deployment's plugins whose binaries exist; the others are listed
	// as missing.
	var specs []pluginhost.Spec
	var origin, missing []string
	seen := map[string]bool{}
	for i := range cfg.Plugins {
		p := &cfg.Plugins[i]
		bin := cfg.BinaryPath(p, dir)
		seen[bin] = true
		if _, err := os.Stat(bin); err != nil {
			missing = append(missing, fmt.Sprintf("%s\tconfigured\t-\t-\tnot installed\t%s", p.Name, bin))
			continue
		}
		one := *cfg
		one.Plugins = []config.Plugin{*p}
		s, err := one.Specs(dir)
		if err != nil {
			return wrapConfigError(err)
		}
		specs, origin = append(specs, s...), append(origin, "configured")
	}
	// The built-in plugins beside unwindd that the deployment does not name.
	bins, _ := filepath.Glob(filepath.Join(dir, builtinPrefix+"*"))
	slices.Sort(bins)
	for _, bin := range bins {
		if seen[bin] {
			continue
		}
		name := strings.TrimPrefix(filepath.Base(bin), builtinPrefix)
		specs = append(specs, pluginhost.Spec{Name: name, Path: bin, Config: []byte("out: " + scratch + "\n")})
		origin = append(origin, "built-in")
	}
	var stats []pluginhost.Stats
	if len(specs) > 0 {
		if stats, err = startPlugins(cmd.Context(), a.log, specs); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tORIGIN\tVERSION\tMODE\tSUBSCRIPTIONS\tPATH")
	for _, m := range missing {
		fmt.Fprintln(tw, m)
	}
	for i, s := range stats {
		if s.Err != nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\tdoes not start: %v\t%s\n", s.Name, origin[i], s.Err, specs[i].Path)
			continue
		}
		d := s.Description
		var subs []string
		for _, sub := range d.Subscriptions {
			subs = append(subs, sub.String())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", s.Name, origin[i], d.Version, d.Mode, strings.Join(subs, ","), specs[i].Path)
	}
	return tw.Flush()
}
