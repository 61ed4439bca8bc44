package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// The defaults and limits of the schema; configs/README.md documents them.
const (
	defaultOutput         = "unwindd-out"
	defaultLevel          = "info"
	defaultFormat         = "console"
	defaultPerfHz         = 999
	maxPerfHz             = 100000 // the kernel's default perf_event_max_sample_rate
	defaultStackSize      = 8192
	maxStackSize          = 65528 // the largest multiple of 8 in a sample's u16 size
	defaultPtraceHz       = 99
	maxPtraceHz           = 10000 // each sample stops the task: past this, tracing is the workload
	defaultOutbox         = 8192
	maxOutbox             = 1 << 20
	defaultDecideDeadline = 20 * time.Millisecond
	maxDecideDeadline     = time.Second // a decision holds the entry (under ptrace, the task)
	maxNameLen            = 64
)

var (
	levels     = []string{"debug", "info", "warn", "error"}
	formats    = []string{"console", "json"}
	kinds      = []string{string(SourcePerf), string(SourcePtrace)}
	methods    = []string{string(MethodSFrame), string(MethodCFI), string(MethodFP)}
	nameRE     = regexp.MustCompile(`^[a-z0-9_-]+$`)
	tpPartRE   = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	defaultUnw = []Method{MethodSFrame, MethodCFI, MethodFP}
)

// docInfo is what a Config keeps of its file for PluginProblem.
type docInfo struct {
	src     []byte
	anchors []*ast.AnchorNode
	lines   []int    // offsets of the lines in src
	runes   [][]rune // while parsing, the lines as runes, made on first use
}

// decoder walks the syntax tree of one deployment.
type decoder struct {
	problems
	doc    *docInfo
	budget int // nodes left to build config blocks with (aliases expand)
}

// maxBlockNodes bounds the values built for the plugins' config blocks of
// one file, aliases expanded: a few small aliases must not expand into
// gigabytes ("billion laughs").
const maxBlockNodes = 1 << 17

// maxDepth bounds nesting in config blocks and chains of aliases.
const maxDepth = 100

func parse(name, dir string, data []byte) (*Config, error) {
	d := &decoder{problems: problems{file: name}, doc: &docInfo{src: data}, budget: maxBlockNodes}
	if len(data) > MaxSize {
		d.add(pos{1, 1}, "", "the file is %d bytes, more than the %d a deployment may have", len(data), MaxSize)
		return nil, d.err(nil)
	}
	if !utf8.Valid(data) {
		d.add(invalidUTF8(data), "", "the file is not UTF-8 text")
		return nil, d.err(nil)
	}
	// YAML ends lines with "\r\n", "\r" or "\n", and folds each to "\n" in
	// values; goccy/go-yaml v1.19.2 miscounts lines at a "\r\n" after a
	// comment. Parse with "\n" alone.
	if bytes.IndexByte(data, '\r') >= 0 {
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
		data = bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
		d.doc.src = data
	}
	d.doc.lines = lineStarts(data)
	d.doc.runes = make([][]rune, len(d.doc.lines))
	defer func() { d.doc.runes = nil }()
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		d.syntax(err)
		return nil, d.err(data)
	}
	var root ast.Node
	for i, doc := range f.Docs {
		if doc == nil || isNil(doc.Body) {
			continue
		}
		if root != nil {
			at, _ := posOf(doc.Body)
			if doc.Start != nil && doc.Start.Position != nil {
				at = pos{doc.Start.Position.Line, doc.Start.Position.Column}
			}
			d.add(at, "", "a second YAML document (document %d): a file holds one deployment", i+1)
			break
		}
		root = doc.Body
	}
	if root != nil {
		d.collectAnchors(root, 0)
	}
	c := &Config{
		File:   name,
		Output: defaultOutput,
		Log:    Log{Level: defaultLevel, Format: defaultFormat},
		Source: Source{
			Kind:   SourcePerf,
			Perf:   PerfSource{Frequency: defaultPerfHz, StackSize: defaultStackSize, Events: []string{}},
			Ptrace: PtraceSource{Frequency: defaultPtraceHz},
		},
		Unwind: slices.Clone(defaultUnw),
		dir:    dir,
		doc:    d.doc,
	}
	d.deployment(root, c)
	if err := d.err(data); err != nil {
		return nil, err
	}
	return c, nil
}

