package main

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/unwindd/unwindd/sdk"
)

// argsMode says what the variable args (and its relatives) is in a
// program's expressions, by its probe.
type argsMode uint8

const (
	argsNone       argsMode = iota // profile: no args
	argsSyscall                    // syscall entries: args[i], argN, args.NAME (when the syscall is known)
	argsExit                       // syscall exits: ret, args.ret
	argsTracepoint                 // a tracepoint whose format was read: args.FIELD, typed
	argsDynamic                    // a tracepoint whose format could not be read: args is a map(string, dyn)
)

// namedArg is how args.NAME resolves for one program.
type namedArg struct {
	index int       // syscall entries: the register; tracepoints: unused
	conv  argConv   // syscall entries
	typ   fieldType // tracepoints
}

// program is one compiled program: its probe, filter, aggregation and key,
// ready to run on events. It is immutable once compiled and safe for
// concurrent use (each goroutine with its own [activation]).
type program struct {
	index  int
	name   string // the map's name, "@…"
	cfg    programConfig
	probe  probe
	mode   argsMode
	named  map[string]namedArg // args.NAME → how to get it
	filter cel.Program         // nil: every event of the probe
	agg    aggregate
	keys   []keySpec
	ustack int // the index of ustack in keys; -1: none
}

// aggKind is an aggregation function.
type aggKind uint8

const (
	aggCount aggKind = iota
	aggSum
	aggMin
	aggMax
	aggAvg
	aggHist
	aggLhist
)

var aggNames = [...]string{"count", "sum", "min", "max", "avg", "hist", "lhist"}

func (k aggKind) String() string { return aggNames[k] }

// maxLhistBuckets is bpftrace's limit on (max - min) / step.
const maxLhistBuckets = 1000

// aggregate is a program's aggregation.
type aggregate struct {
	kind           aggKind
	expr           cel.Program // the value; nil for count
	min, max, step int64       // lhist
}

// keyKind is what one part of a map key is.
type keyKind uint8

const (
	keyPID keyKind = iota
	keyTID
	keyComm
	keyCPU
	keyProbe
	keyUstack
	keyExpr
)

// keySpec is one part of a program's key (one item of by).
type keySpec struct {
	kind keyKind
	text string
	expr cel.Program // keyExpr
	typ  valType     // keyExpr: the expression's type
}

// The variables every program has.
var baseVars = []cel.EnvOption{
	cel.Variable("pid", cel.IntType),
	cel.Variable("tid", cel.IntType),
	cel.Variable("cpu", cel.IntType),
	cel.Variable("comm", cel.StringType),
	cel.Variable("probe", cel.StringType),
	cel.ParserExpressionSizeLimit(maxExprLen),
	cel.ParserRecursionLimit(64),
}

// newBaseEnv returns the CEL environment every program's extends.
func newBaseEnv() (*cel.Env, error) {
	env, err := cel.NewEnv(baseVars...)
	if err != nil {
		return nil, fmt.Errorf("bpf: CEL environment: %w", err)
	}
	return env, nil
}

