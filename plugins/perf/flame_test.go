package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// svgDoc is what the tests read back from flame.svg.
type svgDoc struct {
	Width  float64    `xml:"width,attr"`
	Height float64    `xml:"height,attr"`
	Texts  []svgText  `xml:"text"`
	Frames []svgFrame `xml:"g>g"` // <g id="frames"><g class="f">…
	Script []string   `xml:"script"`
}

type svgText struct {
	ID   string `xml:"id,attr"`
	Body string `xml:",chardata"`
}

type svgFrame struct {
	Class   string `xml:"class,attr"`
	Name    string `xml:"data-name,attr"`
	Samples uint64 `xml:"data-samples,attr"`
	Start   uint64 `xml:"data-start,attr"`
	Title   string `xml:"title"`
	Rect    struct {
		X      float64 `xml:"x,attr"`
		Y      float64 `xml:"y,attr"`
		Width  float64 `xml:"width,attr"`
		Height float64 `xml:"height,attr"`
		Fill   string  `xml:"fill,attr"`
	} `xml:"rect"`
	Label string `xml:"text"`
	depth int    // from Rect.Y
}

// text returns the body of the <text> with id.
func (d *svgDoc) text(id string) (string, bool) {
	for _, t := range d.Texts {
		if t.ID == id {
			return t.Body, true
		}
	}
	return "", false
}

// parseFlame checks that b is one well-formed XML document (a strict
// decoder reads every token to the end: no stray markup, no character XML
// cannot hold) whose root is an <svg>, and decodes it.
func parseFlame(t testing.TB, b []byte) *svgDoc {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	depth, roots := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("flame.svg is not well-formed XML: %v\n%s", err, b)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Fatalf("root element %v, want svg in the SVG namespace", tok.Name)
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(tok)) > 0 {
				t.Fatalf("text %q outside the root element", tok)
			}
		}
	}
	if roots != 1 || depth != 0 {
		t.Fatalf("%d root elements, depth %d at the end; want one, closed", roots, depth)
	}
	var d svgDoc
	if err := xml.Unmarshal(b, &d); err != nil {
		t.Fatalf("decode flame.svg: %v", err)
	}
	for i := range d.Frames {
		f := &d.Frames[i]
		// y = height - bottom - (depth+1)*frameHeight + 1
		f.depth = int(d.Height-flameBottom+1-f.Rect.Y)/flameFrameHeight - 1
	}
	return &d
}

// renderFlame writes lines as a flame graph and parses it back.
func renderFlame(t testing.TB, lines []foldedLine) (*svgDoc, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := writeFlame(&buf, lines); err != nil {
		t.Fatalf("writeFlame: %v", err)
	}
	return parseFlame(t, buf.Bytes()), buf.Bytes()
}

// parseFolded reads "stack count" lines.
func parseFolded(t testing.TB, text ...string) []foldedLine {
	t.Helper()
	var lines []foldedLine
	for _, s := range text {
		i := strings.LastIndexByte(s, ' ')
		n, err := strconv.ParseUint(s[i+1:], 10, 64)
		if i < 0 || err != nil {
			t.Fatalf("bad folded line %q", s)
		}
		lines = append(lines, foldedLine{stack: s[:i], count: n})
	}
	return lines
}

// frameLine is a frame as the tests expect it: "depth name samples@start".
func frameLine(f *svgFrame) string {
	return fmt.Sprintf("%d %s %d@%d", f.depth, f.Name, f.Samples, f.Start)
}

