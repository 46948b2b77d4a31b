package archtest

import (
	"go/ast"
	"slices"
	"sort"
	"strings"
)

// anyPkg marks a package that may import every module package (the
// composition root); anyLib marks a program that may import every library
// package but not the composition root or another program.
const (
	anyPkg = "*"
	anyLib = "lib"
)

// layer says which module packages the non-test files of a package may
// import. It mirrors the "may import" column of docs/architecture.md; keep the
// two in step. Test files are free to import what they exercise, except
// internal/daemon and cmd (checkNoOneImportsTheRoot).
type layer struct {
	may []string
}

var layers = map[string]layer{
	"wire": {},
	// The one format of directory-signed tokens: the directory mints,
	// nodes verify (checkTokenIsPure).
	"wire/token":   {},
	"node":         {may: []string{"wire", "wire/token", "node/backend"}},
	"node/backend": {may: []string{"wire", "internal/httperr", "internal/jsonscan"}},
	"mesh":         {may: []string{"wire", "wire/token", "internal/retry", "internal/breaker"}},
	"dirbridge":    {}, // doc-only parent of the HTTP side
	// The client is the consumer side of a task: it seals payloads with
	// IICP-CX and reads every deployed node dialect (internal/interop).
	"dirbridge/dirclient": {may: []string{"wire", "cx", "internal/interop", "internal/httperr", "internal/retry"}},
	"dirbridge/httpapi":   {may: []string{"wire", "cx", "internal/interop", "internal/httperr", "internal/tlsutil", "internal/httpx", "internal/jsonscan"}},
	"dirbridge/directory": {may: []string{"wire", "wire/token", "internal/tlsutil", "internal/httpx", "internal/paths"}},
	// The seed wraps the directory server and mirrors its changes into the
	// event log; replicas apply events to a directory store. federation sits
	// above directory, never the reverse.
	"dirbridge/directory/federation": {may: []string{"wire", "dirbridge/directory", "internal/httperr", "internal/httpx", "internal/jcs", "internal/jsonscan", "internal/retry"}},
	// The caller side, once: finders, one attempt loop, one classifier.
	"route": {may: []string{"wire", "wire/token", "mesh", "dirbridge/dirclient", "dirbridge/httpapi", "internal/breaker", "internal/retry"}},
	// MCP over Streamable HTTP: tools are intents, every call goes through route.
	"route/mcp":             {may: []string{"wire", "route", "mesh", "dirbridge/dirclient", "internal/httpx"}},
	"route/openai":          {may: []string{"wire", "route", "internal/httpx"}},
	"internal/daemon":       {may: []string{anyPkg}},
	"internal/daemon/admin": {may: []string{"wire", "dirbridge/dirclient", "route", "internal/httpx", "internal/paths"}},
	"internal/config":       {},
	"internal/paths":        {},
	"internal/identity":     {may: []string{"wire", "internal/paths"}},
	// The operator key (kept apart from node keys) and the node's delegation file.
	"internal/operator": {may: []string{"wire", "internal/paths", "internal/passbox"}},
	// The one passphrase scheme (scrypt + XChaCha20-Poly1305).
	"internal/passbox": {},
	// The identity bundle: export / import of a node home's identity.
	"internal/idbundle":  {may: []string{"wire", "internal/identity", "internal/passbox", "internal/paths"}},
	"cx":                 {may: []string{"wire", "internal/paths"}},
	"internal/logging":   {},
	"internal/sdnotify":  {},
	"internal/buildinfo": {},
	"internal/spectest":  {}, // test helper: locates the spec files
	"internal/interop":   {may: []string{"wire"}},
	"internal/httperr":   {}, // log-safe net/http client errors, shared by the HTTP clients
	"internal/jsonscan":  {}, // one-pass JSON validate/compact on the task path
	// The HTTP servers' shared pieces: error writer, recoverer, rate
	// limiter, per-IP connection cap, SSRF-guarded client.
	"internal/httpx":    {may: []string{"wire"}},
	"internal/jcs":      {}, // RFC 8785 canonical JSON (federation event signatures)
	"internal/retry":    {}, // iicp-semantics §6.1 backoff shared by mesh and client
	"internal/breaker":  {}, // iicp-semantics §7.1 per-target circuit breaker shared by mesh and route
	"internal/e2e":      {}, // tests only
	"internal/archtest": {}, // tests only
	// Test helper: a peer answering raw bytes instead of HTTP.
	"internal/httperr/httperrtest": {},
	// Self-signed server certificates for the node bridge and the directory.
	"internal/tlsutil": {may: []string{"internal/paths"}},
	// Test helpers: a goroutine-safe log buffer, a bounded poll, the panic-recoverer check.
	"internal/testutil": {},
	// Test helper: an in-process ACME CA (RFC 8555) for autocert tests.
	"internal/acmetest": {},
	"cmd/meshnode": {may: []string{"internal/daemon", "internal/daemon/admin", "internal/buildinfo",
		"internal/config", "internal/identity", "internal/idbundle", "internal/logging", "internal/operator", "internal/paths",
		"internal/sdnotify", "dirbridge/dirclient", "route", "wire"}},
	// The benchmark program assembles in-process engines, bridges and mesh
	// hosts to measure them: a composition of its own, so it may use every
	// library package, but never internal/daemon or cmd.
	"bench": {may: []string{anyLib}},
	// Documented examples: what a Go user imports.
	"examples/gocall": {may: []string{"route", "wire"}},
}