// compile compiles c's programs: their probes, filters, aggregations and
// keys, each CEL expression type-checked once against the variables its
// probe gives (the arguments of a syscall from the built-in table, a
// tracepoint's fields from tracefs, which may be nil). Every mistake is an
// [sdk.ConfigError] naming its field ("programs[1].filter"); several are
// joined.
func compile(c *config, tracefs fs.FS) ([]*program, error) {
	base, err := newBaseEnv()
	if err != nil {
		return nil, err
	}
	var errs []error
	progs := make([]*program, 0, len(c.Programs))
	for i := range c.Programs {
		p, perrs := compileProgram(base, i, c.Programs[i], tracefs)
		errs = append(errs, perrs...)
		if p != nil {
			progs = append(progs, p)
		}
	}
	errs = append(errs, nameMaps(progs, c.Programs)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return progs, nil
}

// compileProgram compiles one program; p is nil if it has errors.
func compileProgram(base *cel.Env, i int, pc programConfig, tracefs fs.FS) (p *program, errs []error) {
	field := fmt.Sprintf("programs[%d]", i)
	bad := func(f, format string, args ...any) {
		errs = append(errs, &sdk.ConfigError{Field: f, Msg: fmt.Sprintf(format, args...)})
	}
	pr, msg := parseProbe(pc.Probe)
	if msg != "" {
		bad(field+".probe", "%s", msg)
		return nil, errs
	}
	p = &program{index: i, cfg: pc, probe: pr, ustack: -1}
	opts, msg := p.declare(tracefs)
	if msg != "" {
		bad(field+".probe", "%s", msg)
		return nil, errs
	}
	env, err := base.Extend(opts...)
	if err != nil {
		bad(field+".probe", "cannot declare its variables: %v", err)
		return nil, errs
	}
	if pc.Filter != "" {
		prg, typ, msg := p.compileExpr(env, pc.Filter)
		switch {
		case msg != "":
			bad(field+".filter", "%s", msg)
		case typ != vBool:
			bad(field+".filter", "want a bool expression (such as %s), got %s", `comm == "bash"`, typ)
		default:
			p.filter = prg
		}
	}
	agg, msg := p.compileAggregate(env, pc.Aggregate)
	if msg != "" {
		bad(field+".aggregate", "%s", msg)
	}
	p.agg = agg
	for j, k := range pc.By {
		fj := fmt.Sprintf("%s.by[%d]", field, j)
		ks := keySpec{text: k}
		switch k {
		case "pid":
			ks.kind = keyPID
		case "tid":
			ks.kind = keyTID
		case "comm":
			ks.kind = keyComm
		case "cpu":
			ks.kind = keyCPU
		case "probe":
			ks.kind = keyProbe
		case "ustack":
			ks.kind, p.ustack = keyUstack, j
		default:
			prg, typ, msg := p.compileExpr(env, k)
			switch {
			case msg != "":
				bad(fj, "%s", msg)
				continue
			case typ == vNone:
				bad(fj, "a key must be an int, uint, bool, string or bytes expression; this one is not")
				continue
			}
			ks.kind, ks.expr, ks.typ = keyExpr, prg, typ
		}
		p.keys = append(p.keys, ks)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// declare returns the variables p's probe adds to the base environment,
// and sets p's args mode; msg says what is wrong with the probe, or "".
func (p *program) declare(tracefs fs.FS) (opts []cel.EnvOption, msg string) {
	switch p.probe.kind {
	case probeSyscall:
		p.mode = argsSyscall
		opts = append(opts, cel.Variable("args", cel.ListType(cel.IntType)))
		for i := range 6 {
			opts = append(opts, cel.Variable("arg"+strconv.Itoa(i), cel.IntType))
		}
		if p.probe.syscall != "" {
			args, _ := argsOf(p.probe.syscall)
			p.named = make(map[string]namedArg, len(args))
			for i, a := range args {
				p.named[a.Name] = namedArg{index: i, conv: convOf(a.CType)}
				opts = append(opts, cel.Variable("args."+a.Name, cel.IntType))
			}
		}
	case probeSyscallExit:
		p.mode = argsExit
		opts = append(opts, cel.Variable("ret", cel.IntType), cel.Variable("args.ret", cel.IntType))
	case probeTracepoint:
		fields, known, msg := tracepointFields(tracefs, p.probe.tp)
		if msg != "" {
			return nil, msg
		}
		if !known {
			p.mode = argsDynamic
			return append(opts, cel.Variable("args", cel.MapType(cel.StringType, cel.DynType))), ""
		}
		p.mode = argsTracepoint
		p.named = make(map[string]namedArg, len(fields))
		for _, f := range fields {
			p.named[f.Name] = namedArg{typ: f.Type}
			switch f.Type {
			case fieldInt:
				opts = append(opts, cel.Variable("args."+f.Name, cel.IntType))
			case fieldString:
				opts = append(opts, cel.Variable("args."+f.Name, cel.StringType))
			case fieldBytes:
				opts = append(opts, cel.Variable("args."+f.Name, cel.BytesType))
			}
		}
	}
	return opts, ""
}

// compileExpr parses and type-checks src in env; msg says what is wrong
// with it, or "".
func (p *program) compileExpr(env *cel.Env, src string) (prg cel.Program, typ valType, msg string) {
	parsed, iss := env.Parse(src)
	if iss.Err() != nil {
		return nil, vNone, issues(iss)
	}
	if msg := p.checkArgs(parsed); msg != "" {
		return nil, vNone, msg
	}
	checked, iss := env.Check(parsed)
	if iss.Err() != nil {
		return nil, vNone, p.hint(issues(iss))
	}
	if hasComprehension(checked) {
		args := uint64(6) // the registers
		if p.mode == argsDynamic {
			args = 64 // a tracepoint's fields
		}
		est, err := env.EstimateCost(checked, sizes{args: args})
		if err != nil {
			return nil, vNone, err.Error()
		}
		if est.Max > maxCost {
			return nil, vNone, fmt.Sprintf("too costly to run on every event: CEL estimates its comprehensions at up to %d steps, more than %d", est.Max, maxCost)
		}
	}
	prg, err := env.Program(checked, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, vNone, err.Error()
	}
	return prg, valTypeOf(checked.OutputType()), ""
}

// maxCost bounds the cost CEL estimates for an expression with
// comprehensions (all, exists, map, filter…), whose nesting multiplies
// it: it runs on every event of its probe, and cannot be interrupted (a
// cost limit at run time would triple the cost of every evaluation).
// Without comprehensions, an expression's cost is bounded by its length.
const maxCost = 100000

// hasComprehension reports whether a contains a comprehension.
func hasComprehension(a *cel.Ast) bool {
	found := false
	celast.PreOrderVisit(a.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		found = found || e.Kind() == celast.ComprehensionKind
	}))
	return found
}

// sizes bounds the sizes of the variables for CEL's cost estimate: a comm
// has at most 15 bytes, args at most 6 registers (or a tracepoint's
// fields), a string or bytes field at most a page.
type sizes struct {
	args uint64 // the elements of args
}

func (sizes) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

func (s sizes) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	path := n.Path()
	if len(path) == 0 {
		return nil
	}
	switch v := path[0]; {
	case v == "comm":
		return &cost.SizeEstimate{Max: 16}
	case v == "probe":
		return &cost.SizeEstimate{Max: 256}
	case v == "args" && len(path) == 1:
		return &cost.SizeEstimate{Max: s.args}
	case strings.HasPrefix(v, "args"):
		return &cost.SizeEstimate{Max: 4096}
	}
	return nil
}

