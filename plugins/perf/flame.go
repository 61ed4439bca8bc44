package main

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The flame graph's layout, in SVG user units (CSS pixels at scale 1), as
// flamegraph.pl's defaults: frames of flameFrameHeight stacked up from the
// details line at the bottom, the title and the controls at the top.
const (
	flameImageWidth  = 1200
	flamePad         = 10                           // left and right of the frames
	flameWidth       = flameImageWidth - 2*flamePad // the root's width
	flameFrameHeight = 16                           // per depth; a frame's rect is 1 less, so frames stand apart
	flameFontSize    = 12                           // px
	flameCharWidth   = flameFontSize * 0.59         // px per character of a label (Verdana's average)
	flameTop         = flameFontSize * 3            // above the frames: title, Reset Zoom, Search
	flameBottom      = flameFontSize*2 + 10         // below the frames: the details line
	flameTitleY      = flameFontSize * 2            // the baseline of the title and the controls
	flameMinShare    = 1000                         // frames narrower than 1/flameMinShare of the width are left out
	flameHighlight   = "rgb(230,0,230)"             // search matches: outside the hot palette
	flameNoSamples   = "No samples"                 // what an empty graph says
)

// flameFrame is one frame of a flame graph: a name on the path from the
// root, merged over every stack that shares the path.
type flameFrame struct {
	name    string // as folded: the comm at depth 1, then the functions
	depth   int    // 0 for the root ("all")
	start   uint64 // the samples of the frames left of it, from the left edge
	samples uint64 // its own and its descendants'
}

// flameGraph is the frames of a flame graph that are drawn.
type flameGraph struct {
	frames   []flameFrame // preorder: a frame, then its children left to right
	total    uint64       // the samples of every stack, the root's
	maxDepth int          // of the drawn frames
}

// writeFlame writes the folded stacks lines as flame.svg, an interactive
// flame graph in the layout of flamegraph.pl: an "all" root at the bottom,
// the comms above it, then each stack root first; frames with the same
// name on the same path are merged, a parent's children are sorted by name
// (byte order) left to right, and a frame's width is its share of the
// samples. Frames narrower than 1/flameMinShare of the width are left out
// (their samples count in their parent's width, as flamegraph.pl's
// minwidth does), so the SVG stays small however many distinct stacks
// there are. It sorts lines in place.
//
// The SVG is self-contained: its CSS and JavaScript are inline and it
// refers to nothing outside itself. Each frame is a
//
//	<g class="f" data-name="name" data-samples="N" data-start="S">
//
// with a <title> ("name (N samples, P%)"), a <rect> and a <text> (the name,
// cut to fit); data-start is the samples left of the frame. The root's
// data-samples is the total. Moving the mouse over a frame shows its title
// in the details line at the bottom, a click zooms into it (ancestors span
// the width, dimmed; what is not below it is hidden), "Reset Zoom" undoes
// that, and "Search" (or Ctrl-F, or ?s=regexp in the URL) highlights the
// frames whose names match a JavaScript regular expression and shows the
// share of samples under them.
func writeFlame(w io.Writer, lines []foldedLine) error {
	g := buildFlame(lines)
	return g.write(w)
}

// writeFlame writes b's folded stacks as a flame graph (see writeFlame).
func (b *foldedBuilder) writeFlame(w io.Writer) error {
	return writeFlame(w, b.lines())
}

// compareFolded orders folded stacks frame by frame, each frame by its
// name's bytes: ";" sorts before every byte, so that a frame comes before
// the frames whose names it is a prefix of, and the stacks of a frame's
// children come in the order of the children's names.
func compareFolded(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	// The common prefix, 8 bytes at a time: sorting spends its time here.
	for i+8 <= n && load64(a, i) == load64(b, i) {
		i += 8
	}
	for i < n && a[i] == b[i] {
		i++
	}
	switch {
	case i == n:
		return len(a) - len(b) // a prefix first
	case a[i] == ';':
		return -1
	case b[i] == ';':
		return 1
	}
	return int(a[i]) - int(b[i])
}

