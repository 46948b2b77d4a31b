package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadAPIKey: the MCP key file must be private and hold a real key;
// each refusal is a configuration error (exit 3, not restarted) that names
// the key, never the key's content.
func TestReadAPIKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if k, err := readAPIKey(""); k != "" || err != nil {
		t.Fatalf("unset: %q %v", k, err)
	}
	good := write("good", "  k-0123456789abcdef-SECRET\n", 0o600)
	if k, err := readAPIKey(good); err != nil || k != "k-0123456789abcdef-SECRET" {
		t.Fatalf("good key: %q %v", k, err)
	}
	for name, p := range map[string]string{
		"missing":  filepath.Join(dir, "none"),
		"readable": write("open", "k-0123456789abcdef-SECRET", 0o644),
		"short":    write("short", "SECRETx", 0o600),
	} {
		_, err := readAPIKey(p)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "mcp.api_key_file") || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