// checkGeometry checks what every frame of a graph of total samples must
// satisfy: its rect's place and width are its samples' share of the width,
// its title names it with its samples and share, its colour is in the hot
// palette and the same for the same name, and it is not under the minimum
// width.
func checkGeometry(t testing.TB, d *svgDoc, total uint64) {
	t.Helper()
	const eps = 0.005 + 1e-9 // two decimals; a width is the difference of two rounded edges
	if d.Width != flameImageWidth {
		t.Errorf("width %v, want %d", d.Width, flameImageWidth)
	}
	colors := map[string]string{}
	maxDepth := 0
	for i := range d.Frames {
		f := &d.Frames[i]
		maxDepth = max(maxDepth, f.depth)
		wantX := flamePad + float64(f.Start)/float64(total)*flameWidth
		wantW := float64(f.Samples) / float64(total) * flameWidth
		if math.Abs(f.Rect.X-wantX) > eps || math.Abs(f.Rect.Width-wantW) > 2*eps || f.Rect.Height != flameFrameHeight-1 {
			t.Errorf("%s: rect x %v width %v height %v, want %.3f %.3f %d", frameLine(f), f.Rect.X, f.Rect.Width, f.Rect.Height, wantX, wantW, flameFrameHeight-1)
		}
		unit := " samples, "
		if f.Samples == 1 {
			unit = " sample, "
		}
		if want := fmt.Sprintf("%s (%d%s%.2f%%)", f.Name, f.Samples, unit, float64(f.Samples)*100/float64(total)); f.Title != want {
			t.Errorf("%s: title %q, want %q", frameLine(f), f.Title, want)
		}
		if want := flameLabel(f.Name, f.Rect.Width); f.Label != want {
			t.Errorf("%s: label %q, want %q", frameLine(f), f.Label, want)
		}
		if f.Class != "f" {
			t.Errorf("%s: class %q", frameLine(f), f.Class)
		}
		if f.Samples == 0 || f.Samples*flameMinShare < total {
			t.Errorf("%s: narrower than 1/%d of %d samples, should have been left out", frameLine(f), flameMinShare, total)
		}
		var r, g, b int
		if _, err := fmt.Sscanf(f.Rect.Fill, "rgb(%d,%d,%d)", &r, &g, &b); err != nil || r < 205 || r > 255 || g < 0 || g > 230 || b < 0 || b > 55 {
			t.Errorf("%s: fill %q is not in the hot palette", frameLine(f), f.Rect.Fill)
		}
		if c, ok := colors[f.Name]; ok && c != f.Rect.Fill {
			t.Errorf("%s: fill %s, but another frame of the same name has %s", frameLine(f), f.Rect.Fill, c)
		}
		colors[f.Name] = f.Rect.Fill
	}
	if want := float64(flameTop + (maxDepth+1)*flameFrameHeight + flameBottom); d.Height != want {
		t.Errorf("height %v, want %v for depth %d", d.Height, want, maxDepth)
	}
	if len(d.Frames) > 0 {
		root := &d.Frames[0]
		if root.Name != "all" || root.depth != 0 || root.Samples != total || root.Start != 0 {
			t.Errorf("first frame %s, want the root: 0 all %d@0", frameLine(root), total)
		}
	}
	if len(d.Script) != 1 || !strings.Contains(d.Script[0], "function flame(") {
		t.Errorf("want one inline script with the flame function, got %d", len(d.Script))
	}
}

