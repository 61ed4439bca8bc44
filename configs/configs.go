// Package configs holds unwindd's example deployments, and embeds one of
// them, default.yaml: the deployment `unwindd run` uses when it is given
// no --config. The files are documented in README.md beside them; package
// host/config parses and checks them.
//
// The package only carries bytes. It exists so that the default lives in
// configs/ with the other examples, where users read it, while the host
// still has it built in.
package configs

import _ "embed"

//go:embed default.yaml
var defaultYAML []byte

// DefaultName is the name of the embedded default deployment, as errors and
// positions in it name it.
const DefaultName = "configs/default.yaml"

// Default returns the embedded default deployment (default.yaml) as YAML
// text. Each call returns a new copy: the caller may modify it.
func Default() []byte {
	return append([]byte(nil), defaultYAML...)
}