// load64 is the 8 bytes of s from i, as one word (one load, once the
// compiler combines them).
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// buildFlame merges lines into the frames to draw. Sorted frame by frame,
// the stacks of each frame are a run of lines, so one pass with the path
// of open frames finds each frame's samples when it closes; only the open
// path and the frames to draw (at most flameMinShare per depth) are kept.
func buildFlame(lines []foldedLine) flameGraph {
	var g flameGraph
	for i := range lines {
		g.total += lines[i].count
	}
	if g.total == 0 {
		return g
	}
	slices.SortFunc(lines, func(x, y foldedLine) int { return compareFolded(x.stack, y.stack) })
	// A frame narrower than the limit goes, one at the limit stays.
	minSamples := (g.total-1)/flameMinShare + 1 // ceil(total / flameMinShare)
	type open struct {
		name  string
		start uint64
	}
	path := []open{{name: "all"}}
	var pos uint64 // the samples of the lines done
	closeTo := func(depth int) {
		for len(path) > depth {
			d := len(path) - 1
			o := path[d]
			path = path[:d]
			if n := pos - o.start; n > 0 && n >= minSamples {
				g.frames = append(g.frames, flameFrame{name: o.name, depth: d, start: o.start, samples: n})
				g.maxDepth = max(g.maxDepth, d)
			}
		}
	}
	for i := range lines {
		rest, depth, same := lines[i].stack, 1, true
		for more := true; more; depth++ {
			name := rest
			if j := strings.IndexByte(rest, ';'); j >= 0 {
				name, rest = rest[:j], rest[j+1:]
			} else {
				more = false
			}
			if same && depth < len(path) && path[depth].name == name {
				continue // on the previous line's path
			}
			if same {
				closeTo(depth)
				same = false
			}
			path = append(path, open{name: name, start: pos})
		}
		closeTo(depth) // the previous line's deeper frames, when this line is a prefix of its path
		pos += lines[i].count
	}
	closeTo(0)
	// Closed children come before their parents: sort to preorder, in which
	// a parent starts where its first child does and is less deep.
	slices.SortFunc(g.frames, func(x, y flameFrame) int {
		if x.start != y.start {
			if x.start < y.start {
				return -1
			}
			return 1
		}
		return x.depth - y.depth
	})
	return g
}

// height is the SVG's height.
func (g *flameGraph) height() int {
	return flameTop + (g.maxDepth+1)*flameFrameHeight + flameBottom
}

// write writes g as an SVG document. (bufio.Writer keeps the first error
// of w and Flush returns it.)
func (g *flameGraph) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	h := strconv.Itoa(g.height())
	bw.WriteString(`<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<svg version="1.1" width="` + strconv.Itoa(flameImageWidth) + `" height="` + h + `" viewBox="0 0 ` + strconv.Itoa(flameImageWidth) + ` ` + h + `" xmlns="http://www.w3.org/2000/svg">
<style type="text/css">` + flameCSS + `</style>
<rect class="bg" x="0" y="0" width="` + strconv.Itoa(flameImageWidth) + `" height="` + h + `"/>
<text id="title" x="` + strconv.Itoa(flameImageWidth/2) + `" y="` + strconv.Itoa(flameTitleY) + `">Flame Graph</text>
<text id="unzoom" class="btn hide" x="` + strconv.Itoa(flamePad) + `" y="` + strconv.Itoa(flameTitleY) + `">Reset Zoom</text>
<text id="search" class="btn" x="` + strconv.Itoa(flameImageWidth-flamePad) + `" y="` + strconv.Itoa(flameTitleY) + `">Search</text>
<text id="details" x="` + strconv.Itoa(flamePad) + `" y="` + strconv.Itoa(g.height()-flameBottom/2+flameFontSize/2) + `"> </text>
<text id="matched" x="` + strconv.Itoa(flameImageWidth-flamePad) + `" y="` + strconv.Itoa(g.height()-flameBottom/2+flameFontSize/2) + `"> </text>
`)
	if len(g.frames) == 0 {
		bw.WriteString(`<text id="nosamples" x="` + strconv.Itoa(flameImageWidth/2) + `" y="` + strconv.Itoa(flameTop+flameFrameHeight) + `">` + flameNoSamples + "</text>\n")
	}
	bw.WriteString("<g id=\"frames\">\n")
	var buf []byte
	for i := range g.frames {
		buf = g.appendFrame(buf[:0], &g.frames[i])
		bw.Write(buf)
	}
	bw.WriteString("</g>\n<script type=\"text/ecmascript\"><![CDATA[" + flameJS +
		"flame(" + strconv.Itoa(flameWidth) + ", " + strconv.Itoa(flamePad) + ", " + strconv.FormatFloat(flameCharWidth, 'f', -1, 64) + ");\n]]></script>\n</svg>\n")
	return bw.Flush()
}

