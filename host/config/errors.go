package config

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxProblems is how many problems an [*Error] lists; past it, the rest are
// only counted ([Error.Omitted]).
const MaxProblems = 20

// Problem is one mistake in a deployment file, at a position in it.
type Problem struct {
	File   string // the file's name, as given to Load or Parse
	Line   int    // 1-based line
	Column int    // 1-based column, in characters
	Path   string // the field at fault, e.g. "plugins[1].outbox"; "" for the file as a whole
	Msg    string // what is wrong, e.g. `want a positive integer, got "big"`
}

// String formats p as "file:line:col: path: msg", the form compilers and
// editors jump to.
func (p Problem) String() string {
	if p.Path == "" {
		return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", p.File, p.Line, p.Column, p.Path, p.Msg)
}

// Error is what [Parse], [Load] and [Config.Specs] return when a deployment
// has mistakes: every problem found in the file (up to [MaxProblems]), in
// the order of the file.
type Error struct {
	Problems []Problem // at least one
	Omitted  int       // problems found past MaxProblems, not in Problems
	src      []byte    // the file's text, for Annotated; may be nil
}

// Error lists the problems, one per line (see [Problem.String]).
func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	if e.Omitted > 0 {
		fmt.Fprintf(&b, "\n(and %d more problems)", e.Omitted)
	}
	return b.String()
}

// Annotated lists the problems as [Error.Error] does, each followed by the
// source line it points at and a caret under its column, for a terminal:
//
//	deploy.yaml:12:13: plugins[1].outbox: want a positive integer, got "big"
//	   12 |     outbox: big
//	      |             ^
func (e *Error) Annotated() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
		b.WriteString(excerpt(e.src, p.Line, p.Column))
	}
	if e.Omitted > 0 {
		fmt.Fprintf(&b, "\n(and %d more problems)", e.Omitted)
	}
	return b.String()
}

// excerpt returns "\n" + line number + the source line, and a caret line
// under column col; "" when line is not in src.
func excerpt(src []byte, line, col int) string {
	starts := lineStarts(src)
	if line < 1 || col < 1 || line > len(starts) {
		return ""
	}
	rest := lineText(src, starts, line)
	text := strings.TrimRight(string(rest), " \t")
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	// The caret line keeps the tabs of the source line before the column so
	// that the caret lands under it whatever the tab width.
	var pad strings.Builder
	n := 0
	for _, r := range text {
		if n++; n >= col {
			break
		}
		if r == '\t' {
			pad.WriteByte('\t')
		} else {
			pad.WriteByte(' ')
		}
	}
	for ; n < col; n++ { // a column past the end of the line (e.g. at its newline)
		pad.WriteByte(' ')
	}
	num := fmt.Sprintf("%5d | ", line)
	return "\n" + num + text + "\n" + strings.Repeat(" ", len(num)-2) + "| " + pad.String() + "^"
}

// lineStarts returns the offset in src of the start of each line. As in
// YAML (and goccy/go-yaml's positions), "\r\n", "\r" and "\n" end a line.
func lineStarts(src []byte) []int {
	starts := []int{0}
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '\r':
			if i+1 < len(src) && src[i+1] == '\n' {
				i++
			}
			starts = append(starts, i+1)
		case '\n':
			starts = append(starts, i+1)
		}
	}
	return starts
}

// lineText returns the 1-based line n of src, without its line break.
func lineText(src []byte, starts []int, n int) []byte {
	start, end := starts[n-1], len(src)
	if n < len(starts) {
		end = starts[n]
	}
	b := src[start:end]
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// problems collects the problems of one file.
type problems struct {
	file    string
	list    []Problem
	omitted int
}

// maxCollected bounds the problems kept while a file is checked, before
// they are sorted and cut to MaxProblems.
const maxCollected = 50 * MaxProblems

// add records a problem at line:col (clamped to 1:1 at least).
func (ps *problems) add(at pos, path, format string, args ...any) {
	if len(ps.list) >= maxCollected {
		ps.omitted++
		return
	}
	ps.list = append(ps.list, Problem{
		File: ps.file, Line: max(at.line, 1), Column: max(at.col, 1),
		Path: path, Msg: fmt.Sprintf(format, args...),
	})
}

// err returns the problems as an *Error, in the order of the file and cut
// to MaxProblems, or nil if there are none.
func (ps *problems) err(src []byte) error {
	if len(ps.list) == 0 {
		return nil
	}
	list, omitted := ps.list, ps.omitted
	slices.SortStableFunc(list, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	if len(list) > MaxProblems {
		omitted += len(list) - MaxProblems
		list = list[:MaxProblems:MaxProblems]
	}
	return &Error{Problems: list, Omitted: omitted, src: src}
}

// pos is a position in the file: 1-based line and column; zero when unknown.
type pos struct{ line, col int }

// before reports whether p comes before q in the file.
func (p pos) before(q pos) bool {
	return p.line < q.line || p.line == q.line && p.col < q.col
}
