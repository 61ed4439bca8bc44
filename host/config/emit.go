package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// encode writes a config block's value (as value builds it: yaml.MapSlice,
// []any, string, int64, uint64, float64, bool, nil) as block-style YAML,
// two spaces per level. It does not use goccy/go-yaml's encoder, which
// (v1.19.2) panics on non-string keys and writes a string holding a tab
// unquoted, losing the tab. Strings are plain when that is unambiguous to
// YAML 1.1 and 1.2 readers alike, double-quoted otherwise; a float always
// reads back as a float; keys keep their order.
func encode(v any) ([]byte, error) {
	var b strings.Builder
	if err := encodeValue(&b, v, 0, 0); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// encodeValue writes v as the value of a document (indent 0) or of a
// block collection entry whose content starts at column indent; the
// caller has written what comes before it on the line.
func encodeValue(b *strings.Builder, v any, indent, depth int) error {
	if depth > maxDepth+2 {
		return fmt.Errorf("nested more than %d deep", maxDepth)
	}
	switch x := v.(type) {
	case yaml.MapSlice:
		if len(x) == 0 {
			b.WriteString("{}\n")
			return nil
		}
		for i, it := range x {
			if i > 0 {
				b.WriteString(strings.Repeat(" ", indent))
			}
			k, err := scalar(it.Key)
			if err != nil {
				return err
			}
			b.WriteString(k)
			b.WriteByte(':')
			if err := encodeEntry(b, it.Value, indent, false, depth); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if len(x) == 0 {
			b.WriteString("[]\n")
			return nil
		}
		for i, e := range x {
			if i > 0 {
				b.WriteString(strings.Repeat(" ", indent))
			}
			b.WriteByte('-')
			if err := encodeEntry(b, e, indent, true, depth); err != nil {
				return err
			}
		}
		return nil
	}
	s, err := scalar(v)
	if err != nil {
		return err
	}
	b.WriteString(s)
	b.WriteByte('\n')
	return nil
}

// encodeEntry writes the value of a mapping entry (after its "key:") or of
// a list element (after its "-", inList), the key or "-" being at column
// indent. A non-empty collection in a mapping starts on the next line, two
// columns in; in a list, on the same line ("- k: v", "- - x").
func encodeEntry(b *strings.Builder, v any, indent int, inList bool, depth int) error {
	if !inList {
		switch x := v.(type) {
		case yaml.MapSlice:
			if len(x) > 0 {
				b.WriteByte('\n')
				b.WriteString(strings.Repeat(" ", indent+2))
				return encodeValue(b, v, indent+2, depth+1)
			}
		case []any:
			if len(x) > 0 {
				b.WriteByte('\n')
				b.WriteString(strings.Repeat(" ", indent+2))
				return encodeValue(b, v, indent+2, depth+1)
			}
		}
	}
	b.WriteByte(' ')
	return encodeValue(b, v, indent+2, depth+1)
}

// scalar returns the YAML text of a scalar.
func scalar(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "null", nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		switch {
		case math.IsNaN(x):
			return ".nan", nil
		case math.IsInf(x, 1):
			return ".inf", nil
		case math.IsInf(x, -1):
			return "-.inf", nil
		}
		s := strconv.FormatFloat(x, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s, nil
	case string:
		if plainOK(x) {
			return x, nil
		}
		return doubleQuote(x), nil
	}
	return "", fmt.Errorf("cannot encode a %T", v)
}

// plainOK reports whether s can be written without quotes and read back as
// the same string by YAML 1.1 and 1.2 readers: letters, digits and a few
// punctuation characters, starting with a letter, "/" or "_", no ": " or
// " #", not a YAML 1.1 boolean or null word, and read back as itself by
// goccy/go-yaml.
func plainOK(s string) bool {
	if s == "" || len(s) > 200 || s[len(s)-1] == ' ' || s[len(s)-1] == ':' {
		return false
	}
	c := s[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '/' || c == '_') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("_./@+%=,-()", c) >= 0:
		case c == ':':
			if i+1 < len(s) && s[i+1] == ' ' {
				return false
			}
		case c == ' ':
			if i+1 < len(s) && (s[i+1] == '#' || s[i+1] == ' ') {
				return false
			}
		default:
			return false
		}
	}
	switch strings.ToLower(s) {
	case "y", "n", "yes", "no", "on", "off", "true", "false", "null":
		return false
	}
	f, err := parser.ParseBytes([]byte("- "+s+"\n"), 0)
	if err != nil || len(f.Docs) != 1 || f.Docs[0] == nil {
		return false
	}
	seq, ok := f.Docs[0].Body.(*ast.SequenceNode)
	if !ok || len(seq.Values) != 1 {
		return false
	}
	str, ok := seq.Values[0].(*ast.StringNode)
	return ok && str.Value == s
}

// doubleQuote writes s as a YAML double-quoted scalar. Go's escapes for
// control characters are YAML's too; s is valid UTF-8 (Parse checks the
// file is).
func doubleQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == utf8.RuneError, r < 0x20, r >= 0x7f && r < 0xa0, r == 0x2028, r == 0x2029, r == 0xfeff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
