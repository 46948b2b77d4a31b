package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// `make install` into a staging root (DESTDIR) puts the binary under
// PREFIX/bin, both systemd units under PREFIX/lib/systemd/system with
// ExecStart naming the installed binary, and creates /etc/meshnode with the
// config files the units name; the installed binary runs.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed (CI runs `make test`, so it has make)")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dest := t.TempDir()
	// NOBUILD: install the binary the other e2e tests build (cached), not a
	// second -trimpath compile of everything.
	cmd := exec.Command("make", "-s", "install", "DESTDIR="+dest, "PREFIX=/opt/mn", "NOBUILD=1", "BIN="+buildBinary(t))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for unit, cfg := range map[string]string{"meshnode.service": "config.toml", "meshnode-directory.service": "directory.toml"} {
		b, err := os.ReadFile(filepath.Join(dest, "opt/mn/lib/systemd/system", unit))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "ExecStart=/opt/mn/bin/meshnode ") || !strings.Contains(string(b), "--config /etc/meshnode/"+cfg) {
			t.Errorf("%s ExecStart does not name the installed binary and /etc/meshnode/%s", unit, cfg)
		}
		if _, err := os.Stat(filepath.Join(dest, "etc/meshnode", cfg)); err != nil {
			t.Errorf("%s names /etc/meshnode/%s, not installed: %v", unit, cfg, err)
		}
	}
	out, err := exec.Command(filepath.Join(dest, "opt/mn/bin/meshnode"), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "meshnode ") {
		t.Fatalf("installed binary: %q %v", out, err)
	}
}
