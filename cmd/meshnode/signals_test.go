package main

import (
	"bytes"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind (the
// signal forwarder must end with its stop function).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The first SIGTERM ends the context (graceful shutdown starts); stop
// releases the forwarding goroutine and the signal registration.
func TestSignalContextFirstSignalCancels(t *testing.T) {
	var stderr bytes.Buffer
	ctx, stop := signalContext(&stderr)
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not cancel the context")
	}
	stop()
	if stderr.Len() != 0 {
		t.Fatalf("stderr %q", stderr.String())
	}
}

// Without a signal, stop alone ends the goroutine and cancels the context.
func TestSignalContextStopWithoutSignal(t *testing.T) {
	ctx, stop := signalContext(&bytes.Buffer{})
	if ctx.Err() != nil {
		t.Fatal("cancelled before any signal")
	}
	stop()
	if ctx.Err() == nil {
		t.Fatal("stop did not cancel the context")
	}
}
