package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestPerSubsystemLevels(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "json", "info", map[string]string{"mesh": "debug", "http": "error"})
	if err != nil {
		t.Fatal(err)
	}
	l.For("mesh").Debug("mesh debug")
	l.Named("app").Debug("app debug")
	l.Named("app").Info("app info")
	l.For("http").Warn("http warn")
	l.For("http").Error("http error")

	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		msgs = append(msgs, rec["msg"].(string))
		if rec["msg"] == "app info" && rec["subsystem"] != "app" {
			t.Fatalf("Named did not add subsystem: %v", rec)
		}
	}
	want := []string{"mesh debug", "app info", "http error"}
	if strings.Join(msgs, "|") != strings.Join(want, "|") {
		t.Fatalf("logged %v, want %v", msgs, want)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		format, level string
		levels        map[string]string
	}{
		{"text", "loud", nil},
		{"xml", "info", nil},
		{"text", "info", map[string]string{"mesh": "verbose"}},
	}
	for _, tc := range tests {
		if _, err := New(&bytes.Buffer{}, tc.format, tc.level, tc.levels); err == nil {
			t.Errorf("accepted %+v", tc)
		}
	}
}

// TestFloodGuardBoundsRefusalLines: a peer making the node refuse 10,000
// streams or tasks cannot make 10,000 log lines (issue 12 item 6); the
// next window reports how many were dropped, and errors always pass.
func TestFloodGuardBoundsRefusalLines(t *testing.T) {
	var buf bytes.Buffer
	logs, err := New(&buf, "text", "info", nil)
	if err != nil {
		t.Fatal(err)
	}
	mesh, node := logs.Named("mesh"), logs.Named("node")
	for range 10_000 {
		mesh.Warn("task stream refused", "reason", "bad_token")
		node.Info("task refused", "code", "IICP-E013")
	}
	node.Error("store failed")
	out := buf.String()
	if n := strings.Count(out, "task stream refused"); n != floodLines {
		t.Fatalf("%d refused-stream lines, want %d", n, floodLines)
	}
	if n := strings.Count(out, "task refused"); n != floodLines {
		t.Fatalf("%d refused-task lines, want %d", n, floodLines)
	}
	if !strings.Contains(out, "store failed") {
		t.Fatal("an error was dropped")
	}
	g := newFloodGuard()
	t0 := time.Unix(0, 0)
	for range floodLines + 5 {
		g.allow("m", t0)
	}
	if ok, n := g.allow("m", t0.Add(floodWindow)); !ok || n != 5 {
		t.Fatalf("next window: ok=%v suppressed=%d, want true 5", ok, n)
	}
}
