// Package configblock helps a plugin decode its config block (the
// free-form `config:` of its entry in a deployment file, which the host
// hands to Describe as is) strictly, the way the built-in plugins do: as a
// YAML mapping in key order, with each mistake an [sdk.ConfigError] naming
// its key, which the host reports at that key's line and column.
//
// It is optional: a plugin may parse its block however it likes.
package configblock

import (
	"fmt"
	"math"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/unwindd/unwindd/sdk"
)

// Mapping decodes b as a YAML mapping, keys in order and nested mappings
// as yaml.MapSlice too. An empty block is an empty mapping; anything else
// that is not a mapping is an *sdk.ConfigError.
func Mapping(b []byte) (yaml.MapSlice, error) {
	var m yaml.MapSlice
	if err := yaml.UnmarshalWithOptions(b, &m, yaml.UseOrderedMap()); err != nil {
		return nil, &sdk.ConfigError{Msg: "not a YAML mapping: " + yaml.FormatError(err, false, false)}
	}
	return m, nil
}

// Int returns v, a decoded YAML value, as an integer, if it is one that
// fits an int64.
func Int(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		if n <= math.MaxInt64 {
			return int64(n), true
		}
	case int:
		return int64(n), true
	}
	return 0, false
}

// Dir returns v, a decoded YAML value at field, as a directory path: a
// string, not empty. Anything else is reported through bad ("want a
// directory") and gives "". The built-in plugins' "out" key is one.
func Dir(field string, v any, bad func(field, format string, args ...any)) string {
	s, ok := v.(string)
	if !ok || s == "" {
		bad(field, "want a directory, got %s", Show(v))
		return ""
	}
	return s
}

// Show describes v, a decoded YAML value, for an error message: "nothing",
// "a list", "a mapping", or the value quoted.
func Show(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case []any:
		return "a list"
	case map[string]any, yaml.MapSlice:
		return "a mapping"
	}
	return fmt.Sprintf("%q", fmt.Sprint(v))
}

// Errors collects a block's mistakes. Its Add has the shape the
// validation helpers take as their report function.
type Errors []error

// Add records an *sdk.ConfigError at field.
func (e *Errors) Add(field, format string, args ...any) {
	*e = append(*e, &sdk.ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Field is the path of key k in a block at parent ("programs[1]" gives
// "programs[1].probe"; "" gives "probe"). A key the host could not place
// (empty, or holding '.', '[' or ']') is reported at parent.
func Field(parent, k string) string {
	if k == "" || strings.ContainsAny(k, ".[]") {
		return parent
	}
	if parent == "" {
		return k
	}
	return parent + "." + k
}

// Keys walks the keys of m, a mapping at parent, in order, and calls fn
// with each string key, its field path and its value, once: a key that is
// not a string ("keys are names (known)") or is given twice is reported
// through bad and skipped. It returns the keys fn was called with, for
// the required ones to be checked.
func Keys(m yaml.MapSlice, parent, known string, bad func(field, format string, args ...any), fn func(key, field string, v any)) map[string]bool {
	seen := map[string]bool{}
	for _, item := range m {
		k, ok := item.Key.(string)
		if !ok {
			bad(Field(parent, fmt.Sprint(item.Key)), "%s: keys are names (%s)", Show(item.Key), known)
			continue
		}
		f := Field(parent, k)
		if seen[k] {
			bad(f, "%q given twice", k)
			continue
		}
		seen[k] = true
		fn(k, f, item.Value)
	}
	return seen
}