// heavyDeps keeps large third-party trees in the packages that own them,
// so the engine and the wire stay small and transport-free.
var heavyDeps = []struct {
	prefix string
	owners []string
	why    string
}{
	{"github.com/libp2p", []string{"mesh", "internal/identity", "internal/daemon", "dirbridge/directory/federation", "bench"},
		"libp2p belongs to mesh (identity derives the peer ID; federation gossips events over pubsub; bench builds hosts)"},
	{"github.com/multiformats", []string{"mesh", "internal/daemon", "dirbridge/directory/federation", "bench"},
		"multiaddrs belong to the libp2p users (mesh, federation gossip)"},
	{"github.com/ipfs", []string{"mesh"}, "CIDs for DHT provider records belong to mesh"},
	{"modernc.org/sqlite", []string{"dirbridge/directory", "dirbridge/directory/federation"}, "only the directory and its federation log persist to SQLite"},
	{"database/sql", []string{"dirbridge/directory", "dirbridge/directory/federation"}, "only the directory and its federation log persist to SQLite"},
	{"github.com/spf13", []string{"cmd/meshnode"}, "cobra/pflag are the CLI's business"},
	{"github.com/pelletier/go-toml", []string{"internal/config"}, "config decoding lives in internal/config"},
}

// checkEveryPackageClassified: a package the table does not know has
// no rules, so the table must name every package and nothing else.
func checkEveryPackageClassified(m *module) (out findings) {
	for _, p := range m.sortedPkgs() {
		if _, ok := layers[p.rel]; !ok {
			out.add("package %s is not in the layer table: add it to layers in internal/archtest/layers_test.go "+
				"with the module packages it may import, and add its row to docs/architecture.md", p.rel)
		}
	}
	for _, rel := range sortedKeys(layers) {
		if _, ok := m.pkgs[rel]; !ok {
			out.add("layer table names %s, which has no Go files: delete its entry from internal/archtest/layers_test.go "+
				"(and its row in docs/architecture.md)", rel)
		}
	}
	return out
}

// checkModuleImports checks every module-internal import of non-test
// code against the layer table (docs/architecture.md).
func checkModuleImports(m *module) (out findings) {
	for _, p := range m.sortedPkgs() {
		l, ok := layers[p.rel]
		if !ok || slices.Contains(l.may, anyPkg) {
			continue // unclassified packages fail checkEveryPackageClassified
		}
		for _, f := range p.files {
			if f.test {
				continue
			}
			for _, s := range f.ast.Imports {
				to, internal := m.internalImport(importPath(s))
				if !internal || to == p.rel || slices.Contains(l.may, to) || (slices.Contains(l.may, anyLib) && isLibrary(to)) {
					continue
				}
				out.add("%s: %s imports %s, which docs/architecture.md does not allow (%s may import: %s). "+
					"Declare the small interface %s needs in %s itself and let internal/daemon pass the concrete type; "+
					"if the layering really changed, update docs/architecture.md and layers in internal/archtest/layers_test.go",
					m.pos(s.Pos()), p.rel, to, p.rel, mayList(l.may), p.rel, p.rel)
			}
		}
	}
	return out
}

