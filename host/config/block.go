package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// This file handles the plugins' config blocks: free-form YAML that the
// host does not interpret, re-serialized for the plugin, and positions in
// it for the plugin's own validation errors.

// value builds the Go value of a config block node, as yaml.Unmarshal with
// yaml.UseOrderedMap would: yaml.MapSlice for a mapping (keys in order,
// merge keys applied), []any for a list, string, int64, uint64, float64,
// bool or nil for a scalar. Aliases are expanded within d.budget.
func (d *decoder) value(n ast.Node, at pos, path string, depth int) (any, bool) {
	if depth > maxDepth {
		d.add(at, path, "nested more than %d deep", maxDepth)
		return nil, false
	}
	if d.budget--; d.budget < 0 {
		if d.budget == -1 {
			d.add(at, path, "the config blocks hold more than %d values, aliases expanded", maxBlockNodes)
		}
		return nil, false
	}
	n, ok := d.resolve(n, at, path)
	if !ok {
		return nil, false
	}
	if isNil(n) {
		return nil, true
	}
	at = d.doc.posOr(n, at)
	switch n := n.(type) {
	case *ast.NullNode:
		return nil, true
	case *ast.StringNode:
		return n.Value, true
	case *ast.LiteralNode:
		if n.Value == nil {
			return "", true
		}
		return n.Value.Value, true
	case *ast.IntegerNode:
		return n.Value, true
	case *ast.FloatNode:
		return n.Value, true
	case *ast.BoolNode:
		return n.Value, true
	case *ast.InfinityNode:
		return n.Value, true
	case *ast.NanNode:
		return math.NaN(), true
	case *ast.SequenceNode:
		list := make([]any, 0, len(n.Values))
		ok := true
		for i, e := range n.Values {
			v, eok := d.value(e, d.doc.posOr(e, at), index(path, i), depth+1)
			ok = ok && eok
			list = append(list, v)
		}
		return list, ok
	case *ast.MappingNode, *ast.MappingValueNode:
		values, _ := entries(n)
		return d.mapValue(values, at, path, depth)
	case *ast.TagNode:
		return d.tagged(n, at, path, depth)
	}
	d.add(at, path, "unsupported YAML: %s", describe(n))
	return nil, false
}

// mapValue builds the yaml.MapSlice of a mapping's entries. A merge key
// ("<<: *base" or "<<: [*a, *b]") adds the keys of the mappings it names
// that the mapping does not set itself, earlier mappings first, where the
// "<<" is.
func (d *decoder) mapValue(values []*ast.MappingValueNode, at pos, path string, depth int) (any, bool) {
	m := yaml.MapSlice{}
	ok := true
	own := map[any]bool{} // keys set by the mapping itself
	type entry struct {
		key   any
		merge bool
		mv    *ast.MappingValueNode
		at    pos
	}
	var list []entry
	for _, mv := range values {
		if mv == nil {
			continue
		}
		kat := d.doc.posOr(mv.Key, at)
		if _, merge := mv.Key.(*ast.MergeKeyNode); merge {
			list = append(list, entry{merge: true, mv: mv, at: kat})
			continue
		}
		k, kok := d.value(mv.Key, kat, path, depth+1)
		if !kok {
			ok = false
			continue
		}
		switch k.(type) {
		case yaml.MapSlice, []any:
			d.add(kat, path, "want a scalar key, got %s", describe(mv.Key))
			ok = false
			continue
		}
		if f, isFloat := k.(float64); isFloat && math.IsNaN(f) {
			d.add(kat, path, "want a key other than NaN")
			ok = false
			continue
		}
		if own[k] {
			d.add(kat, join(path, keyText(k)), "key given twice")
			ok = false
			continue
		}
		own[k] = true
		list = append(list, entry{key: k, mv: mv, at: kat})
	}
	have := map[any]bool{}
	for _, e := range list {
		if !e.merge {
			v, vok := d.value(e.mv.Value, d.doc.posOr(e.mv.Value, e.at), join(path, keyText(e.key)), depth+1)
			ok = ok && vok
			m = append(m, yaml.MapItem{Key: e.key, Value: v})
			have[e.key] = true
			continue
		}
		merged, mok := d.value(e.mv.Value, d.doc.posOr(e.mv.Value, e.at), join(path, "<<"), depth+1)
		if !mok {
			ok = false
			continue
		}
		var sources []yaml.MapSlice
		switch x := merged.(type) {
		case yaml.MapSlice:
			sources = append(sources, x)
		case []any:
			for _, s := range x {
				ms, isMap := s.(yaml.MapSlice)
				if !isMap {
					d.add(e.at, join(path, "<<"), "want a mapping or a list of mappings to merge, got a list holding %s", kindOf(s))
					ok = false
					break
				}
				sources = append(sources, ms)
			}
		default:
			d.add(e.at, join(path, "<<"), "want a mapping or a list of mappings to merge, got %s", kindOf(merged))
			ok = false
		}
		for _, src := range sources {
			for _, item := range src {
				if own[item.Key] || have[item.Key] {
					continue
				}
				have[item.Key] = true
				m = append(m, item)
			}
		}
	}
	return m, ok
}