func TestFlameStructure(t *testing.T) {
	for _, c := range []struct {
		name   string
		folded []string
		want   []string // frameLine of each frame, in document order
		height int      // 0: not checked
	}{{
		name:   "a single comm",
		folded: []string{"demo 5"},
		want:   []string{"0 all 5@0", "1 demo 5@0"},
		height: flameTop + 2*flameFrameHeight + flameBottom,
	}, {
		// Common prefixes merge; comms and children go by name; a frame's
		// own samples are left of its children (its line sorts first, as
		// in flamegraph.pl); the input's order does not matter.
		name: "merge, order, self samples",
		folded: []string{
			"demo;main;b 3",
			"demo;other 4",
			"demo;main;a 2",
			"app;main;a 10",
			"demo;main 1",
		},
		want: []string{
			"0 all 20@0",
			"1 app 10@0", "2 main 10@0", "3 a 10@0",
			"1 demo 10@10", "2 main 6@10", "3 a 2@11", "3 b 3@13", "2 other 4@16",
		},
	}, {
		// Children are sorted by name, byte by byte, not by their lines:
		// "c;a:b" sorts before "c;a;z" as a line, but frame a comes
		// before frame a:b.
		name:   "children by name",
		folded: []string{"c;ab 1", "c;a:b 1", "c;a;z 1", "c;B 1", "c;a 1"},
		want: []string{
			"0 all 5@0", "1 c 5@0",
			"2 B 1@0", "2 a 2@1", "3 z 1@2", "2 a:b 1@3", "2 ab 1@4",
		},
	}, {
		name:   "recursion stays a tower",
		folded: []string{"p;f;f;f 2", "p;f;g 1"},
		want:   []string{"0 all 3@0", "1 p 3@0", "2 f 3@0", "3 f 2@0", "4 f 2@0", "3 g 1@2"},
	}, {
		// Of 2000 samples, a frame needs 2 (0.1%): edge stays, tiny, deep,
		// zz and q go, but count in p and all; the height follows the
		// drawn frames.
		name:   "minimum width",
		folded: []string{"p;big 1995", "p;edge 2", "p;tiny;deep 1", "p;zz 1", "q 1"},
		want:   []string{"0 all 2000@0", "1 p 1999@0", "2 big 1995@0", "2 edge 2@1995"},
		height: flameTop + 3*flameFrameHeight + flameBottom,
	}, {
		name:   "empty comm and frames",
		folded: []string{" 1", ";x 1"},
		want:   []string{"0 all 2@0", "1  2@0", "2 x 1@1"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			lines := parseFolded(t, c.folded...)
			var total uint64
			for _, l := range lines {
				total += l.count
			}
			d, _ := renderFlame(t, lines)
			var got []string
			for i := range d.Frames {
				got = append(got, frameLine(&d.Frames[i]))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("frames:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			checkGeometry(t, d, total)
			if c.height != 0 && d.Height != float64(c.height) {
				t.Errorf("height %v, want %d", d.Height, c.height)
			}
			if _, ok := d.text("nosamples"); ok {
				t.Error("says no samples")
			}
		})
	}
}

// TestFlameEscaping: hostile names come back from an XML parser as they
// went in, or with what XML cannot hold replaced by U+FFFD; none of them
// adds markup.
func TestFlameEscaping(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{`std::operator<< <std::char_traits<char> >(std::ostream&, char const*)`, ""},
		{`std::map<K, V>::operator[](K const&) && "quoted" 'single'`, ""},
		{`]]></script><script>alert(1)</script><![CDATA[`, ""},
		{`</title></g></svg>`, ""},
		{`&amp &#x41 &bogus &lt:`, ""}, // folded names hold no ";"
		{"tab\there, cr\r and a\x01 control, \x7f", "tab\there, cr\r and a\uFFFD control, \x7f"},
		{"bad utf-8 \xff\xfe, a BOM \uFEFF, non-characters \uFFFE\uFFFF, ok é 火 🔥", "bad utf-8 \uFFFD\uFFFD, a BOM \uFEFF, non-characters \uFFFD\uFFFD, ok é 火 🔥"},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if want == "" {
				want = c.name
			}
			d, raw := renderFlame(t, []foldedLine{{stack: "comm&<>;" + c.name, count: 3}})
			checkGeometry(t, d, 3)
			if len(d.Frames) != 3 || d.Frames[1].Name != "comm&<>" || d.Frames[2].Name != want {
				var names []string
				for _, f := range d.Frames {
					names = append(names, f.Name)
				}
				t.Fatalf("frames %q, want all, comm&<>, %q", names, want)
			}
			f := &d.Frames[2]
			if !strings.HasPrefix(f.Title, want+" (3 samples") || f.Label != want {
				t.Errorf("title %q, label %q; want both to start with %q", f.Title, f.Label, want)
			}
			if n := bytes.Count(raw, []byte("<script")); n != 1 {
				t.Errorf("%d <script elements, want 1", n)
			}
		})
	}
}

func TestFlameEmpty(t *testing.T) {
	for _, lines := range [][]foldedLine{nil, {{stack: "demo", count: 0}}} {
		d, raw := renderFlame(t, lines)
		if len(d.Frames) != 0 {
			t.Errorf("%d frames, want none", len(d.Frames))
		}
		if s, ok := d.text("nosamples"); !ok || s != flameNoSamples {
			t.Errorf("nosamples text %q, %v; want %q", s, ok, flameNoSamples)
		}
		if len(d.Script) != 1 || d.Height != flameTop+flameFrameHeight+flameBottom {
			t.Errorf("%d scripts, height %v:\n%s", len(d.Script), d.Height, raw)
		}
	}
}

func TestFlameWriteError(t *testing.T) {
	if err := writeFlame(failWriter{}, parseFolded(t, "demo;main 3")); err == nil || err.Error() != "disk full" {
		t.Errorf("writeFlame to a failing writer: %v, want the write's error", err)
	}
}

