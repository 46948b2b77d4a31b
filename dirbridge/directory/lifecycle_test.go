package directory

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testutil"
)

// TestLifecycle_NewBindsNothing: New opens state but binds no port (a port
// another listener holds does not fail it); Listen binds and reports a
// taken port as EADDRINUSE; Serve binds when Listen was not called; Listen
// after Close fails instead of leaking a listener.
func TestLifecycle_NewBindsNothing(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cfg := Config{Listen: held.Addr().String(), StateDir: t.TempDir(), Dev: true, BcryptCost: 4}
	s, err := New(cfg, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("New bound (or tried to bind) the listen address: %v", err)
	}
	if s.Addr() != nil {
		t.Fatal("Addr set before Listen")
	}
	if err := s.Listen(); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Listen on a taken port: %v, want EADDRINUSE", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err == nil {
		t.Fatal("Listen after Close succeeded")
	}

	cfg.Listen, cfg.StateDir = "127.0.0.1:0", t.TempDir()
	s, err = New(cfg, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	testutil.WaitFor(t, 10*time.Second, "Serve binds its listener", func() bool {
		a := s.Addr()
		if a == nil {
			return false
		}
		c, err := net.Dial("tcp", a.String())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