// appendFrame appends f's <g> element and a newline to buf.
func (g *flameGraph) appendFrame(buf []byte, f *flameFrame) []byte {
	// Both edges rounded as written, so that siblings abut exactly.
	x := roundCenti(flamePad + float64(f.start)/float64(g.total)*flameWidth)
	width := roundCenti(flamePad+float64(f.start+f.samples)/float64(g.total)*flameWidth) - x
	y := g.height() - flameBottom - (f.depth+1)*flameFrameHeight + 1
	name := xmlChars(f.name) // as a browser will read it, for the colour and the label

	buf = append(buf, `<g class="f" data-name="`...)
	buf = appendXMLEscaped(buf, name)
	buf = append(buf, `" data-samples="`...)
	buf = strconv.AppendUint(buf, f.samples, 10)
	buf = append(buf, `" data-start="`...)
	buf = strconv.AppendUint(buf, f.start, 10)
	buf = append(buf, `"><title>`...)
	buf = appendXMLEscaped(buf, name)
	buf = append(buf, " ("...)
	buf = strconv.AppendUint(buf, f.samples, 10)
	if f.samples == 1 {
		buf = append(buf, " sample, "...)
	} else {
		buf = append(buf, " samples, "...)
	}
	buf = strconv.AppendFloat(buf, float64(f.samples)*100/float64(g.total), 'f', 2, 64)
	buf = append(buf, `%)</title><rect x="`...)
	buf = strconv.AppendFloat(buf, x, 'f', 2, 64)
	buf = append(buf, `" y="`...)
	buf = strconv.AppendInt(buf, int64(y), 10)
	buf = append(buf, `" width="`...)
	buf = strconv.AppendFloat(buf, width, 'f', 2, 64)
	buf = append(buf, `" height="`+strconv.Itoa(flameFrameHeight-1)+`" rx="2" fill="`...)
	buf = appendFlameColor(buf, name)
	buf = append(buf, `"/><text x="`...)
	buf = strconv.AppendFloat(buf, x+3, 'f', 2, 64)
	buf = append(buf, `" y="`...)
	buf = strconv.AppendFloat(buf, float64(y)+10.5, 'f', 1, 64)
	buf = append(buf, `">`...)
	buf = appendXMLEscaped(buf, flameLabel(name, width))
	buf = append(buf, "</text></g>\n"...)
	return buf
}

// roundCenti rounds v to two decimals, as the SVG's numbers are written.
func roundCenti(v float64) float64 { return math.Round(v*100) / 100 }

// flameLabel is name as it fits in a frame width px wide: whole, or cut
// with "..", or "" when fewer than 3 characters fit (as flamegraph.pl,
// and the JavaScript after a zoom, do; characters are code points).
func flameLabel(name string, width float64) string {
	chars := int(width / flameCharWidth)
	if chars < 3 {
		return ""
	}
	n, cut := 0, 0
	for i := range name {
		if n == chars-2 {
			cut = i
		}
		if n == chars {
			return name[:cut] + ".."
		}
		n++
	}
	return name
}

