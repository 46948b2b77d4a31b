package archtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// badTree is a small module under the real module path that breaks every
// rule once. Each check must report the breach it owns.
var badTree = map[string]string{
	"go.mod": "module github.com/meshnode/meshnode\n\ngo 1.26\n",
	"wire/doc.go": `// Package wire is a test double.
package wire
`,
	"wire/token/doc.go": `// Package token is a test double.
package token
`,
	"wire/token/t.go": `package token

import (
	"net/http"
	"time"
)

var _ = http.MethodGet

func expired(exp time.Time) bool { return time.Now().After(exp) }
`,
	"wire/bad.go": `// Package wire again: a second package comment.
package wire

import (
	"net/http"
	"net/url"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshnode/meshnode/node"
)

var _ = url.Parse
var _ = time.Now
var _ = http.StatusOK
var _ peer.ID
var _ = node.X

func explode() { panic("no") }
`,
	"node/n.go": `package node

import "net/http"

var X = 1

func serve() {
	http.HandleFunc("/", nil)
	go func() {}()
}
`,
	"node/backend/doc.go": "// Package backend is a test double.\npackage backend\n",
	"node/backend/b.go": `package backend

import "net/http"

func serve() { _ = http.ListenAndServe("127.0.0.1:0", nil) }
`,
	"node/backend/l.go": `package backend

import "log/slog"

var logger = slog.Default()
`,
	"mesh/doc.go": "// Package mesh is a test double.\npackage mesh\n",
	"mesh/m.go": `package mesh

import (
	_ "github.com/meshnode/meshnode/internal/daemon"
	_ "modernc.org/sqlite"
)
`,
	"internal/retry/r.go":    "package retry\n\nimport _ \"github.com/meshnode/meshnode/mesh\"\n",
	"internal/daemon/doc.go": "// Package app is a test double.\npackage app\n",
	"internal/daemon/log.go": `package app

import (
	"fmt"
	"log/slog"
)

type call struct{ Payload []byte; TaskID string }

func bad(c call) error { return fmt.Errorf("task %s: payload %q", c.TaskID, c.Payload) }

func logIt(l *slog.Logger, c call, tok string) {
	l.Info("task", "task_id", c.TaskID, "size", len(c.Payload))
	l.Debug("task", "payload", string(c.Payload))
	l.Warn("auth", "why", "x", "Token", tok)
}
`,
	"newpkg/doc.go":    "// Package newpkg is not in the layer table.\npackage newpkg\n",
	"newpkg/long.go":   "package newpkg\n\nfunc Long() {\n" + strings.Repeat("\t_ = 1\n", 90) + "}\n",
	"newpkg/big.go":    "package newpkg\n" + strings.Repeat("\n", 601),
	"testdata/skip.go": "package skip\n\nimport \"github.com/meshnode/meshnode/internal/daemon\"\n",
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestDetect_EveryRuleFires runs each check over badTree and expects the
// named breach in its messages.
func TestDetect_EveryRuleFires(t *testing.T) {
	m, err := parseModule(writeTree(t, badTree))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.pkgs["testdata"]; ok {
		t.Error("testdata was loaded")
	}
	cases := []struct {
		name  string
		check func(*module) findings
		want  []string // substrings, one finding each
		never []string // substrings no finding may contain
	}{
		{"classified", checkEveryPackageClassified, []string{"package newpkg is not in the layer table"}, nil},
		{"module imports", checkModuleImports, []string{"wire/bad.go:10: wire imports node", "mesh/m.go:4: mesh imports internal/daemon"}, nil},
		{"internal leaves", checkInternalHoldsRootAndLeaves, []string{"mesh/m.go:4: mesh imports internal/daemon; outside internal/ only leaves",
			"internal/retry/r.go:3: leaf internal/retry imports mesh"}, nil},
		{"default logger", checkNoDefaultLogger, []string{"node/backend/l.go:5:"}, []string{"internal/daemon/"}},
		{"root", checkNoOneImportsTheRoot, []string{"mesh/m.go:4: mesh imports internal/daemon; only cmd/meshnode may"}, nil},
		{"heavy deps", checkHeavyDependencies, []string{"wire/bad.go:9: wire imports github.com/libp2p/go-libp2p/core/peer", "mesh/m.go:5: mesh imports modernc.org/sqlite"}, nil},
		{"wire purity", checkWireIsPure, []string{"wire imports net/http", "wire imports time", "wire imports github.com/libp2p"}, []string{"net/url"}},
		{"token purity", checkTokenIsPure, []string{"wire/token/t.go:4: wire/token imports net/http", "wire/token/t.go:10: wire/token reads the clock (time.Now)"}, nil},
		{"node transport", checkNodeHasNoTransport, []string{"node/n.go:3: node imports net/http"}, nil},
		{"backend client", checkBackendIsHTTPClientOnly, []string{"node/backend/b.go:5: node/backend uses net/http server API"}, nil},
		{"doc.go", checkDocGoFiles, []string{"node has no doc.go", "wire/bad.go:1: second package comment"}, nil},
		{"file length", checkFileLength, []string{"newpkg/big.go has 602 lines"}, nil},
		{"func length", checkFunctionLength, []string{"newpkg/long.go:3: Long is 92 lines"}, nil},
		{"panic", checkNoPanicInLibraries, []string{"wire/bad.go:19: panic in library code (explode)"}, nil},
		{"global http", checkNoGlobalHTTPServer, []string{"node/n.go:8:", "node/backend/b.go:5:"}, nil},
		{"log secrets", checkNoSecretsInLogs, []string{"internal/daemon/log.go:14:", "internal/daemon/log.go:15:"}, []string{"internal/daemon/log.go:13:"}},
		{"error secrets", checkNoSecretsInErrors, []string{"internal/daemon/log.go:10:"}, nil},
		{"goleak", checkGoleakWhereGoroutinesStart, []string{"node/n.go:9: node starts goroutines"}, nil},
	}
	for _, c := range cases {
		got := c.check(m)
		for _, w := range c.want {
			if !containsFinding(got, w) {
				t.Errorf("%s: no finding containing %q; got:\n%s", c.name, w, strings.Join(got, "\n"))
			}
		}
		for _, n := range c.never {
			if containsFinding(got, n) {
				t.Errorf("%s: unexpected finding containing %q", c.name, n)
			}
		}
	}
}

func containsFinding(fs findings, sub string) bool {
	for _, f := range fs {
		if strings.Contains(f, sub) {
			return true
		}
	}
	return false
}
