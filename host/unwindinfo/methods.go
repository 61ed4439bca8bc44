package unwindinfo

import (
	"fmt"
	"strings"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// DefaultMethods returns SFrame, CFI, frame pointers: every method, in the
// order SEMANTICS U3 tries them.
func DefaultMethods() []x86_64.FrameType {
	return []x86_64.FrameType{x86_64.TypeSFrame, x86_64.TypeCFI, x86_64.TypeFramePointer}
}

// ParseMethods reads a list of unwind methods such as "sframe,cfi,fp" (the
// names of [x86_64.FrameType]: sframe, cfi, fp), in priority order, as
// `--unwind` and the config's unwind key give them. Each may appear once.
func ParseMethods(s string) ([]x86_64.FrameType, error) {
	var out []x86_64.FrameType
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		var t x86_64.FrameType
		switch name {
		case "sframe":
			t = x86_64.TypeSFrame
		case "cfi", "dwarf", "eh_frame":
			t = x86_64.TypeCFI
		case "fp":
			t = x86_64.TypeFramePointer
		default:
			return nil, fmt.Errorf("unwind method %q: want sframe, cfi or fp", name)
		}
		for _, o := range out {
			if o == t {
				return nil, fmt.Errorf("unwind method %q given twice", name)
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// Steppers returns the unwinder's methods for the list methods (nil:
// [DefaultMethods]), and the [Options] of a [Files] that reads only the
// tables they use.
func Steppers(methods []x86_64.FrameType) ([]x86_64.Stepper, Options, error) {
	if methods == nil {
		methods = DefaultMethods()
	}
	opts := Options{NoSFrame: true, NoCFI: true}
	var st []x86_64.Stepper
	for _, m := range methods {
		switch m {
		case x86_64.TypeSFrame:
			opts.NoSFrame = false
			st = append(st, x86_64.TableStepper(m))
		case x86_64.TypeCFI:
			opts.NoCFI = false
			st = append(st, x86_64.TableStepper(m))
		case x86_64.TypeFramePointer:
			st = append(st, x86_64.FramePointer{})
		default:
			return nil, Options{}, fmt.Errorf("unwind method %v cannot be chosen", m)
		}
	}
	if len(st) == 0 {
		return nil, Options{}, fmt.Errorf("no unwind method chosen")
	}
	return st, opts, nil
}
