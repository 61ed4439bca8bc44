package main

// The files the plugin writes into its out directory.
const (
	profileFile = "profile.pb.gz"
	foldedFile  = "stacks.folded"
	scriptFile  = "perf.script.txt"
	flameFile   = "flame.svg"
)
