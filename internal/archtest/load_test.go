package archtest

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// srcFile is one parsed Go file of the module.
type srcFile struct {
	rel   string // slash path from the module root, e.g. "wire/json.go"
	test  bool   // a _test.go file
	ast   *ast.File
	lines int
}

// pkg is one directory of Go files.
type pkg struct {
	rel   string // slash path from the module root; "." for the root
	path  string // import path
	name  string // package name of the non-test files (or the test files)
	files []*srcFile
}

// module is the parsed source tree.
type module struct {
	root string
	path string // module path from go.mod
	fset *token.FileSet
	pkgs map[string]*pkg // by rel
}

var (
	loadOnce sync.Once
	loaded   *module
	loadErr  error
)

// loadModule parses the whole module once per test binary.
func loadModule(t testing.TB) *module {
	t.Helper()
	loadOnce.Do(func() {
		root, err := findModule()
		if err != nil {
			loadErr = err
			return
		}
		loaded, loadErr = parseModule(root)
	})
	if loadErr != nil {
		t.Fatalf("loading the module source: %v", loadErr)
	}
	return loaded
}

// internalImport reports whether ip is a package of this module, and its
// rel path.
func (m *module) internalImport(ip string) (string, bool) {
	if ip == m.path {
		return ".", true
	}
	rel, ok := strings.CutPrefix(ip, m.path+"/")
	return rel, ok
}

// sortedPkgs returns the packages in path order, for stable messages.
func (m *module) sortedPkgs() []*pkg {
	out := make([]*pkg, 0, len(m.pkgs))
	for _, p := range m.pkgs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out
}

// pos renders a position as "rel/path.go:line".
func (m *module) pos(p token.Pos) string {
	ps := m.fset.Position(p)
	rel, err := filepath.Rel(m.root, ps.Filename)
	if err != nil {
		rel = ps.Filename
	}
	return filepath.ToSlash(rel) + ":" + strconv.Itoa(ps.Line)
}

// parseModule parses every Go file below root, which holds go.mod.
func parseModule(root string) (*module, error) {
	modPath, ok := readModulePath(filepath.Join(root, "go.mod"))
	if !ok {
		return nil, fmt.Errorf("no module line in %s/go.mod", root)
	}
	m := &module{root: root, path: modPath, fset: token.NewFileSet(), pkgs: map[string]*pkg{}}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		return m.addFile(p)
	})
	return m, err
}

// skipDir leaves out what the go tool leaves out (testdata, _x, .x) plus
// build output.
func skipDir(name string) bool {
	return name == "testdata" || name == "vendor" || name == "bin" ||
		strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

func (m *module) addFile(p string) error {
	dir, name := filepath.Split(p)
	if !strings.HasSuffix(name, ".go") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
		return nil
	}
	// Honour GOOS/GOARCH suffixes and //go:build lines as the go tool does.
	if ok, err := build.Default.MatchFile(dir, name); err != nil || !ok {
		return err
	}
	f, err := parser.ParseFile(m.fset, p, nil, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return err
	}
	relDir, err := filepath.Rel(m.root, filepath.Clean(dir))
	if err != nil {
		return err
	}
	relDir = filepath.ToSlash(relDir)
	pk := m.pkgs[relDir]
	if pk == nil {
		ip := m.path
		if relDir != "." {
			ip += "/" + relDir
		}
		pk = &pkg{rel: relDir, path: ip}
		m.pkgs[relDir] = pk
	}
	test := strings.HasSuffix(name, "_test.go")
	if !test || pk.name == "" {
		pk.name = strings.TrimSuffix(f.Name.Name, "_test")
	}
	rel := filepath.ToSlash(filepath.Join(relDir, name))
	pk.files = append(pk.files, &srcFile{rel: rel, test: test, ast: f, lines: m.fset.File(f.Pos()).LineCount()})
	return nil
}

// findModule walks up from the working directory to go.mod.
func findModule() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 32 {
		if _, ok := readModulePath(filepath.Join(dir, "go.mod")); ok {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("no go.mod above the working directory: %w", os.ErrNotExist)
}

func readModulePath(gomod string) (string, bool) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if mp, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(mp), `"`), true
		}
	}
	return "", false
}

// importPath returns the unquoted path of an import spec.
func importPath(s *ast.ImportSpec) string {
	p, err := strconv.Unquote(s.Path.Value)
	if err != nil {
		return s.Path.Value
	}
	return p
}

// localName is the name a file uses for an import: its alias, or the last
// path element (good enough for the standard library and this module).
func localName(f *ast.File, ip string) (string, bool) {
	for _, s := range f.Imports {
		if importPath(s) != ip {
			continue
		}
		if s.Name != nil {
			return s.Name.Name, true
		}
		return ip[strings.LastIndex(ip, "/")+1:], true
	}
	return "", false
}

// isStdlib reports whether an import path belongs to the standard library:
// its first element has no dot (as cmd/go decides).
func isStdlib(ip string) bool {
	first, _, _ := strings.Cut(ip, "/")
	return !strings.Contains(first, ".")
}

// under reports whether ip is prefix or a package below it.
func under(ip, prefix string) bool {
	return ip == prefix || strings.HasPrefix(ip, prefix+"/")
}
