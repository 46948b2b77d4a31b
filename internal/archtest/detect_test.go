package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// The checks above pass on today's tree; these cases show each detector
// does fire on the code it is meant to catch.

func parseSrc(t *testing.T, src string) (*token.FileSet, *ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	return fset, f
}

func funcDecl(t *testing.T, f *ast.File, name string) *ast.FuncDecl {
	t.Helper()
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == name {
			return fd
		}
	}
	t.Fatalf("no func %s", name)
	return nil
}

func TestDetect_StrayPanics(t *testing.T) {
	_, f := parseSrc(t, `package x
import "net/http"
func stray() { panic("boom") }
func repanic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				panic(v)
			}
		}()
		h.ServeHTTP(w, r)
	})
}
func nested() { defer func() { recover() }(); func() { panic(1) }() }
`)
	cases := []struct {
		fn   string
		want int
	}{
		{"stray", 1},   // a plain panic
		{"repanic", 0}, // re-panic inside the recovering closure
		{"nested", 1},  // a panic in a closure that does not recover
	}
	for _, c := range cases {
		if got := len(strayPanics(funcDecl(t, f, c.fn).Body)); got != c.want {
			t.Errorf("%s: %d stray panics, want %d", c.fn, got, c.want)
		}
	}
}

func TestDetect_SelectorUses(t *testing.T) {
	_, f := parseSrc(t, `package x
import (
	h "net/http"
	"net"
)
func a() { h.HandleFunc("/", nil); _ = h.StatusOK; net.Listen("tcp", ":0") }
`)
	if got := len(selectorUses(f, "net/http", []string{"HandleFunc", "ListenAndServe"})); got != 1 {
		t.Errorf("aliased net/http: %d uses, want 1", got)
	}
	if got := len(selectorUses(f, "net", []string{"Listen"})); got != 1 {
		t.Errorf("net.Listen: %d uses, want 1", got)
	}
	if got := len(selectorUses(f, "os", []string{"Exit"})); got != 0 {
		t.Errorf("unimported package: %d uses, want 0", got)
	}
}

func TestDetect_FuncName(t *testing.T) {
	_, f := parseSrc(t, `package x
type T[K any] struct{}
type U struct{}
func (t *T[K]) Get() {}
func (U) Put() {}
func Free() {}
`)
	for _, want := range []string{"T.Get", "U.Put", "Free"} {
		found := false
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && funcName(fd) == want {
				found = true
			}
		}
		if !found {
			t.Errorf("no function named %q", want)
		}
	}
}

func TestDetect_ImportClassification(t *testing.T) {
	cases := []struct {
		ip     string
		stdlib bool
	}{
		{"net/http", true},
		{"github.com/fxamacker/cbor/v2", false},
		{"modernc.org/sqlite", false},
	}
	for _, c := range cases {
		if isStdlib(c.ip) != c.stdlib {
			t.Errorf("isStdlib(%q) = %v", c.ip, !c.stdlib)
		}
	}
	if !under("net/http/httptest", "net/http") || under("network", "net") || !under("net", "net") {
		t.Error("under: wrong prefix semantics")
	}
	if isLibrary("internal/daemon") || isLibrary("cmd/meshnode") || !isLibrary("node") || isLibrary("nonexistent") {
		t.Error("isLibrary: root, programs and unknown packages are not libraries")
	}
}

// TestDetect_LoadedTree sanity-checks the loader against facts of this
// repository, so a loader that silently finds nothing cannot pass.
func TestDetect_LoadedTree(t *testing.T) {
	m := loadModule(t)
	if m.path != "github.com/meshnode/meshnode" {
		t.Fatalf("module path %q", m.path)
	}
	for _, rel := range []string{"wire", "node", "mesh", "internal/daemon", "internal/archtest"} {
		p := m.pkgs[rel]
		if p == nil || len(p.files) == 0 {
			t.Fatalf("package %s not loaded", rel)
		}
	}
	if m.pkgs["internal/daemon"].name != "daemon" || m.pkgs["cmd/meshnode"].name != "main" {
		t.Errorf("package names: daemon=%q cmd=%q", m.pkgs["internal/daemon"].name, m.pkgs["cmd/meshnode"].name)
	}
	if _, ok := m.internalImport("github.com/meshnode/meshnode/wire"); !ok {
		t.Error("internalImport does not recognise wire")
	}
	if _, ok := m.internalImport("github.com/meshnode/meshnodex"); ok {
		t.Error("internalImport accepts a look-alike module")
	}
}
