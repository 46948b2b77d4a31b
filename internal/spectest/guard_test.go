package spectest

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoTestReadsSpecOutsideRepo keeps every test on the vendored copy: a
// test that reaches for ../shared/iicp-spec passes on a developer machine
// and fails on a clean clone in CI.
func TestNoTestReadsSpecOutsideRepo(t *testing.T) {
	root := filepath.Join(filepath.Dir(Dir()), "..", "..")
	if os.Getenv("IICP_SPEC_DIR") != "" {
		root = filepath.Join("..", "..")
	}
	banned := []string{`shared/iicp-spec`, `"shared", "iicp-spec"`}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "iicp-spec" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "guard_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range banned {
			if strings.Contains(string(b), s) {
				t.Errorf("%s reads the spec outside the repository (%q); use spectest.Path/Read", path, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