// tagged builds the value of a tagged node: the standard tags are allowed
// (!!str makes a string of any scalar), others are problems.
func (d *decoder) tagged(n *ast.TagNode, at pos, path string, depth int) (any, bool) {
	tag := ""
	if n.Start != nil {
		tag = n.Start.Value
	}
	inner, ok := d.resolve(n.Value, at, path)
	if !ok {
		return nil, false
	}
	if tag == "!!str" || tag == "!<tag:yaml.org,2002:str>" {
		switch x := inner.(type) {
		case *ast.StringNode:
			return x.Value, true
		case *ast.LiteralNode:
			if x.Value == nil {
				return "", true
			}
			return x.Value.Value, true
		case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NullNode, *ast.InfinityNode, *ast.NanNode:
			if tk := x.GetToken(); tk != nil {
				return tk.Value, true
			}
		case nil:
			return "", true
		}
		d.add(at, path, "!!str wants a scalar, got %s", describe(inner))
		return nil, false
	}
	v, ok := d.value(inner, at, path, depth+1)
	if !ok {
		return nil, false
	}
	var match bool
	switch tag {
	case "!!int":
		switch v.(type) {
		case int64, uint64:
			match = true
		}
	case "!!float":
		switch x := v.(type) {
		case float64:
			match = true
		case int64:
			v, match = float64(x), true
		case uint64:
			v, match = float64(x), true
		}
	case "!!bool":
		_, match = v.(bool)
	case "!!null":
		match = v == nil
	case "!!map":
		_, match = v.(yaml.MapSlice)
	case "!!seq":
		_, match = v.([]any)
	default:
		d.add(at, path, "unsupported tag %s (the standard tags are !!str, !!int, !!float, !!bool, !!null, !!map and !!seq)", tag)
		return nil, false
	}
	if !match {
		d.add(at, path, "%s does not fit %s", tag, describe(inner))
		return nil, false
	}
	return v, true
}

// keyText is a key of a config block as a field path segment.
func keyText(k any) string {
	if s, ok := k.(string); ok {
		return s
	}
	return fmt.Sprint(k)
}

// kindOf says what a built value is, for messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case yaml.MapSlice:
		return "a mapping"
	case []any:
		return "a list"
	}
	return "a scalar"
}

// PluginProblem returns the problem a plugin reports about its own config
// block, at the position of plugins[i].config.<fieldPath> in the file:
// fieldPath is dotted keys with [n] list indices ("programs[1].filter"), or
// "" for the block as a whole. A scalar is found at its value, a mapping or
// list at its key (or "-"). When the path is not in the file, the problem is
// at the deepest part of it that is (a missing key is reported at the
// mapping that lacks it), and at the config key when none is; without a
// config key, at the plugin's entry. i out of range yields 1:1.
func (c *Config) PluginProblem(i int, fieldPath, msg string) Problem {
	path := index("plugins", i) + ".config"
	switch {
	case fieldPath == "":
	case strings.HasPrefix(fieldPath, "["):
		path += fieldPath
	default:
		path += "." + fieldPath
	}
	p := Problem{File: c.File, Line: 1, Column: 1, Path: path, Msg: msg}
	if i < 0 || i >= len(c.Plugins) {
		return p
	}
	src := c.Plugins[i].src
	at := src.entry
	if src.configKey != (pos{}) {
		at = src.configKey
	}
	if segs, ok := splitFieldPath(fieldPath); ok && c.doc != nil {
		at = c.doc.find(src.config, segs, at)
	}
	p.Line, p.Column = max(at.line, 1), max(at.col, 1)
	return p
}