// issues formats CEL's errors as "column C: message", joined.
func issues(iss *cel.Issues) string {
	var parts []string
	for _, e := range iss.Errors() {
		parts = append(parts, fmt.Sprintf("column %d: %s", e.Location.Column()+1, e.Message))
	}
	return strings.Join(parts, "; ")
}

// undeclared matches CEL's error for an unknown variable.
var undeclared = regexp.MustCompile(`undeclared reference to '([A-Za-z_0-9.]+)'`)

// hint adds to a type-check message what the probe offers instead of an
// unknown variable.
func (p *program) hint(msg string) string {
	m := undeclared.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	switch v := m[1]; {
	case v == "ret" && p.mode != argsExit:
		return msg + " (ret is the return value of a syscall_exit: probe)"
	case (v == "args" || strings.HasPrefix(v, "arg")) && p.mode == argsNone:
		return msg + fmt.Sprintf(" (probe %s has no arguments)", p.probe.text)
	case (v == "args" || strings.HasPrefix(v, "arg")) && p.mode == argsExit:
		return msg + " (a syscall exit has only ret, also as args.ret)"
	case (v == "args" || strings.HasPrefix(v, "arg")) && p.mode == argsTracepoint:
		return msg + fmt.Sprintf(" (tracepoint %s has args.FIELD for its fields: %s)", p.probe.tp, p.fieldNames())
	}
	return msg + " (variables: pid, tid, cpu, comm, probe, and the probe's args)"
}

