// Package syscalls names Linux system calls by number, for the two ABIs an
// x86-64 task can use: x86-64 itself and i386 (a 32-bit, compat, task). The
// raw_syscalls events the host delivers carry the number in their "id"
// field and the x86-64 or i386 name as their name; a plugin that decodes
// ids, or checks the names in its config, uses the same tables as the host.
package syscalls

import "iter"

// Name returns the name of x86-64 system call nr ("read"), or "" for a
// number it does not know.
func Name(nr int64) string {
	if nr >= 0 && nr < int64(len(syscallNames)) {
		return syscallNames[nr]
	}
	return ""
}

// Name32 returns the name of i386 system call nr (4 is "write"), or "" for
// a number it does not know.
func Name32(nr int64) string {
	if nr >= 0 && nr < int64(len(syscallNames32)) {
		return syscallNames32[nr]
	}
	return ""
}

// All yields every x86-64 system call, by number.
func All() iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		for nr, name := range syscallNames {
			if name != "" && !yield(nr, name) {
				return
			}
		}
	}
}
