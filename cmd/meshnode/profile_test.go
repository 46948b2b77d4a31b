package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestMemprofileWrittenAtSignal: --memprofile writes a heap profile (gzip
// pprof) once the shutdown signal ends the context, and nothing without it.
func TestMemprofileWrittenAtSignal(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{ctx: ctx}
	path := filepath.Join(dir, "heap.prof")
	if err := e.startHeapProfile(path); err != nil {
		t.Fatal(err)
	}
	cancel() // what SIGTERM does to the command's context
	if err := e.stopProfile(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Fatalf("profile: %d bytes, err %v; want a gzip pprof", len(b), err)
	}

	quiet := &env{ctx: context.Background()}
	path = filepath.Join(dir, "none.prof")
	if err := quiet.startHeapProfile(path); err != nil {
		t.Fatal(err)
	}
	if err := quiet.stopProfile(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("without a signal: %v, %v; want an empty file", fi, err)
	}
}
