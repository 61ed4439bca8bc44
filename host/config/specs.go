package config

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"slices"

	"github.com/goccy/go-yaml"

	"github.com/unwindd/unwindd/host/pluginhost"
)

// Specs returns one [pluginhost.Spec] per plugin, in order, after checking
// what [Parse] cannot, on this machine: each plugin binary exists, is a
// regular file and is executable (built-in ones looked for in builtinDir,
// see [Config.BinaryPath]), and each user and group exists. Every failed
// check is a problem at its line in an [*Error].
//
// A Spec's Config is the plugin's config block ([Plugin.Config]); a
// built-in plugin's block also gets "out: <Output>" when it is a mapping
// without an out key, or when the plugin has none. A plugin that is not
// built in gets its block as is. The SHA-256 is not checked here:
// pluginhost checks it at every start.
func (c *Config) Specs(builtinDir string) ([]pluginhost.Spec, error) {
	ps := problems{file: c.File}
	specs := make([]pluginhost.Spec, 0, len(c.Plugins))
	for i := range c.Plugins {
		p := &c.Plugins[i]
		path := index("plugins", i)
		bin := c.BinaryPath(p, builtinDir)
		checkBinary(&ps, firstPos(p.src.path, p.src.entry), join(path, "path"), p, bin)
		if p.User != "" {
			if _, err := user.Lookup(p.User); err != nil {
				if _, err := user.LookupId(p.User); err != nil {
					ps.add(firstPos(p.src.user, p.src.entry), join(path, "user"), "no user %s on this machine", quote(p.User))
				}
			}
		}
		if p.Group != "" {
			if _, err := user.LookupGroup(p.Group); err != nil {
				if _, err := user.LookupGroupId(p.Group); err != nil {
					ps.add(firstPos(p.src.group, p.src.entry), join(path, "group"), "no group %s on this machine", quote(p.Group))
				}
			}
		}
		cfg, err := c.pluginConfig(p)
		if err != nil {
			ps.add(firstPos(p.src.configKey, p.src.entry), join(path, "config"), "cannot add out to the config block: %v", err)
		}
		specs = append(specs, pluginhost.Spec{
			Name:           p.Name,
			Path:           bin,
			Args:           slices.Clone(p.Args),
			Env:            slices.Clone(p.Env),
			SHA256:         p.SHA256,
			User:           p.User,
			Group:          p.Group,
			OutboxSize:     p.Outbox,
			DecideDeadline: p.DecideDeadline,
			Config:         cfg,
		})
	}
	var src []byte
	if c.doc != nil {
		src = c.doc.src
	}
	if err := ps.err(src); err != nil {
		return nil, err
	}
	return specs, nil
}

// checkBinary records a problem unless bin is an executable regular file.
func checkBinary(ps *problems, at pos, path string, p *Plugin, bin string) {
	st, err := os.Stat(bin)
	switch {
	case errors.Is(err, fs.ErrNotExist) && p.Builtin():
		ps.add(at, path, "no built-in plugin %s: %s does not exist (built-in plugins are installed beside unwindd)", quote(p.Path), bin)
	case errors.Is(err, fs.ErrNotExist):
		ps.add(at, path, "no plugin binary: %s does not exist", bin)
	case err != nil:
		ps.add(at, path, "cannot use the plugin binary: %v", err)
	case st.IsDir():
		ps.add(at, path, "%s is a directory, not a plugin binary", bin)
	case !st.Mode().IsRegular():
		ps.add(at, path, "%s is not a regular file", bin)
	case st.Mode().Perm()&0o111 == 0:
		ps.add(at, path, "%s is not executable (mode %v)", bin, st.Mode().Perm())
	}
}

// pluginConfig returns the config bytes p's Spec gets: a built-in plugin's
// block gets out: c.Output if it has no out key.
func (c *Config) pluginConfig(p *Plugin) ([]byte, error) {
	if !p.Builtin() {
		return slices.Clone(p.Config), nil
	}
	var v any
	if len(p.Config) > 0 {
		if err := yaml.UnmarshalWithOptions(p.Config, &v, yaml.UseOrderedMap()); err != nil {
			return slices.Clone(p.Config), err
		}
	}
	out := yaml.MapItem{Key: "out", Value: c.Output}
	switch m := v.(type) {
	case nil:
		v = yaml.MapSlice{out}
	case yaml.MapSlice:
		if slices.ContainsFunc(m, func(it yaml.MapItem) bool { return it.Key == "out" }) {
			return slices.Clone(p.Config), nil
		}
		v = append(m, out)
	default: // not a mapping: the plugin will say what it wants
		return slices.Clone(p.Config), nil
	}
	return encode(v)
}

// firstPos returns p, or def if p is unknown.
func firstPos(p, def pos) pos {
	if p == (pos{}) {
		return def
	}
	return p
}
