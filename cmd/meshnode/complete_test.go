package main

import (
	"strings"
	"testing"
)

// Tab after --intent, --model and --qos offers values, never file names
// (cobra's NoFileComp directive, ":4").
func TestCallFlagCompletion(t *testing.T) {
	tests := []struct {
		flag string
		want []string
	}{
		{"intent", []string{"llm:chat", "urn:iicp:intent:llm:summarize:v1"}},
		{"qos", []string{"realtime", "interactive", "batch"}},
		{"model", nil}, // no node runs for this home: nothing to offer, still no files
	}
	for _, tc := range tests {
		t.Run(tc.flag, func(t *testing.T) {
			e, out, _ := testEnv(nil, "")
			if code := execute(e, "--home", t.TempDir(), "__complete", "call", "--"+tc.flag, ""); code != 0 {
				t.Fatalf("exit %d", code)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if lines[len(lines)-1] != ":4" {
				t.Fatalf("directive %q, want :4 (no file completion)\n%s", lines[len(lines)-1], out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w+"\n") {
					t.Errorf("no %q offered:\n%s", w, out)
				}
			}
		})
	}
}
