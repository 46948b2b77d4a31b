package daemon

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/internal/config"
	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/internal/logging"
	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/internal/testutil"
)

// TestMain fails the package when a test leaves a goroutine behind: Up
// starts every service of a node, and cancelling its context must stop them
// all (internal/daemon doc: shutdown is cancelling the context).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A whole node (engine, HTTP bridge, embedded directory, mesh on loopback,
// admin endpoint, directory session) starts, becomes ready, answers on its
// admin endpoint, and stops when its context ends, leaving no goroutine
// (TestMain) and no runtime.json behind.
func TestUpStartsAndStopsCleanly(t *testing.T) {
	home := t.TempDir()
	p, err := paths.Resolve(home, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Defaults(config.ProfileTest)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Backend.URL = "" // auto; the test profile turns Ollama detection off, so echo serves
	var out, logs testutil.SyncBuffer
	lg, err := logging.New(&logs, "text", "info", nil)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Up(ctx, Options{Paths: p, Config: &cfg, Version: "test", Out: &out, Logs: lg,
			Notify: func(state string) {
				if strings.HasPrefix(state, "READY=1") {
					once.Do(func() { close(ready) })
				}
			}})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Up returned before ready: %v\nlogs:\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatalf("not ready within 30 s\nlogs:\n%s", logs.String())
	}
	c, err := admin.Dial(p)
	if err != nil {
		t.Fatalf("admin endpoint: %v", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if _, err := c.Status(sctx); err != nil {
		t.Fatalf("admin status: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Up: %v\nlogs:\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("Up did not return within 20 s of cancel\nlogs:\n%s", logs.String())
	}
	if _, err := os.Stat(p.Runtime); !os.IsNotExist(err) {
		t.Fatalf("runtime.json left behind: %v", err)
	}
	if !strings.Contains(out.String(), "meshnode is up") {
		t.Fatalf("no start-up block: %q", out.String())
	}
}