// invalidUTF8 returns the position of the first byte of data that is not
// UTF-8.
func invalidUTF8(data []byte) pos {
	p := pos{1, 1}
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			return p
		case r == '\r' && i+1 < len(data) && data[i+1] == '\n':
			p.col++ // the line ends at the \n
		case r == '\r' || r == '\n':
			p.line, p.col = p.line+1, 1
		default:
			p.col++
		}
		i += n
	}
	return p
}

// syntax records the parser's error at its token.
func (d *decoder) syntax(err error) {
	at, msg := pos{1, 1}, err.Error()
	var ye yaml.Error
	if errors.As(err, &ye) {
		msg = ye.GetMessage()
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			at = pos{tk.Position.Line, tk.Position.Column}
		}
	}
	d.add(at, "", "YAML: %s", msg)
}

// collectAnchors lists the anchors under n, in the order of the file.
func (d *decoder) collectAnchors(n ast.Node, depth int) {
	if isNil(n) || depth > maxDepth*4 {
		return
	}
	switch n := n.(type) {
	case *ast.AnchorNode:
		d.doc.anchors = append(d.doc.anchors, n)
		d.collectAnchors(n.Value, depth+1)
	case *ast.TagNode:
		d.collectAnchors(n.Value, depth+1)
	case *ast.MappingNode:
		for _, mv := range n.Values {
			if mv != nil {
				d.collectAnchors(mv.Key, depth+1)
				d.collectAnchors(mv.Value, depth+1)
			}
		}
	case *ast.MappingValueNode:
		d.collectAnchors(n.Key, depth+1)
		d.collectAnchors(n.Value, depth+1)
	case *ast.SequenceNode:
		for _, v := range n.Values {
			d.collectAnchors(v, depth+1)
		}
	}
}

// resolve follows anchors and aliases from n to the node they stand for
// (a tag is returned as is). at is where n itself is. It reports a problem
// and returns false for an unknown anchor or a loop of aliases.
func (d *decoder) resolve(n ast.Node, at pos, path string) (ast.Node, bool) {
	r, bad := d.doc.deref(n)
	if bad != "" {
		d.add(at, path, "%s", bad)
		return nil, false
	}
	return r, true
}

// deref follows anchors and aliases from n to the node they stand for (a
// tag is returned as is); on failure it says why.
func (doc *docInfo) deref(n ast.Node) (ast.Node, string) {
	for range maxDepth {
		if isNil(n) {
			return nil, ""
		}
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
		case *ast.AliasNode:
			target := doc.alias(x)
			if target == nil {
				return nil, fmt.Sprintf("alias *%s: no anchor &%s before it", aliasName(x), aliasName(x))
			}
			n = target
		default:
			return n, ""
		}
	}
	return nil, fmt.Sprintf("aliases nested more than %d deep", maxDepth)
}

// alias returns the value of the last anchor before a with a's name, or nil.
func (doc *docInfo) alias(a *ast.AliasNode) ast.Node {
	name := aliasName(a)
	at, ok := posOf(a)
	if !ok {
		return nil
	}
	var found *ast.AnchorNode
	var foundAt pos
	for _, an := range doc.anchors {
		ap, ok := posOf(an)
		if !ok || !ap.before(at) || anchorName(an) != name {
			continue
		}
		if found == nil || foundAt.before(ap) {
			found, foundAt = an, ap
		}
	}
	if found == nil || isNil(found.Value) {
		return nil
	}
	return found.Value
}

func aliasName(a *ast.AliasNode) string {
	if isNil(a.Value) || a.Value.GetToken() == nil {
		return ""
	}
	return a.Value.GetToken().Value
}

func anchorName(a *ast.AnchorNode) string {
	if isNil(a.Name) || a.Name.GetToken() == nil {
		return ""
	}
	return a.Name.GetToken().Value
}

