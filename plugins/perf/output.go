package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The files the plugin writes into its out directory.
const (
	profileFile = "profile.pb.gz"
	foldedFile  = "stacks.folded"
	scriptFile  = "perf.script.txt"
	flameFile   = "flame.svg"
)

// createTemp opens a temporary file beside dir/name, to be committed under
// that name; a crash leaves the temporary file, never a half-written name.
func createTemp(dir, name string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Join(dir, name), err)
	}
	return f, nil
}

// commit finishes a file from createTemp: unless err (the error of writing
// it) is set, it is synced, made readable (0644) and renamed to dir/name;
// otherwise, or if that fails, it is removed.
func commit(f *os.File, dir, name string, err error) error {
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	dst := filepath.Join(dir, name)
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

// writeFile writes dir/name through a temporary file and a rename.
func writeFile(dir, name string, write func(io.Writer) error) error {
	f, err := createTemp(dir, name)
	if err != nil {
		return err
	}
	return commit(f, dir, name, write(f))
}
