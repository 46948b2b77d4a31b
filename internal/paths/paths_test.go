package paths

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func mapEnv(m map[string]string) Env { return func(k string) string { return m[k] } }

func TestResolve(t *testing.T) {
	tests := []struct {
		name      string
		home      string
		env       map[string]string
		wantCfg   string
		wantState string
	}{
		// XDG variables set: config and state split per the XDG spec.
		{"xdg", "", map[string]string{"XDG_CONFIG_HOME": "/x/cfg", "XDG_STATE_HOME": "/x/state", "HOME": "/h"},
			"/x/cfg/meshnode", "/x/state/meshnode"},
		// No XDG variables: the spec's fallbacks under $HOME.
		{"fallback", "", map[string]string{"HOME": "/h"}, "/h/.config/meshnode", "/h/.local/state/meshnode"},
		// A relative XDG value is invalid per the spec and ignored.
		{"relative xdg ignored", "", map[string]string{"XDG_CONFIG_HOME": "rel", "HOME": "/h"},
			"/h/.config/meshnode", "/h/.local/state/meshnode"},
		// MESHNODE_HOME puts everything in one directory.
		{"env home", "", map[string]string{EnvHome: "/m", "XDG_CONFIG_HOME": "/x"}, "/m", "/m"},
		// --home wins over MESHNODE_HOME.
		{"flag home", "/f", map[string]string{EnvHome: "/m"}, "/f", "/f"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Resolve(tc.home, mapEnv(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if p.ConfigDir != tc.wantCfg || p.StateDir != tc.wantState {
				t.Fatalf("got cfg=%s state=%s, want %s %s", p.ConfigDir, p.StateDir, tc.wantCfg, tc.wantState)
			}
			if p.ConfigFile != filepath.Join(tc.wantCfg, "config.toml") {
				t.Fatalf("config file %s", p.ConfigFile)
			}
			if filepath.Dir(p.IdentityKey) != tc.wantState || filepath.Dir(p.Runtime) != tc.wantState {
				t.Fatalf("state files not under state dir: %+v", p)
			}
		})
	}
}

func TestEnsureDirsTightensStateDir(t *testing.T) {
	home := t.TempDir()
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := Resolve(home, mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EnsureDirs(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v", fi.Mode().Perm())
	}
}

func TestWriteFileAtomicAndCheckPrivate(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "secret")
	if err := WriteFileAtomic(f, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(f, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f)
	if err != nil || string(b) != "two" {
		t.Fatalf("read %q %v", b, err)
	}
	if err := CheckPrivate(f); err != nil {
		t.Fatalf("0600 file reported insecure: %v", err)
	}
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivate(f); !errors.Is(err, ErrInsecure) {
		t.Fatalf("0644 file: got %v, want ErrInsecure", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}
