// Package outfile writes a plugin's output files so that a crash never
// leaves a half-written file under its final name: each is written to a
// temporary file beside it, then synced and renamed. A crash may leave the
// temporary file (".NAME.tmp…"), never a truncated NAME.
package outfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is an output file being written: an *os.File under a temporary
// name, to be committed under its final one.
type File struct {
	*os.File
	dst string
}

// Create opens a temporary file beside dir/name, to be committed as
// dir/name.
func Create(dir, name string) (*File, error) {
	dst := filepath.Join(dir, name)
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", dst, err)
	}
	return &File{File: f, dst: dst}, nil
}

// Commit finishes f: unless err (the error of writing it) is set, it is
// made readable (0644), synced, closed and renamed to its final name;
// otherwise, or if any of that fails, it is removed. It returns the first
// error, naming the file.
func (f *File) Commit(err error) error {
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), f.dst)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", f.dst, err)
	}
	return nil
}

// Write writes dir/name with write, through a temporary file and a rename.
func Write(dir, name string, write func(io.Writer) error) error {
	f, err := Create(dir, name)
	if err != nil {
		return err
	}
	return f.Commit(write(f))
}
