package archtest

import (
	"go/ast"
	"go/token"
	"path"
	"strings"
)

// Size limits of the house style (preamble "Files ≤ ~600 lines, functions
// ≤ ~80 lines"): past them a reviewer can no longer hold the unit in mind.
const (
	maxFileLines = 600
	maxFuncLines = 80
)

// checkDocGoFiles: every package states its job and import rules in doc.go
// (STYLE.md §1), and only there, since godoc concatenates every package
// comment it finds.
func checkDocGoFiles(m *module) (out findings) {
	seen := map[string]bool{}
	for _, p := range m.sortedPkgs() {
		if reason, ok := allowNoDocGo[p.rel]; ok {
			seen[p.rel] = true
			if docGo(p) == nil {
				continue
			}
			out.add("%s now has a doc.go: delete its entry from allowNoDocGo in internal/archtest/allowlist_test.go (was: %s)", p.rel, reason)
		}
		out = append(out, checkDocGo(m, p)...)
	}
	for _, rel := range sortedKeys(allowNoDocGo) {
		if !seen[rel] {
			out.add("allowNoDocGo names %s, which is not a package: delete the entry in internal/archtest/allowlist_test.go", rel)
		}
	}
	return out
}

func checkDocGo(m *module, p *pkg) (out findings) {
	doc := docGo(p)
	if doc == nil {
		out.add("%s has no doc.go: create %s/doc.go holding the package comment (what the package owns, what it must not import)", p.rel, p.rel)
		return out
	}
	want := "Package " + p.name + " "
	if p.name == "main" {
		want = "Command " + path.Base(p.rel) + " "
	}
	if doc.ast.Doc == nil || !strings.HasPrefix(doc.ast.Doc.Text(), want) {
		out.add("%s: the package comment must start %q (go doc convention) and say what the package owns and may import", doc.rel, want)
	}
	for _, f := range p.files {
		if f != doc && !f.test && f.ast.Doc != nil {
			out.add("%s: second package comment; move it into %s (godoc would concatenate them)", m.pos(f.ast.Doc.Pos()), doc.rel)
		}
	}
	return out
}

func docGo(p *pkg) *srcFile {
	for _, f := range p.files {
		if path.Base(f.rel) == "doc.go" {
			return f
		}
	}
	return nil
}

// checkFileLength: non-test files stay at most maxFileLines lines.
func checkFileLength(m *module) (out findings) {
	for _, p := range m.sortedPkgs() {
		for _, f := range p.files {
			if !f.test && f.lines > maxFileLines {
				out.add("%s has %d lines (limit %d): split it by responsibility into files of the same package",
					f.rel, f.lines, maxFileLines)
			}
		}
	}
	return out
}

// checkFunctionLength: functions (tests included) stay at most
// maxFuncLines lines, unless allowLongFuncs gives the reason.
func checkFunctionLength(m *module) (out findings) {
	found := map[string]int{}
	for _, p := range m.sortedPkgs() {
		for _, f := range p.files {
			for _, d := range f.ast.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Body == nil {
					continue
				}
				n := m.fset.Position(fd.End()).Line - m.fset.Position(fd.Pos()).Line + 1
				key := f.rel + ":" + funcName(fd)
				found[key] = n
				if _, ok := allowLongFuncs[key]; ok || n <= maxFuncLines {
					continue
				}
				out.add("%s: %s is %d lines (limit %d): extract named helpers (or, for a table test, move the table "+
					"to a package-level var); only if that would hurt, add %q to allowLongFuncs in internal/archtest/allowlist_test.go with the reason",
					m.pos(fd.Pos()), funcName(fd), n, maxFuncLines, key)
			}
		}
	}
	for _, key := range sortedKeys(allowLongFuncs) {
		if n, ok := found[key]; !ok || n <= maxFuncLines {
			out.add("allowLongFuncs entry %q is stale (function gone or now %d lines): delete it from internal/archtest/allowlist_test.go", key, n)
		}
	}
	return out
}

// funcName is "Recv.Name" for methods, "Name" for functions.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// checkNoPanicInLibraries: library code returns errors (STYLE.md §10).
// Allowed: panics in init and must* helpers on static inputs (like
// regexp.MustCompile), and re-panics inside a deferred recover (net/http's
// ErrAbortHandler). Programs (package main) and tests are exempt.
func checkNoPanicInLibraries(m *module) (out findings) {
	for _, p := range m.sortedPkgs() {
		if p.name == "main" {
			continue
		}
		for _, f := range p.files {
			if f.test {
				continue
			}
			for _, d := range f.ast.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Body == nil || fd.Name.Name == "init" || strings.HasPrefix(strings.ToLower(fd.Name.Name), "must") {
					continue
				}
				for _, pos := range strayPanics(fd.Body) {
					out.add("%s: panic in library code (%s): return an error (or a *wire.Error) instead", m.pos(pos), funcName(fd))
				}
			}
		}
	}
	return out
}