// TestFlameSelfContained: nothing in the SVG is loaded from elsewhere.
func TestFlameSelfContained(t *testing.T) {
	_, raw := renderFlame(t, parseFolded(t, "demo;main;a 3", "demo;main;b 1"))
	s := string(raw)
	// The namespace names SVG; it is not fetched.
	s = strings.Replace(s, `xmlns="http://www.w3.org/2000/svg"`, "", 1)
	for _, bad := range []string{"http:", "https:", "file:", "://", "href", "src=", "url(", "@import", "@font-face", "<!DOCTYPE", "<!ENTITY", "fetch(", "XMLHttpRequest", "import("} {
		if strings.Contains(s, bad) {
			t.Errorf("flame.svg contains %q", bad)
		}
	}
}

func TestXMLChars(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"plain <&> \"'", "plain <&> \"'"},
		{"tab\t nl\n cr\r é 火 🔥 \uFFFD \x7f", "tab\t nl\n cr\r é 火 🔥 \uFFFD \x7f"},
		{"\x00a\x1f", "\uFFFDa\uFFFD"},
		{"\xffx\xe7\x81", "\uFFFDx\uFFFD\uFFFD"}, // a cut 3-byte rune: one per byte
		{"\uFFFE\uFFFF", "\uFFFD\uFFFD"},
	} {
		if got := xmlChars(c.in); got != c.want {
			t.Errorf("xmlChars(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := xmlText(c.in); got != c.want {
			t.Errorf("the tests' xmlText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFlameLabel(t *testing.T) {
	w := func(chars int) float64 { return float64(chars)*flameCharWidth + 0.1 }
	for _, c := range []struct {
		name  string
		width float64
		want  string
	}{
		{"hash_block", 1180, "hash_block"},
		{"hash_block", w(10), "hash_block"},
		{"hash_block", w(9), "hash_bl.."},
		{"hash_block", w(3), "h.."},
		{"hash_block", w(3) - 0.2, ""},
		{"abc", w(3), "abc"},
		{"", 1180, ""},
		{"火火火火火", w(4), "火火.."},
		{"火火火火", w(4), "火火火火"},
	} {
		if got := flameLabel(c.name, c.width); got != c.want {
			t.Errorf("flameLabel(%q, %.2f) = %q, want %q", c.name, c.width, got, c.want)
		}
	}
}

// TestFlameScenario reads the flame.svg of the plugin scenario: the same
// counts as stacks.folded, as a tree.
func TestFlameScenario(t *testing.T) {
	dir, _ := runScenario(t)
	b, err := os.ReadFile(filepath.Join(dir, flameFile))
	if err != nil {
		t.Fatal(err)
	}
	d := parseFlame(t, b)
	checkGeometry(t, d, 5)
	var got []string
	for i := range d.Frames {
		got = append(got, frameLine(&d.Frames[i]))
	}
	want := []string{
		"0 all 5@0",
		"1 demo 4@0", // one sample without a stack: the comm alone
		"2 [unknown] 2@1", "3 __libc_start_call_main 2@1", "4 [libc.so.6] 2@1", "5 main 2@1", "6 parse_header 2@1",
		"2 main 1@3", "3 hash_block 1@3",
		"1 my_worker 1@4",
	}
	if !slices.Equal(got, want) {
		t.Errorf("frames:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// refFrames builds the frames a flame graph of lines should draw, the
// slow way: a tree of maps, children sorted by name, a frame's own samples
// left of its children, frames under 1/flameMinShare of the total left out.
// Names are as an XML parser reads them back.
func refFrames(lines []foldedLine) []string {
	type node struct {
		name     string
		self     uint64
		total    uint64
		children map[string]*node
	}
	root := &node{name: "all", children: map[string]*node{}}
	for _, l := range lines {
		n := root
		n.total += l.count
		for _, name := range strings.Split(l.stack, ";") {
			c := n.children[name]
			if c == nil {
				c = &node{name: name, children: map[string]*node{}}
				n.children[name] = c
			}
			c.total += l.count
			n = c
		}
		n.self += l.count
	}
	var out []string
	var walk func(n *node, depth int, start uint64)
	walk = func(n *node, depth int, start uint64) {
		if n.total == 0 || n.total*flameMinShare < root.total {
			return
		}
		out = append(out, fmt.Sprintf("%d %s %d@%d", depth, xmlText(n.name), n.total, start))
		names := make([]string, 0, len(n.children))
		for name := range n.children {
			names = append(names, name)
		}
		slices.Sort(names)
		start += n.self
		for _, name := range names {
			c := n.children[name]
			walk(c, depth+1, start)
			start += c.total
		}
	}
	walk(root, 0, 0)
	return out
}

// xmlText is s as it reads back from flame.svg: what XML 1.0 cannot hold
// is U+FFFD, one per byte that is not UTF-8.
func xmlText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

// FuzzFlame draws flame graphs of stacks whose names come from the input
// (one stack per line, frames split at ";", anything else in a name) with
// counts from the second input, and checks that the SVG is well-formed,
// that it draws exactly the frames a naive tree does, and that the widths
// add up: the root spans the width, each frame's width is its share of the
// samples, and children fit side by side in their parent.
func FuzzFlame(f *testing.F) {
	f.Add("demo;main;a\ndemo;main;b\ndemo;main\napp", []byte{3, 2, 1, 9})
	f.Add("x;std::vector<int>::push_back(int&&);\"q\" & 'a'\nx;]]>\x01\xff", []byte{1})
	f.Add("p;big\np;edge\np;tiny;deep\nq", []byte{255, 2, 1, 1})
	f.Add("", []byte(nil))
	f.Add("a;a;a\na;a\na;a:b\na;ab", []byte{0, 4, 200})
	f.Fuzz(func(t *testing.T, text string, counts []byte) {
		var lines []foldedLine
		var total uint64
		for i, s := range strings.Split(text, "\n") {
			n := uint64(1)
			if len(counts) > 0 {
				c := uint64(counts[i%len(counts)])
				n = c * c // 0 to 65025: wide ratios, so that frames go under the minimum
			}
			lines = append(lines, foldedLine{stack: s, count: n})
			total += n
		}
		want := refFrames(lines)
		d, raw := renderFlame(t, slices.Clone(lines))
		var got []string
		for i := range d.Frames {
			got = append(got, frameLine(&d.Frames[i]))
		}
		if total == 0 {
			if len(got) != 0 {
				t.Fatalf("no samples, but frames %q", got)
			}
			if _, ok := d.text("nosamples"); !ok {
				t.Fatal("no samples, and it does not say so")
			}
			return
		}
		if !slices.Equal(got, want) {
			t.Fatalf("frames:\n%q\nwant\n%q\nSVG:\n%s", got, want, raw)
		}
		checkGeometry(t, d, total)
		if w := d.Frames[0].Rect.Width; w != flameWidth {
			t.Errorf("root width %v, want %d", w, flameWidth)
		}
		// Children side by side inside their parent: each frame's parent
		// is the last frame before it one level down (preorder). Edges are
		// rounded alike, so that this holds exactly (but for the float
		// sum of x and width).
		const eps = 1e-6
		type sum struct {
			samples uint64
			width   float64
			end     float64 // the right edge of the last child
		}
		kids := make([]sum, len(d.Frames))
		var stack []int // indexes of the open ancestors
		for i := range d.Frames {
			fr := &d.Frames[i]
			for len(stack) > 0 && d.Frames[stack[len(stack)-1]].depth >= fr.depth {
				stack = stack[:len(stack)-1]
			}
			if fr.depth != len(stack) {
				t.Fatalf("%s: depth %d under %d open ancestors", frameLine(fr), fr.depth, len(stack))
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				par := &d.Frames[p]
				k := &kids[p]
				if fr.Rect.X < par.Rect.X-eps || fr.Rect.X+fr.Rect.Width > par.Rect.X+par.Rect.Width+eps || fr.Rect.X < k.end-eps {
					t.Errorf("%s: x %v width %v outside its parent %s (x %v width %v) or over its left sibling (ends at %v)",
						frameLine(fr), fr.Rect.X, fr.Rect.Width, frameLine(par), par.Rect.X, par.Rect.Width, k.end)
				}
				k.samples += fr.Samples
				k.width += fr.Rect.Width
				k.end = fr.Rect.X + fr.Rect.Width
			}
			stack = append(stack, i)
		}
		for i, k := range kids {
			par := &d.Frames[i]
			if k.samples > par.Samples || k.width > par.Rect.Width+eps {
				t.Errorf("%s: children have %d samples, %v wide; the frame %d, %v", frameLine(par), k.samples, k.width, par.Samples, par.Rect.Width)
			}
		}
	})
}