// appendFlameColor appends the colour of the frame name, an "rgb(r,g,b)"
// from flamegraph.pl's hot palette (red to yellow), picked by a hash of
// the name so that a function has the same colour in every graph.
func appendFlameColor(buf []byte, name string) []byte {
	h := uint64(14695981039346656037) // FNV-1a, then a finalizer to mix every byte into the bits used
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	v1 := float64(h&0xffff) / 0x10000
	v2 := float64(h>>16&0xffff) / 0x10000
	v3 := float64(h>>32&0xffff) / 0x10000
	buf = append(buf, "rgb("...)
	buf = strconv.AppendInt(buf, int64(205+int(50*v3)), 10)
	buf = append(buf, ',')
	buf = strconv.AppendInt(buf, int64(230*v1), 10)
	buf = append(buf, ',')
	buf = strconv.AppendInt(buf, int64(55*v2), 10)
	return append(buf, ')')
}

// xmlChars is s with what XML 1.0 cannot hold replaced by U+FFFD, one for
// each byte that is not UTF-8, each control character other than tab,
// newline and carriage return, and U+FFFE and U+FFFF. It is s itself when
// s needs no change.
func xmlChars(s string) string {
	var b []byte // the changed copy, once a change is needed
	for i := 0; i < len(s); {
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		bad := r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF
		if bad && b == nil {
			b = append(make([]byte, 0, len(s)+8), s[:i]...)
		}
		switch {
		case bad:
			b = append(b, "\uFFFD"...)
		case b != nil:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	if b == nil {
		return s
	}
	return string(b)
}

// appendXMLEscaped appends s escaped for XML text and attribute values
// (quoted with either quote). What XML 1.0 cannot hold (bytes that are not
// UTF-8, control characters other than tab, newline and carriage return,
// U+FFFE and U+FFFF) becomes U+FFFD; tab, newline and carriage return are
// character references, so that attribute value normalization keeps them.
func appendXMLEscaped(buf []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '&':
				buf = append(buf, "&amp;"...)
			case c == '<':
				buf = append(buf, "&lt;"...)
			case c == '>':
				buf = append(buf, "&gt;"...)
			case c == '"':
				buf = append(buf, "&quot;"...)
			case c == '\'':
				buf = append(buf, "&#39;"...)
			case c == '\t':
				buf = append(buf, "&#9;"...)
			case c == '\n':
				buf = append(buf, "&#10;"...)
			case c == '\r':
				buf = append(buf, "&#13;"...)
			case c < 0x20:
				buf = append(buf, "\uFFFD"...)
			default:
				buf = append(buf, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
			buf = append(buf, "\uFFFD"...)
		} else {
			buf = append(buf, s[i:i+size]...)
		}
		i += size
	}
	return buf
}

// flameCSS styles the flame graph. Matches are highlighted by a class
// whose fill overrides the frames' fill attributes.
const flameCSS = `
text { font-family: Verdana, "DejaVu Sans", sans-serif; font-size: 12px; fill: rgb(0,0,0); }
.bg { fill: rgb(245,245,238); }
#title { text-anchor: middle; font-size: 17px; }
#nosamples { text-anchor: middle; }
#search, #matched { text-anchor: end; }
.btn { cursor: pointer; fill: rgb(0,0,140); }
.btn:hover { text-decoration: underline; }
.f { cursor: pointer; }
.f:hover rect { stroke: rgb(0,0,0); stroke-width: 0.5; }
.f text { pointer-events: none; }
.f.m rect { fill: ` + flameHighlight + `; }
.f.p { opacity: 0.5; }
.hide { display: none; }
`

// flameJS is the flame graph's script, a function of the layout:
// flame(width of the root, its x, px per label character). It reads each
// frame's place from its data attributes, so that a zoom computes widths
// from sample counts, not from rounded pixels.
const flameJS = `
function flame(W, PAD, CHARW) {
	"use strict";
	var details = document.getElementById("details").firstChild;
	var matched = document.getElementById("matched").firstChild;
	var unzoomBtn = document.getElementById("unzoom");
	var searchBtn = document.getElementById("search");
	var frames = [], byG = new Map(), root = null, searching = false;
	document.querySelectorAll("g.f").forEach(function (g) {
		var f = {
			g: g,
			rect: g.querySelector("rect"),
			text: g.querySelector("text"),
			title: g.querySelector("title").textContent,
			name: g.getAttribute("data-name"),
			start: +g.getAttribute("data-start"),
			n: +g.getAttribute("data-samples")
		};
		f.y = +f.rect.getAttribute("y");
		frames.push(f);
		byG.set(g, f);
		if (root === null || f.y > root.y) root = f;
	});
	if (root === null) return;
	var total = root.n;

	function frameOf(el) {
		var g = el && el.closest ? el.closest("g.f") : null;
		return g ? byG.get(g) : null;
	}
	function label(name, w) {
		var chars = Math.floor(w / CHARW);
		if (chars < 3) return "";
		var cps = Array.from(name);
		return cps.length <= chars ? name : cps.slice(0, chars - 2).join("") + "..";
	}
	function round(v) { return Math.round(v * 100) / 100; }
	// place puts f from x1 to x2, both rounded as in the file.
	function place(f, x1, x2) {
		x1 = round(x1);
		var w = round(x2) - x1;
		f.rect.setAttribute("x", x1.toFixed(2));
		f.rect.setAttribute("width", w.toFixed(2));
		f.text.setAttribute("x", (x1 + 3).toFixed(2));
		f.text.textContent = label(f.name, w);
	}
	function zoom(z) {
		if (z === root) return unzoom();
		unzoomBtn.classList.remove("hide");
		frames.forEach(function (f) {
			var inside = f.start >= z.start && f.start + f.n <= z.start + z.n;
			var covers = f.start <= z.start && f.start + f.n >= z.start + z.n;
			if (f.y > z.y && covers) {
				f.g.classList.remove("hide");
				f.g.classList.add("p");
				place(f, PAD, PAD + W);
			} else if (f.y <= z.y && inside) {
				f.g.classList.remove("hide", "p");
				place(f, PAD + (f.start - z.start) / z.n * W, PAD + (f.start + f.n - z.start) / z.n * W);
			} else {
				f.g.classList.remove("p");
				f.g.classList.add("hide");
			}
		});
	}
	function unzoom() {
		unzoomBtn.classList.add("hide");
		frames.forEach(function (f) {
			f.g.classList.remove("hide", "p");
			place(f, PAD + f.start / total * W, PAD + (f.start + f.n) / total * W);
		});
	}
	function search(term) {
		var re;
		try {
			re = new RegExp(term);
		} catch (e) {
			matched.nodeValue = "Bad regexp: " + e.message;
			return;
		}
		var spans = [];
		frames.forEach(function (f) {
			if (re.test(f.name)) {
				f.g.classList.add("m");
				spans.push([f.start, f.start + f.n]);
			} else {
				f.g.classList.remove("m");
			}
		});
		// A match inside another counts once.
		spans.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
		var count = 0, end = 0;
		spans.forEach(function (s) {
			var from = Math.max(s[0], end);
			if (s[1] > from) {
				count += s[1] - from;
				end = s[1];
			}
		});
		searching = true;
		searchBtn.textContent = "Reset Search";
		matched.nodeValue = "Matched: " + (100 * count / total).toFixed(2) + "% (" + count + " of " + total + " samples)";
	}
	function resetSearch() {
		frames.forEach(function (f) { f.g.classList.remove("m"); });
		searching = false;
		searchBtn.textContent = "Search";
		matched.nodeValue = " ";
	}
	function askSearch() {
		var term = window.prompt("Search for (a regular expression):", "");
		if (term) search(term);
	}

	document.addEventListener("mouseover", function (e) {
		var f = frameOf(e.target);
		if (f) details.nodeValue = "Function: " + f.title;
	});
	document.addEventListener("mouseout", function (e) {
		if (frameOf(e.target)) details.nodeValue = " ";
	});
	document.addEventListener("click", function (e) {
		if (e.target === unzoomBtn) return unzoom();
		if (e.target === searchBtn) return searching ? resetSearch() : askSearch();
		var f = frameOf(e.target);
		if (f) zoom(f);
	});
	document.addEventListener("keydown", function (e) {
		if ((e.ctrlKey || e.metaKey) && e.key === "f") {
			e.preventDefault();
			askSearch();
		} else if (e.key === "Escape") {
			resetSearch();
		}
	});
	var s = new URLSearchParams(window.location.search).get("s");
	if (s) search(s);
}
`