// isNil reports whether n is nil or a nil pointer in an interface.
func isNil(n ast.Node) bool {
	if n == nil {
		return true
	}
	v := reflect.ValueOf(n)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// posOf returns where n starts: for a mapping, its first key.
func posOf(n ast.Node) (pos, bool) {
	p, _, ok := tokenPos(n)
	return p, ok
}

// tokenPos returns where n starts, as posOf, and n's token's value.
func tokenPos(n ast.Node) (pos, string, bool) {
	if isNil(n) {
		return pos{}, "", false
	}
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 && m.Values[0] != nil && !isNil(m.Values[0].Key) {
		n = m.Values[0].Key
	}
	if mv, ok := n.(*ast.MappingValueNode); ok && !isNil(mv.Key) {
		n = mv.Key
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil || tk.Position.Line < 1 || tk.Position.Column < 1 {
		return pos{}, "", false
	}
	return pos{tk.Position.Line, tk.Position.Column}, tk.Value, true
}

// posOr returns where n starts, or def if n has no position. For a
// mapping, that is its first key.
//
// goccy/go-yaml v1.19.2 places a plain scalar followed by blanks as many
// columns too far right as there are blanks ("a: big   " puts big at 1:7);
// posOr moves such a position back to where the token's text is.
func (doc *docInfo) posOr(n ast.Node, def pos) pos {
	p, text, ok := tokenPos(n)
	if !ok {
		return def
	}
	line := doc.line(p.line)
	if text == "" || line == nil {
		return p
	}
	val := []rune(text)
	// Is val at column c, followed by blanks up to the reported column
	// shifted by as many?
	at := func(c int) bool {
		i := c - 1
		if i < 0 || i+len(val) > len(line) || string(line[i:i+len(val)]) != text {
			return false
		}
		for j := i + len(val); j < i+len(val)+p.col-c; j++ {
			if j >= len(line) || line[j] != ' ' && line[j] != '\t' {
				return false
			}
		}
		return true
	}
	for c := p.col; c >= 1 && p.col-c <= maxShift; c-- {
		if at(c) {
			return pos{p.line, c}
		}
	}
	return p
}

// maxShift bounds the blanks posOr looks past.
const maxShift = 256

// line returns the text of the 1-based line n, or nil.
func (doc *docInfo) line(n int) []rune {
	if n < 1 || n > len(doc.lines) {
		return nil
	}
	if doc.runes == nil { // after Parse: the Config is read-only
		return []rune(string(lineText(doc.src, doc.lines, n)))
	}
	if doc.runes[n-1] == nil {
		doc.runes[n-1] = append([]rune{}, []rune(string(lineText(doc.src, doc.lines, n)))...)
	}
	return doc.runes[n-1]
}

// entries returns the key/value pairs of a mapping node.
func entries(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch m := n.(type) {
	case *ast.MappingNode:
		return m.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}, true
	}
	return nil, false
}

// describe says what n is, for "got …" in messages.
func describe(n ast.Node) string {
	switch n := n.(type) {
	case nil, *ast.NullNode:
		return "nothing"
	case *ast.StringNode:
		return quote(n.Value)
	case *ast.LiteralNode:
		if n.Value == nil {
			return "a block string"
		}
		return quote(n.Value.Value)
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		if tk := n.GetToken(); tk != nil {
			return tk.Value
		}
		return "a number"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.TagNode:
		tag := "a tag"
		if n.Start != nil {
			tag = n.Start.Value
		}
		return "a value tagged " + tag + " (tags are only allowed in a plugin's config block)"
	}
	return "a " + strings.ToLower(n.Type().String())
}

// quote quotes s for a message, shortened if long.
func quote(s string) string {
	const max = 60
	if r := []rune(s); len(r) > max {
		return strconv.Quote(string(r[:max])) + "…"
	}
	return strconv.Quote(s)
}

// isNull reports whether n (resolved) is nothing: an absent or null value.
func isNull(n ast.Node) bool {
	if isNil(n) {
		return true
	}
	_, ok := n.(*ast.NullNode)
	return ok
}

// field is one key of a mapping in the schema.
type field struct {
	name     string
	required bool
	// set decodes the value v (aliases resolved; possibly nil) found at at
	// (the value's position, or the key's for a block collection).
	set func(v ast.Node, at pos, path string)
}

// object decodes the mapping n, found at at, field by field: unknown keys,
// non-string keys, merge keys and missing required keys are problems. A
// null n is an empty mapping when nullOK.
func (d *decoder) object(n ast.Node, at pos, path, want string, nullOK bool, fields []field) {
	if isNull(n) && nullOK {
		n = nil
	}
	var values []*ast.MappingValueNode
	if n != nil {
		var ok bool
		if values, ok = entries(n); !ok {
			d.add(at, path, "want %s, got %s", want, describe(n))
			return
		}
	}
	seen := map[string]pos{}
	for _, mv := range values {
		if mv == nil {
			continue
		}
		kat := d.doc.posOr(mv.Key, at)
		key, ok := d.key(mv.Key, kat, path)
		if !ok {
			continue
		}
		kpath := join(path, key)
		if first, dup := seen[key]; dup {
			d.add(kat, kpath, "key given twice (first at line %d)", first.line)
			continue
		}
		seen[key] = kat
		i := slices.IndexFunc(fields, func(f field) bool { return f.name == key })
		if i < 0 {
			d.add(kat, kpath, "unknown key; known keys here: %s", fieldNames(fields))
			continue
		}
		vat := d.doc.posOr(mv.Value, kat)
		v, ok := d.resolve(mv.Value, vat, kpath)
		if !ok {
			continue
		}
		if isCollection(v) {
			// A collection (or nothing) is reported at its key: its own
			// position is its first element's, maybe lines below.
			vat = kat
		}
		fields[i].set(v, vat, kpath)
	}
	for _, f := range fields {
		if _, ok := seen[f.name]; f.required && !ok {
			d.add(at, join(path, f.name), "missing (required)")
		}
	}
}

// isCollection reports whether n (resolved) is a mapping, a list or
// nothing: a value whose problems are reported at its key or "-".
func isCollection(n ast.Node) bool {
	switch n.(type) {
	case nil, *ast.NullNode, *ast.MappingNode, *ast.MappingValueNode, *ast.SequenceNode:
		return true
	}
	return isNil(n)
}

// key returns the text of a mapping key of the schema.
func (d *decoder) key(k ast.MapKeyNode, at pos, path string) (string, bool) {
	switch k := ast.Node(k).(type) {
	case *ast.StringNode:
		return k.Value, true
	case *ast.MergeKeyNode:
		d.add(at, join(path, "<<"), "merge keys are only allowed in a plugin's config block")
	case nil:
		d.add(at, path, "a mapping entry without a key")
	default:
		d.add(at, path, "want a key name, got %s", describe(k))
	}
	return "", false
}

func fieldNames(fields []field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

// join appends the key name to the field path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// index appends [i] to the field path.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// str decodes a string; want says what is wanted, for the message.
func (d *decoder) str(v ast.Node, at pos, path, want string) (string, bool) {
	var s string
	switch v := v.(type) {
	case *ast.StringNode:
		s = v.Value
	case *ast.LiteralNode:
		if v.Value == nil {
			d.add(at, path, "want %s, got %s", want, describe(v))
			return "", false
		}
		s = v.Value.Value
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		d.add(at, path, "want %s, got %s (quote it to make it a string)", want, describe(v))
		return "", false
	default:
		d.add(at, path, "want %s, got %s", want, describe(v))
		return "", false
	}
	if strings.IndexByte(s, 0) >= 0 {
		d.add(at, path, "want %s, got a string with a NUL character", want)
		return "", false
	}
	return s, true
}

// nonEmpty decodes a string that must not be empty.
func (d *decoder) nonEmpty(v ast.Node, at pos, path, want string) (string, bool) {
	s, ok := d.str(v, at, path, want)
	if ok && s == "" {
		d.add(at, path, "want %s, got an empty string", want)
		return "", false
	}
	return s, ok
}

// integer decodes an integer in [lo, hi]; want says what is wanted.
func (d *decoder) integer(v ast.Node, at pos, path, want string, lo, hi int64) (int64, bool) {
	iv, ok := v.(*ast.IntegerNode)
	if !ok {
		d.add(at, path, "want %s, got %s", want, describe(v))
		return 0, false
	}
	var n int64
	switch x := iv.Value.(type) {
	case int64:
		n = x
	case uint64:
		if x > uint64(hi) {
			d.add(at, path, "want %s, got %s", want, describe(v))
			return 0, false
		}
		n = int64(x)
	default:
		d.add(at, path, "want %s, got %s", want, describe(v))
		return 0, false
	}
	if n < lo || n > hi {
		d.add(at, path, "want %s, got %s", want, describe(v))
		return 0, false
	}
	return n, true
}

// enum decodes one of the strings allowed.
func (d *decoder) enum(v ast.Node, at pos, path string, allowed []string) (string, bool) {
	want := "one of " + strings.Join(allowed, ", ")
	s, ok := d.str(v, at, path, want)
	if !ok {
		return "", false
	}
	if !slices.Contains(allowed, s) {
		d.add(at, path, "want %s, got %s", want, quote(s))
		return "", false
	}
	return s, true
}

// list decodes a sequence (null: empty), calling each for every element
// with its position and path; it returns the number of elements, or -1 if
// v is not a list.
func (d *decoder) seq(v ast.Node, at pos, path, want string, each func(e ast.Node, at pos, path string, i int)) int {
	if isNull(v) {
		return 0
	}
	seq, ok := v.(*ast.SequenceNode)
	if !ok {
		d.add(at, path, "want %s, got %s", want, describe(v))
		return -1
	}
	for i, e := range seq.Values {
		epath := index(path, i)
		eat := d.doc.posOr(e, at)
		if isCollection(e) && !seq.IsFlowStyle && i < len(seq.Entries) && seq.Entries[i] != nil {
			eat = d.doc.posOr(seq.Entries[i], eat) // a collection in a block list: at its "-"
		}
		r, ok := d.resolve(e, eat, epath)
		if !ok {
			continue
		}
		each(r, eat, epath, i)
	}
	return len(seq.Values)
}

// deployment decodes the document's root mapping into c.
func (d *decoder) deployment(root ast.Node, c *Config) {
	at := d.doc.posOr(root, pos{1, 1})
	root, ok := d.resolve(root, at, "")
	if !ok {
		return
	}
	d.object(root, at, "", "a mapping of deployment keys (output, log, source, unwind, plugins)", true, []field{
		{name: "output", set: func(v ast.Node, at pos, path string) {
			if s, ok := d.nonEmpty(v, at, path, "a directory"); ok {
				c.Output = s
			}
		}},
		{name: "log", set: func(v ast.Node, at pos, path string) { d.log(v, at, path, &c.Log) }},
		{name: "source", set: func(v ast.Node, at pos, path string) { d.source(v, at, path, &c.Source) }},
		{name: "unwind", set: func(v ast.Node, at pos, path string) { d.unwind(v, at, path, c) }},
		{name: "plugins", required: true, set: func(v ast.Node, at pos, path string) { d.plugins(v, at, path, c) }},
	})
}

func (d *decoder) log(v ast.Node, at pos, path string, l *Log) {
	d.object(v, at, path, "a mapping (level, format)", true, []field{
		{name: "level", set: func(v ast.Node, at pos, path string) {
			if s, ok := d.enum(v, at, path, levels); ok {
				l.Level = s
			}
		}},
		{name: "format", set: func(v ast.Node, at pos, path string) {
			if s, ok := d.enum(v, at, path, formats); ok {
				l.Format = s
			}
		}},
	})
}

func (d *decoder) source(v ast.Node, at pos, path string, s *Source) {
	d.object(v, at, path, "a mapping (kind, perf, ptrace)", true, []field{
		{name: "kind", set: func(v ast.Node, at pos, path string) {
			if k, ok := d.enum(v, at, path, kinds); ok {
				s.Kind = SourceKind(k)
			}
		}},
		{name: "perf", set: func(v ast.Node, at pos, path string) {
			d.object(v, at, path, "a mapping (frequency, stack_size, events)", true, []field{
				{name: "frequency", set: func(v ast.Node, at pos, path string) {
					if n, ok := d.integer(v, at, path, fmt.Sprintf("a frequency in Hz from 1 to %d", maxPerfHz), 1, maxPerfHz); ok {
						s.Perf.Frequency = int(n)
					}
				}},
				{name: "stack_size", set: func(v ast.Node, at pos, path string) {
					want := fmt.Sprintf("a size in bytes from 8 to %d, a multiple of 8", maxStackSize)
					if n, ok := d.integer(v, at, path, want, 8, maxStackSize); ok {
						if n%8 != 0 {
							d.add(at, path, "want %s, got %d", want, n)
							return
						}
						s.Perf.StackSize = int(n)
					}
				}},
				{name: "events", set: func(v ast.Node, at pos, path string) {
					events := []string{}
					seen := map[string]bool{}
					d.seq(v, at, path, `a list of tracepoints ("group:name")`, func(e ast.Node, at pos, path string, _ int) {
						tp, ok := d.nonEmpty(e, at, path, `a tracepoint "group:name"`)
						if !ok {
							return
						}
						group, name, found := strings.Cut(tp, ":")
						if !found || !tpPartRE.MatchString(group) || !tpPartRE.MatchString(name) {
							d.add(at, path, `want a tracepoint "group:name" (letters, digits, _), got %s`, quote(tp))
							return
						}
						if seen[tp] {
							d.add(at, path, "tracepoint %s listed twice", quote(tp))
							return
						}
						seen[tp] = true
						events = append(events, tp)
					})
					s.Perf.Events = events
				}},
			})
		}},
		{name: "ptrace", set: func(v ast.Node, at pos, path string) {
			d.object(v, at, path, "a mapping (frequency)", true, []field{
				{name: "frequency", set: func(v ast.Node, at pos, path string) {
					if n, ok := d.integer(v, at, path, fmt.Sprintf("a frequency in Hz from 1 to %d", maxPtraceHz), 1, maxPtraceHz); ok {
						s.Ptrace.Frequency = int(n)
					}
				}},
			})
		}},
	})
}

func (d *decoder) unwind(v ast.Node, at pos, path string, c *Config) {
	var ms []Method
	want := "a list of unwind methods (" + strings.Join(methods, ", ") + ")"
	n := d.seq(v, at, path, want, func(e ast.Node, at pos, path string, _ int) {
		s, ok := d.enum(e, at, path, methods)
		if !ok {
			return
		}
		if slices.Contains(ms, Method(s)) {
			d.add(at, path, "method %s listed twice", s)
			return
		}
		ms = append(ms, Method(s))
	})
	switch {
	case n == 0:
		d.add(at, path, "want at least one unwind method (%s)", strings.Join(methods, ", "))
	case n > 0 && len(ms) == n:
		c.Unwind = ms
	}
}

func (d *decoder) plugins(v ast.Node, at pos, path string, c *Config) {
	c.Plugins = []Plugin{}
	type use struct{ i, line int }
	first := map[string]use{} // by name
	n := d.seq(v, at, path, "a list of plugins", func(e ast.Node, eat pos, epath string, i int) {
		if i == MaxPlugins {
			d.add(eat, epath, "more than %d plugins (the engine has %d tracer bits)", MaxPlugins, MaxPlugins)
		}
		p, ok := d.plugin(e, eat, epath)
		if p.Name != "" {
			if u, dup := first[p.Name]; dup {
				d.add(p.src.name, join(epath, "name"), "plugin name %s already used by plugins[%d] (line %d)", quote(p.Name), u.i, u.line)
				return
			}
			first[p.Name] = use{i, p.src.name.line}
		}
		if ok {
			c.Plugins = append(c.Plugins, p)
		}
	})
	if n == 0 {
		d.add(at, path, "want at least one plugin")
	}
}

func (d *decoder) plugin(v ast.Node, at pos, path string) (Plugin, bool) {
	p := Plugin{Outbox: defaultOutbox, DecideDeadline: defaultDecideDeadline, src: pluginSrc{entry: at}}
	before := len(d.problems.list) + d.problems.omitted
	if isNull(v) {
		d.add(at, path, "want a plugin (a mapping with at least name and path), got nothing")
		return p, false
	}
	userOrGroup := func(dst *string, where *pos, what string) func(v ast.Node, at pos, path string) {
		return func(v ast.Node, at pos, path string) {
			*where = at
			if iv, ok := v.(*ast.IntegerNode); ok { // a numeric id
				if n, ok := d.integer(iv, at, path, "a "+what+" name or numeric id", 0, 1<<32-2); ok {
					*dst = strconv.FormatInt(n, 10)
				}
				return
			}
			if s, ok := d.nonEmpty(v, at, path, "a "+what+" name or numeric id"); ok {
				*dst = s
			}
		}
	}
	d.object(v, at, path, "a plugin (a mapping with at least name and path)", false, []field{
		{name: "name", required: true, set: func(v ast.Node, at pos, path string) {
			p.src.name = at
			s, ok := d.nonEmpty(v, at, path, "a plugin name ([a-z0-9_-]+)")
			if !ok {
				return
			}
			if !nameRE.MatchString(s) || len(s) > maxNameLen {
				d.add(at, path, "want a plugin name of 1 to %d characters a-z, 0-9, _ and -, got %s", maxNameLen, quote(s))
				return
			}
			p.Name = s
		}},
		{name: "path", required: true, set: func(v ast.Node, at pos, path string) {
			p.src.path = at
			if s, ok := d.nonEmpty(v, at, path, "a built-in plugin's name or a path to a plugin binary"); ok {
				p.Path = s
			}
		}},
		{name: "sha256", set: func(v ast.Node, at pos, path string) {
			s, ok := d.str(v, at, path, "a SHA-256 as 64 hex digits")
			if !ok {
				return
			}
			if !sha256RE.MatchString(s) {
				d.add(at, path, "want a SHA-256 as 64 hex digits, got %s", quote(s))
				return
			}
			p.SHA256 = strings.ToLower(s)
		}},
		{name: "user", set: userOrGroup(&p.User, &p.src.user, "user")},
		{name: "group", set: userOrGroup(&p.Group, &p.src.group, "group")},
		{name: "args", set: func(v ast.Node, at pos, path string) {
			args := []string{}
			d.seq(v, at, path, "a list of arguments", func(e ast.Node, at pos, path string, _ int) {
				if s, ok := d.str(e, at, path, "an argument (a string)"); ok {
					args = append(args, s)
				}
			})
			p.Args = args
		}},
		{name: "env", set: func(v ast.Node, at pos, path string) {
			env := []string{}
			if isNull(v) {
				p.Env = env
				return
			}
			values, ok := entries(v)
			if !ok {
				d.add(at, path, "want a mapping of environment variables (KEY: value), got %s", describe(v))
				return
			}
			seen := map[string]bool{}
			for _, mv := range values {
				if mv == nil {
					continue
				}
				kat := d.doc.posOr(mv.Key, at)
				k, ok := d.key(mv.Key, kat, path)
				if !ok {
					continue
				}
				kpath := join(path, k)
				if k == "" || strings.ContainsAny(k, "=\x00") {
					d.add(kat, kpath, "want an environment variable name (no = or NUL), got %s", quote(k))
					continue
				}
				if seen[k] {
					d.add(kat, kpath, "variable given twice")
					continue
				}
				seen[k] = true
				vat := d.doc.posOr(mv.Value, kat)
				val, ok := d.resolve(mv.Value, vat, kpath)
				if !ok {
					continue
				}
				if s, ok := d.str(val, vat, kpath, "the variable's value (a string)"); ok {
					env = append(env, k+"="+s)
				}
			}
			p.Env = env
		}},
		{name: "outbox", set: func(v ast.Node, at pos, path string) {
			if n, ok := d.integer(v, at, path, fmt.Sprintf("a positive integer (at most %d)", maxOutbox), 1, maxOutbox); ok {
				p.Outbox = int(n)
			}
		}},
		{name: "decide_deadline", set: func(v ast.Node, at pos, path string) {
			want := fmt.Sprintf("a duration such as 20ms (more than 0, at most %v)", maxDecideDeadline)
			switch v.(type) {
			case *ast.IntegerNode, *ast.FloatNode:
				d.add(at, path, "want %s, got %s (a duration needs a unit: ns, us, ms, s)", want, describe(v))
				return
			}
			s, ok := d.str(v, at, path, want)
			if !ok {
				return
			}
			dur, err := time.ParseDuration(s)
			if err != nil || dur <= 0 || dur > maxDecideDeadline {
				d.add(at, path, "want %s, got %s", want, quote(s))
				return
			}
			p.DecideDeadline = dur
		}},
		{name: "config", set: func(v ast.Node, at pos, path string) {
			p.src.configKey = at
			p.src.config = v
			if isNull(v) {
				return
			}
			val, ok := d.value(v, at, path, 0)
			if !ok {
				return
			}
			b, err := encode(val)
			if err != nil {
				d.add(at, path, "cannot re-encode the config block: %v", err)
				return
			}
			p.Config = b
		}},
	})
	return p, len(d.problems.list)+d.problems.omitted == before
}
