package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
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
