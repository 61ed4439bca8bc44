// Package layering holds no code: its test enforces the import rules of
// DESIGN §3 across the repository — a plugin (plugins/…, examples/…)
// imports the sdk and nothing under host/, host/ never imports a plugin,
// and host/perfdata imports nothing else from host/.
package layering