// checkArgs checks every args.NAME of a parsed expression against the
// names p's probe has, and says what is wrong, or "".
func (p *program) checkArgs(parsed *cel.Ast) string {
	a := parsed.NativeRep()
	var msg string
	celast.PreOrderVisit(a.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if msg != "" || e.Kind() != celast.SelectKind {
			return
		}
		sel := e.AsSelect()
		op := sel.Operand()
		if op.Kind() != celast.IdentKind || op.AsIdent() != "args" {
			return
		}
		name := sel.FieldName()
		col := a.SourceInfo().GetStartLocation(e.ID()).Column() + 1
		if m := p.argProblem(name); m != "" {
			msg = fmt.Sprintf("column %d: %s", col, m)
		}
	}))
	return msg
}

// argProblem says what is wrong with args.name in p, or "".
func (p *program) argProblem(name string) string {
	switch p.mode {
	case argsNone:
		return fmt.Sprintf("probe %s has no arguments", p.probe.text)
	case argsSyscall:
		if _, ok := p.named[name]; ok {
			return ""
		}
		if p.probe.syscall == "" {
			return fmt.Sprintf("args.%s: %s has no named arguments, only args[0]…args[5] (also arg0…arg5)", name, p.probe.text)
		}
		args, known := argsOf(p.probe.syscall)
		if !known {
			return fmt.Sprintf("args.%s: the argument names of syscall %s are not known (it has no tracepoint): use args[0]…args[5] (also arg0…arg5)", name, p.probe.syscall)
		}
		return fmt.Sprintf("syscall %s has no argument %q (its arguments: %s)", p.probe.syscall, name, argNames(args))
	case argsExit:
		if name == "ret" {
			return ""
		}
		return fmt.Sprintf("args.%s: a syscall exit has only ret (also args.ret)", name)
	case argsTracepoint:
		a, ok := p.named[name]
		switch {
		case !ok:
			return fmt.Sprintf("tracepoint %s has no field %q (its fields: %s)", p.probe.tp, name, p.fieldNames())
		case a.typ == fieldSkip:
			return fmt.Sprintf("field %q of tracepoint %s is an array of numbers, which programs cannot read", name, p.probe.tp)
		}
	}
	return ""
}