// checkNoOneImportsTheRoot: internal/daemon knows every concrete type;
// anything importing it (tests included) would form a second root or a
// cycle in waiting. cmd packages are programs and are imported by nobody.
func checkNoOneImportsTheRoot(m *module) (out findings) {
	for _, p := range m.sortedPkgs() {
		for _, f := range p.files {
			for _, s := range f.ast.Imports {
				to, internal := m.internalImport(importPath(s))
				switch {
				case !internal || to == p.rel:
				case to == "internal/daemon" && p.rel != "cmd/meshnode":
					out.add("%s: %s imports internal/daemon; only cmd/meshnode may. Move what %s needs out of "+
						"internal/daemon into a small package both can import, or test it through the meshnode binary",
						m.pos(s.Pos()), p.rel, p.rel)
				case under(to, "cmd"):
					out.add("%s: %s imports %s; cmd packages are programs. Move the shared code into a library package",
						m.pos(s.Pos()), p.rel, to)
				}
			}
		}
	}
	return out
}

// checkHeavyDependencies keeps libp2p, SQLite, cobra and go-toml in
// the packages that own them (non-test code).
func checkHeavyDependencies(m *module) (out findings) {
	for _, p := range m.sortedPkgs() {
		eachImport(p, false, func(f *srcFile, s *ast.ImportSpec, ip string) {
			for _, d := range heavyDeps {
				if under(ip, d.prefix) && !slices.Contains(d.owners, p.rel) {
					out.add("%s: %s imports %s; %s (allowed in: %s). Reach it through an interface the "+
						"owning package exposes, or extend heavyDeps in internal/archtest/layers_test.go and docs/architecture.md "+
						"if ownership really moved", m.pos(s.Pos()), p.rel, ip, d.why, strings.Join(d.owners, ", "))
				}
			}
		})
	}
	return out
}

// checkWireIsPure: wire is the vocabulary every side shares, so it
// must not pull in a network, the filesystem, logging or the clock
// (ARCHITECTURE.md "wire/"; STYLE.md §2). wire has no time import at all:
// timestamps and deadlines are arguments, which keeps every codec
// deterministic and testable.
func checkWireIsPure(m *module) (out findings) {
	p := m.pkgs["wire"]
	if p == nil {
		out.add("package wire not found: update the test if it moved")
		return out
	}
	forbidden := []string{"net", "log", "os", "time", "syscall", "path/filepath", "io/ioutil", "unsafe", "plugin", "runtime/cgo"}
	eachImport(p, false, func(f *srcFile, s *ast.ImportSpec, ip string) {
		if !isStdlib(ip) {
			if !under(ip, "github.com/fxamacker/cbor") {
				out.add("%s: wire imports %s; wire may import only the standard library and fxamacker/cbor. "+
					"Move the code that needs it into the package that uses the wire types", m.pos(s.Pos()), ip)
			}
			return
		}
		for _, bad := range forbidden {
			if !under(ip, bad) || ip == "net/url" || ip == "net/netip" {
				continue // net/url and net/netip are pure parsers
			}
			out.add("%s: wire imports %s; wire must not touch the network, filesystem, logging or clock "+
				"(docs/architecture.md). Take the value as an argument (a timestamp, an io.Reader, a *slog.Logger in the caller) instead",
				m.pos(s.Pos()), ip)
		}
	})
	return out
}

