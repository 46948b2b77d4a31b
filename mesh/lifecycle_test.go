package mesh

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestLifecycle_NewAttachesNothing: New builds the mesh without touching
// the host (no task protocol handler, Call refused with ErrNotStarted);
// Start attaches the handlers and a second Start does nothing; Close
// removes them again and a Start after Close fails.
func TestLifecycle_NewAttachesNothing(t *testing.T) {
	h := newTestHost(t, false)
	m, err := New(h, testConfig("n", true), &testEngine{name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(h.Mux().Protocols(), TaskProtocol) {
		t.Fatal("New attached the task protocol handler")
	}
	if _, _, err := m.Call(context.Background(), testCall(), CallOptions{}); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Call before Start: %v, want ErrNotStarted", err)
	}
	for range 2 {
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Contains(h.Mux().Protocols(), TaskProtocol) {
		t.Fatal("Start did not attach the task protocol handler")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(h.Mux().Protocols(), TaskProtocol) {
		t.Fatal("Close left the task protocol handler attached")
	}
	if err := m.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
}
