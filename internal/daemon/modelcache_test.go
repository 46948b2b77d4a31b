package daemon

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestModelCacheOnlyForTheSameBackend(t *testing.T) {
	dir := t.TempDir()
	if got := loadModelCache(dir, "http://a/v1"); got != nil {
		t.Fatalf("empty cache: %v", got)
	}
	if err := saveModelCache(dir, "http://a/v1", []string{"m1", "m2"}); err != nil {
		t.Fatal(err)
	}
	if got := loadModelCache(dir, "http://a/v1"); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Fatalf("cached %v", got)
	}
	if got := loadModelCache(dir, "http://b/v1"); got != nil {
		t.Fatalf("another backend got %v", got)
	}
	fi, err := os.Stat(filepath.Join(dir, modelCacheFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file mode: %v %v", fi, err)
	}
	for _, bad := range []string{"{", `{"url":"http://a/v1","models":[]}`,
		`{"url":"http://a/v1","models":["` + strings.Repeat(`x","`, maxCachedModels) + `x"]}`} {
		if err := os.WriteFile(filepath.Join(dir, modelCacheFile), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := loadModelCache(dir, "http://a/v1"); got != nil {
			t.Fatalf("bad cache %.20q gave %d models", bad, len(got))
		}
	}
	if loadModelCache("", "http://a/v1") != nil || saveModelCache("", "x", []string{"m"}) != nil {
		t.Fatal("no state dir must be a no-op")
	}
}

// FuzzLoadModelCache: any cache file content is either ignored or yields a
// bounded, non-empty model list; never a panic.
func FuzzLoadModelCache(f *testing.F) {
	f.Add([]byte(`{"url":"http://a/v1","models":["m1"]}`))
	f.Add([]byte(`{"url":"http://a/v1","models":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, modelCacheFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		got := loadModelCache(dir, "http://a/v1")
		if got != nil && (len(got) == 0 || len(got) > maxCachedModels) {
			t.Fatalf("%d models", len(got))
		}
	})
}