// checkTokenIsPure: wire/token is stdlib and crypto only and reads no
// clock: every check takes now as an argument, so one token verifies the
// same way in the directory, a node and a test.
func checkTokenIsPure(m *module) (out findings) {
	p := m.pkgs["wire/token"]
	if p == nil {
		out.add("package wire/token not found: update the test if it moved")
		return out
	}
	forbidden := []string{"net", "log", "os", "syscall", "path/filepath", "unsafe", "math/rand"}
	eachImport(p, false, func(f *srcFile, s *ast.ImportSpec, ip string) {
		bad := !isStdlib(ip)
		for _, b := range forbidden {
			bad = bad || under(ip, b)
		}
		if bad {
			out.add("%s: wire/token imports %s; it may import only the standard library's pure and crypto packages", m.pos(s.Pos()), ip)
		}
	})
	clock := map[string]bool{"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true, "Tick": true, "NewTimer": true, "NewTicker": true, "AfterFunc": true}
	for _, f := range p.files {
		if f.test {
			continue
		}
		ast.Inspect(f.ast, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "time" && clock[sel.Sel.Name] {
				out.add("%s: wire/token reads the clock (time.%s); take now as an argument", m.pos(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
	return out
}

// checkNodeHasNoTransport: the engine is transport-independent; HTTP,
// libp2p and the directory depend on it through their own interfaces.
func checkNodeHasNoTransport(m *module) (out findings) {
	p := m.pkgs["node"]
	if p == nil {
		out.add("package node not found: update the test if it moved")
		return out
	}
	forbidden := []string{"net", "github.com/libp2p", "github.com/multiformats", "os/exec"}
	eachImport(p, false, func(f *srcFile, s *ast.ImportSpec, ip string) {
		for _, bad := range forbidden {
			if under(ip, bad) {
				out.add("%s: node imports %s; the engine must stay transport-free (docs/architecture.md). "+
					"Put the transport code in dirbridge/httpapi or mesh and call Engine.Execute from there", m.pos(s.Pos()), ip)
			}
		}
	})
	return out
}

// checkBackendIsHTTPClientOnly: node/backend talks to model servers
// as an HTTP client; serving HTTP is dirbridge/httpapi's job.
func checkBackendIsHTTPClientOnly(m *module) (out findings) {
	p := m.pkgs["node/backend"]
	if p == nil {
		out.add("package node/backend not found: update the test if it moved")
		return out
	}
	serverAPI := map[string][]string{
		"net/http": {"Server", "ServeMux", "NewServeMux", "ListenAndServe", "ListenAndServeTLS", "Serve", "ServeTLS",
			"Handle", "HandleFunc", "DefaultServeMux"},
		"net": {"Listen", "ListenTCP", "ListenUDP", "ListenPacket", "ListenUnix", "FileListener"},
	}
	for _, f := range p.files {
		if f.test {
			continue
		}
		for ip, names := range serverAPI {
			for _, pos := range selectorUses(f.ast, ip, names) {
				out.add("%s: node/backend uses %s server API; the backend package is an HTTP client only. "+
					"Serve HTTP from dirbridge/httpapi", m.pos(pos), ip)
			}
		}
	}
	return out
}

// eachImport calls fn for every import of the package's files (non-test
// files only unless tests is true).
func eachImport(p *pkg, tests bool, fn func(*srcFile, *ast.ImportSpec, string)) {
	for _, f := range p.files {
		if f.test && !tests {
			continue
		}
		for _, s := range f.ast.Imports {
			fn(f, s, importPath(s))
		}
	}
}

// isLibrary: a module package that is neither the composition root nor a
// program.
func isLibrary(rel string) bool {
	if _, ok := layers[rel]; !ok {
		return false
	}
	return rel != "internal/daemon" && !under(rel, "cmd") && !under(rel, "examples") && rel != "bench"
}

func mayList(may []string) string {
	if len(may) == 0 {
		return "no module package"
	}
	return strings.Join(may, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// notLeaves are the internal packages that are not leaves: the composition
// root and its admin endpoint, and the test-only packages.
var notLeaves = []string{"internal/daemon", "internal/e2e", "internal/archtest"}

// isLeaf reports whether rel is an internal leaf (paths, config, httpx…).
func isLeaf(rel string) bool {
	if !under(rel, "internal") {
		return false
	}
	for _, n := range notLeaves {
		if under(rel, n) {
			return false
		}
	}
	return true
}

// checkInternalHoldsRootAndLeaves (ARCHITECTURE.md, issue 13): internal/
// holds the composition root and leaves. A library package outside
// internal/ may import only leaves from it, and a leaf imports nothing of
// the module but wire and other leaves (no upward arrow).
func checkInternalHoldsRootAndLeaves(m *module) (out findings) {
	for _, p := range m.sortedPkgs() {
		eachImport(p, false, func(f *srcFile, s *ast.ImportSpec, ip string) {
			to, ok := m.internalImport(ip)
			if !ok || to == p.rel {
				return
			}
			switch {
			case isLeaf(p.rel) && !isLeaf(to) && !under(to, "wire"):
				out.add("%s: leaf %s imports %s; a leaf imports only wire and other leaves. Move the code up or the dependency down",
					m.pos(s.Pos()), p.rel, to)
			case !under(p.rel, "internal") && !under(p.rel, "cmd") && p.rel != "bench" &&
				under(to, "internal") && !isLeaf(to):
				out.add("%s: %s imports %s; outside internal/ only leaves may be imported from it",
					m.pos(s.Pos()), p.rel, to)
			}
		})
	}
	return out
}