// fieldNames lists a tracepoint program's field names, sorted.
func (p *program) fieldNames() string {
	names := make([]string, 0, len(p.named))
	for n := range p.named {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// aggSyntax lists the aggregations, for error messages.
const aggSyntax = "count, sum(EXPR), min(EXPR), max(EXPR), avg(EXPR), hist(EXPR) or lhist(EXPR, MIN, MAX, STEP)"

// compileAggregate parses and compiles an aggregation; msg says what is
// wrong with it, or "".
func (p *program) compileAggregate(env *cel.Env, s string) (aggregate, string) {
	var a aggregate
	name, inner, call := strings.Cut(s, "(")
	name = strings.TrimSpace(name)
	if call {
		if !strings.HasSuffix(inner, ")") {
			return a, fmt.Sprintf("want %s, got %q (no closing parenthesis)", aggSyntax, s)
		}
		inner = strings.TrimSpace(inner[:len(inner)-1])
	}
	k := slices.Index(aggNames[:], name)
	switch {
	case k < 0:
		return a, fmt.Sprintf("no aggregation %q: want %s", name, aggSyntax)
	case aggKind(k) == aggCount:
		if inner != "" {
			return a, "count takes no argument (it counts the events that pass the filter)"
		}
		return a, ""
	case !call || inner == "":
		return a, fmt.Sprintf("%s needs an integer expression: %s(args.count)", name, name)
	}
	a.kind = aggKind(k)
	if a.kind == aggLhist {
		parts := splitTopLevel(inner)
		if len(parts) < 4 {
			return a, "want lhist(EXPR, MIN, MAX, STEP), such as lhist(args.count, 0, 1000, 100)"
		}
		n := len(parts)
		var nums [3]int64
		for i, s := range parts[n-3:] {
			v, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
			if err != nil {
				return a, fmt.Sprintf("lhist's %s must be an integer, got %q", [...]string{"MIN", "MAX", "STEP"}[i], strings.TrimSpace(s))
			}
			nums[i] = v
		}
		a.min, a.max, a.step = nums[0], nums[1], nums[2]
		switch {
		case a.step < 1:
			return a, fmt.Sprintf("lhist's STEP must be at least 1, got %d", a.step)
		case a.max <= a.min:
			return a, fmt.Sprintf("lhist's MAX (%d) must be more than its MIN (%d)", a.max, a.min)
		case lhistSpan(a.min, a.max)/uint64(a.step) > maxLhistBuckets:
			return a, fmt.Sprintf("lhist(…, %d, %d, %d) has more than %d buckets", a.min, a.max, a.step, maxLhistBuckets)
		case lhistSpan(a.min, a.max)%uint64(a.step) != 0:
			return a, fmt.Sprintf("lhist's MAX - MIN (%d) must be a multiple of STEP (%d)", lhistSpan(a.min, a.max), a.step)
		}
		inner = strings.TrimSpace(strings.Join(parts[:n-3], ","))
	}
	prg, typ, msg := p.compileExpr(env, inner)
	switch {
	case msg != "":
		return a, msg
	case typ != vInt:
		return a, fmt.Sprintf("%s wants an int expression, got %s (convert with int(…))", name, typ)
	}
	a.expr = prg
	return a, ""
}

// lhistSpan is max - min, for max > min, without overflow.
func lhistSpan(min, max int64) uint64 { return uint64(max) - uint64(min) }

// splitTopLevel splits s at the commas outside parentheses, brackets,
// braces and string literals.
func splitTopLevel(s string) []string {
	var parts []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
		case c == ',' && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// mapNameRE is what bpftrace allows as a map name.
var mapNameRE = regexp.MustCompile(`^@[A-Za-z_][A-Za-z0-9_]*$|^@$`)

// nameMaps gives each program its map's name: the name it sets (with or
// without the @), or one derived from its probe (@openat, @openat_exit,
// @syscalls, @sched_switch, @profile), with _INDEX added when an earlier
// program or a set name has it.
func nameMaps(progs []*program, cfgs []programConfig) []error {
	var errs []error
	used := map[string]int{} // name → program index
	for i, pc := range cfgs {
		if pc.Name == "" {
			continue
		}
		n := pc.Name
		if !strings.HasPrefix(n, "@") {
			n = "@" + n
		}
		field := fmt.Sprintf("programs[%d].name", i)
		if !mapNameRE.MatchString(n) {
			errs = append(errs, &sdk.ConfigError{Field: field, Msg: fmt.Sprintf("want a map name: @ and a letter or _, then letters, digits or _ (@opens), got %q", pc.Name)})
			continue
		}
		if j, dup := used[n]; dup {
			errs = append(errs, &sdk.ConfigError{Field: field, Msg: fmt.Sprintf("map name %s already used by programs[%d]", n, j)})
			continue
		}
		used[n] = i
	}
	for _, p := range progs {
		if p.cfg.Name != "" {
			p.name = p.cfg.Name
			if !strings.HasPrefix(p.name, "@") {
				p.name = "@" + p.name
			}
			continue
		}
		n := "@" + p.probe.defaultName()
		if _, dup := used[n]; dup {
			n += "_" + strconv.Itoa(p.index)
		}
		for k := 2; ; k++ { // a set name may be taken already
			if _, dup := used[n]; !dup {
				break
			}
			n = fmt.Sprintf("@%s_%d_%d", p.probe.defaultName(), p.index, k)
		}
		used[n] = p.index
		p.name = n
	}
	return errs
}

// defaultName is the map name a probe gives, without the @.
func (p *probe) defaultName() string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				return r
			}
			return '_'
		}, s)
	}
	switch p.kind {
	case probeSyscall:
		if p.syscall == "" {
			return "syscalls"
		}
		return clean(p.syscall)
	case probeSyscallExit:
		if p.syscall == "" {
			return "syscall_exits"
		}
		return clean(p.syscall) + "_exit"
	case probeTracepoint:
		_, name, _ := strings.Cut(p.tp, ":")
		if name == "" || name[0] >= '0' && name[0] <= '9' {
			name = "_" + name
		}
		return clean(name)
	}
	return "profile"
}