// NewError returns ps as an [*Error] about c's file (sorted by position,
// cut to [MaxProblems]), whose [Error.Annotated] shows c's source lines: for
// the problems plugins report through [Config.PluginProblem]. It returns nil
// if ps is empty.
func (c *Config) NewError(ps ...Problem) *Error {
	if len(ps) == 0 {
		return nil
	}
	var src []byte
	if c.doc != nil {
		src = c.doc.src
	}
	all := problems{file: c.File, list: slices.Clone(ps)}
	return all.err(src).(*Error)
}

// segment is one step of a field path: a key, or an index when key is "".
type segment struct {
	key   string
	index int
	isKey bool
}

// splitFieldPath splits "a.b[2].c" into its segments; ok is false for a
// malformed path.
func splitFieldPath(s string) ([]segment, bool) {
	var segs []segment
	for i := 0; i < len(s); {
		switch {
		case s[i] == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, false
			}
			n, err := strconv.Atoi(s[i+1 : i+end])
			if err != nil || n < 0 {
				return nil, false
			}
			segs = append(segs, segment{index: n})
			i += end + 1
		case s[i] == '.' && len(segs) > 0:
			i++
			fallthrough
		default:
			end := strings.IndexAny(s[i:], ".[")
			if end < 0 {
				end = len(s) - i
			}
			if end == 0 {
				return nil, false
			}
			segs = append(segs, segment{key: s[i : i+end], isKey: true})
			i += end
		}
	}
	return segs, true
}

// find walks segs from n, found at at, and returns the position of the
// deepest node reached.
func (doc *docInfo) find(n ast.Node, segs []segment, at pos) pos {
	for _, seg := range segs {
		r, bad := doc.deref(n)
		if bad != "" || isNil(r) {
			return at
		}
		if seg.isKey {
			mv := doc.lookup(r, seg.key, 0)
			if mv == nil {
				return at
			}
			kat := doc.posOr(mv.Key, at)
			v, _ := doc.deref(mv.Value)
			if isCollection(v) {
				at = kat
			} else {
				at = doc.posOr(mv.Value, kat)
			}
			n = mv.Value
			continue
		}
		seq, ok := r.(*ast.SequenceNode)
		if !ok || seg.index >= len(seq.Values) {
			return at
		}
		e := seq.Values[seg.index]
		v, _ := doc.deref(e)
		at = doc.posOr(e, at)
		if isCollection(v) && !seq.IsFlowStyle && seg.index < len(seq.Entries) && seq.Entries[seg.index] != nil {
			at = doc.posOr(seq.Entries[seg.index], at)
		}
		n = e
	}
	return at
}

// lookup finds key in the mapping m, then in the mappings its merge keys
// name.
func (doc *docInfo) lookup(m ast.Node, key string, depth int) *ast.MappingValueNode {
	values, ok := entries(m)
	if !ok || depth > maxDepth {
		return nil
	}
	for _, mv := range values {
		if mv == nil || isNil(mv.Key) {
			continue
		}
		if _, merge := mv.Key.(*ast.MergeKeyNode); merge {
			continue
		}
		if tk := mv.Key.GetToken(); tk != nil && scalarText(mv.Key) == key {
			return mv
		}
	}
	for _, mv := range values {
		if mv == nil || isNil(mv.Key) {
			continue
		}
		if _, merge := mv.Key.(*ast.MergeKeyNode); !merge {
			continue
		}
		src, _ := doc.deref(mv.Value)
		if seq, ok := src.(*ast.SequenceNode); ok {
			for _, e := range seq.Values {
				r, _ := doc.deref(e)
				if found := doc.lookup(r, key, depth+1); found != nil {
					return found
				}
			}
			continue
		}
		if found := doc.lookup(src, key, depth+1); found != nil {
			return found
		}
	}
	return nil
}

// scalarText is the text of a scalar key.
func scalarText(n ast.Node) string {
	switch n := n.(type) {
	case *ast.StringNode:
		return n.Value
	case *ast.LiteralNode:
		if n.Value != nil {
			return n.Value.Value
		}
		return ""
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}
