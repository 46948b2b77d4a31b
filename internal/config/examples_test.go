package config

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// The shipped examples in configs/ must stay valid against the schema.
func TestShippedExamplesParse(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "configs")
	matches, err := filepath.Glob(filepath.Join(dir, "*.toml"))
	if err != nil || len(matches) < 3 {
		t.Fatalf("expected one example per profile in configs/, found %v (%v)", matches, err)
	}
	profilesSeen := map[string]bool{}
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(b)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(m), err)
			continue
		}
		profilesSeen[c.Profile] = true
	}
	for _, p := range Profiles() {
		if !profilesSeen[p] {
			t.Errorf("no example for profile %q in configs/", p)
		}
	}
}