// valType is the type of a key part or an expression's value.
type valType uint8

const (
	vNone valType = iota // not a type a key can have
	vInt
	vUint
	vBool
	vString
	vBytes
	vStack // a user stack (ustack)
)

var valTypeNames = [...]string{"another type", "int", "uint", "bool", "string", "bytes", "ustack"}

func (t valType) String() string { return valTypeNames[t] }

// valTypeOf maps a CEL type to a valType.
func valTypeOf(t *cel.Type) valType {
	switch {
	case t.IsExactType(cel.IntType):
		return vInt
	case t.IsExactType(cel.UintType):
		return vUint
	case t.IsExactType(cel.BoolType):
		return vBool
	case t.IsExactType(cel.StringType):
		return vString
	case t.IsExactType(cel.BytesType):
		return vBytes
	}
	return vNone
}

// keyVal is one part of a map key.
type keyVal struct {
	t valType
	i int64  // vInt; vBool: 0 or 1
	u uint64 // vUint
	s string // vString; vBytes: the bytes; vStack: the frames, one per line
}

// valOf converts a CEL value of type t.
func valOf(v ref.Val, t valType) (keyVal, bool) {
	switch t {
	case vInt:
		if x, ok := v.(types.Int); ok {
			return keyVal{t: vInt, i: int64(x)}, true
		}
	case vUint:
		if x, ok := v.(types.Uint); ok {
			return keyVal{t: vUint, u: uint64(x)}, true
		}
	case vBool:
		if x, ok := v.(types.Bool); ok {
			kv := keyVal{t: vBool}
			if x {
				kv.i = 1
			}
			return kv, true
		}
	case vString:
		if x, ok := v.(types.String); ok {
			return keyVal{t: vString, s: string(x)}, true
		}
	case vBytes:
		if x, ok := v.(types.Bytes); ok {
			return keyVal{t: vBytes, s: string(x)}, true
		}
	}
	return keyVal{}, false
}

// errEval is the error of an expression that did not give a value of its
// type.
var errEval = errors.New("bpf: expression gave no value")

// matches reports whether ev (a's event) is one of p's: its probe's, and
// passing its filter. An error (a filter that failed on this event, such
// as a division by zero) is no match.
func (p *program) matches(a *activation) (bool, error) {
	if !p.probe.match(a.ev) {
		return false, nil
	}
	if p.filter == nil {
		return true, nil
	}
	a.prog = p
	v, _, err := p.filter.Eval(a)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, errEval
	}
	return bool(b), nil
}

// value evaluates p's aggregation's value on a's event (0 for count).
func (p *program) value(a *activation) (int64, error) {
	if p.agg.expr == nil {
		return 0, nil
	}
	a.prog = p
	v, _, err := p.agg.expr.Eval(a)
	if err != nil {
		return 0, err
	}
	x, ok := v.(types.Int)
	if !ok {
		return 0, errEval
	}
	return int64(x), nil
}

// key evaluates p's key on a's event into key (of len(p.keys)); the ustack
// part is left for the stack.
func (p *program) key(a *activation, key []keyVal) error {
	ev := a.ev
	for i := range p.keys {
		ks := &p.keys[i]
		switch ks.kind {
		case keyPID:
			key[i] = keyVal{t: vInt, i: int64(ev.PID)}
		case keyTID:
			key[i] = keyVal{t: vInt, i: int64(ev.TID)}
		case keyCPU:
			key[i] = keyVal{t: vInt, i: int64(ev.CPU)}
		case keyComm:
			key[i] = keyVal{t: vString, s: ev.Comm}
		case keyProbe:
			a.prog = p
			key[i] = keyVal{t: vString, s: a.probeName()}
		case keyUstack:
			key[i] = keyVal{t: vStack}
		case keyExpr:
			a.prog = p
			v, _, err := ks.expr.Eval(a)
			if err != nil {
				return err
			}
			kv, ok := valOf(v, ks.typ)
			if !ok {
				return errEval
			}
			key[i] = kv
		}
	}
	return nil
}