// strayPanics lists panic calls that are not inside a function literal that
// itself calls recover (a re-panic from a recovery handler).
func strayPanics(body *ast.BlockStmt) []token.Pos {
	var out []token.Pos
	var walk func(n ast.Node, inRecover bool)
	walk = func(n ast.Node, inRecover bool) {
		ast.Inspect(n, func(c ast.Node) bool {
			switch x := c.(type) {
			case *ast.FuncLit:
				if x != n {
					walk(x.Body, inRecover || callsBuiltin(x.Body, "recover"))
					return false
				}
			case *ast.CallExpr:
				if id, ok := x.Fun.(*ast.Ident); ok && id.Name == "panic" && !inRecover {
					out = append(out, x.Pos())
				}
			}
			return true
		})
	}
	walk(body, false)
	return out
}

func callsBuiltin(n ast.Node, name string) bool {
	found := false
	ast.Inspect(n, func(c ast.Node) bool {
		if call, ok := c.(*ast.CallExpr); ok {
			if id, ok := call.Fun.(*ast.Ident); ok && id.Name == name {
				found = true
			}
		}
		return !found
	})
	return found
}

// checkNoGlobalHTTPServer: every HTTP surface has its own ServeMux
// and an http.Server with timeouts (STYLE.md §9); the package-level
// helpers register on http.DefaultServeMux or serve without timeouts.
func checkNoGlobalHTTPServer(m *module) (out findings) {
	banned := []string{"DefaultServeMux", "Handle", "HandleFunc", "ListenAndServe", "ListenAndServeTLS", "Serve", "ServeTLS"}
	for _, p := range m.sortedPkgs() {
		for _, f := range p.files {
			if f.test {
				continue
			}
			for _, pos := range selectorUses(f.ast, "net/http", banned) {
				out.add("%s: package-level net/http server helper: build a local http.NewServeMux and an http.Server "+
					"with ReadHeaderTimeout/ReadTimeout/WriteTimeout/MaxHeaderBytes instead", m.pos(pos))
			}
		}
	}
	return out
}

// checkGoleakWhereGoroutinesStart: a package whose code starts
// goroutines verifies in TestMain that its tests leave none behind
// (goleak.VerifyTestMain).
func checkGoleakWhereGoroutinesStart(m *module) (out findings) {
	seen := map[string]bool{}
	for _, p := range m.sortedPkgs() {
		goPos, starts := firstGoStmt(p)
		leak := usesGoleakMain(p)
		if reason, ok := allowNoGoleak[p.rel]; ok {
			seen[p.rel] = true
			if !starts || leak {
				out.add("allowNoGoleak entry %s is stale (now starts goroutines: %v, has goleak: %v): delete it from "+
					"internal/archtest/allowlist_test.go (was: %s)", p.rel, starts, leak, reason)
			}
			continue
		}
		if starts && !leak {
			out.add("%s: %s starts goroutines but its tests do not check for leaks: add "+
				"func TestMain(m *testing.M) { goleak.VerifyTestMain(m) } to a _test.go file of %s",
				m.pos(goPos), p.rel, p.rel)
		}
	}
	for _, rel := range sortedKeys(allowNoGoleak) {
		if !seen[rel] {
			out.add("allowNoGoleak names %s, which is not a package: delete the entry in internal/archtest/allowlist_test.go", rel)
		}
	}
	return out
}

func firstGoStmt(p *pkg) (token.Pos, bool) {
	for _, f := range p.files {
		if f.test {
			continue
		}
		var pos token.Pos
		ast.Inspect(f.ast, func(n ast.Node) bool {
			if g, ok := n.(*ast.GoStmt); ok && pos == token.NoPos {
				pos = g.Pos()
			}
			return pos == token.NoPos
		})
		if pos != token.NoPos {
			return pos, true
		}
	}
	return token.NoPos, false
}

func usesGoleakMain(p *pkg) bool {
	for _, f := range p.files {
		if !f.test {
			continue
		}
		name, ok := localName(f.ast, "go.uber.org/goleak")
		if ok && len(selectorUses(f.ast, "go.uber.org/goleak", []string{"VerifyTestMain"})) > 0 {
			return name != "_"
		}
	}
	return false
}

// selectorUses finds uses of pkgPath.Name for the given names in f, under
// whatever local name f imports pkgPath.
func selectorUses(f *ast.File, pkgPath string, names []string) []token.Pos {
	local, ok := localName(f, pkgPath)
	if !ok || local == "_" || local == "." {
		return nil
	}
	var out []token.Pos
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == local {
			for _, name := range names {
				if sel.Sel.Name == name {
					out = append(out, sel.Pos())
				}
			}
		}
		return true
	})
	return out
}

// checkNoDefaultLogger (issue 13 item 5): library packages never fall back
// to slog.Default(); an unset logger discards, and only the composition
// root (internal/daemon), the CLI and the benchmark program choose where
// lines go.
func checkNoDefaultLogger(m *module) (out findings) {
	for _, p := range m.sortedPkgs() {
		if p.name == "main" || under(p.rel, "internal/daemon") {
			continue
		}
		for _, f := range p.files {
			if f.test {
				continue
			}
			ast.Inspect(f.ast, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "Default" {
					return true
				}
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "slog" {
					out.add("%s: %s falls back to slog.Default(); default to a discarding logger and let internal/daemon pass one",
						m.pos(sel.Pos()), p.rel)
				}
				return true
			})
		}
	}
	return out
}
