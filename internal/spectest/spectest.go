package spectest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir is the root of the spec copy tests read.
func Dir() string {
	if d := os.Getenv("IICP_SPEC_DIR"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "iicp-spec")
}

// Path returns the path of a spec file (parts relative to the spec root,
// e.g. "fixtures", "native-framing", "native-framing-v1.json") and fails the
// test when it does not exist.
func Path(tb testing.TB, parts ...string) string {
	tb.Helper()
	p := filepath.Join(append([]string{Dir()}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("spec file missing: %s: %v", filepath.Join(parts...), err)
	}
	return p
}

// Read returns the content of a spec file, failing the test when it is missing.
func Read(tb testing.TB, parts ...string) []byte {
	tb.Helper()
	b, err := os.ReadFile(Path(tb, parts...))
	if err != nil {
		tb.Fatalf("reading spec file %s: %v", filepath.Join(parts...), err)
	}
	return b
}
