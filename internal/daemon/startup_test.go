package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/internal/paths"
)

func TestBindErrorNamesAddressAndFix(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = net.Listen("tcp", ln.Addr().String())
	got := bindError("HTTP bridge", ln.Addr().String(), "set --http", fmt.Errorf("httpapi: %w", err)).Error()
	if got != "HTTP bridge: "+ln.Addr().String()+" is in use by another process; set --http" {
		t.Fatalf("bindError = %q", got)
	}
	other := bindError("admin endpoint", "1.2.3.4:1", "set admin.listen", errors.New("admin: refusing")).Error()
	if !strings.Contains(other, "refusing") || strings.Contains(other, "%!") {
		t.Fatalf("bindError = %q", other)
	}
}

func TestLockHomeNamesHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := lockHome(dir, paths.NodeLockFile, "meshnode up")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	_, err = lockHome(dir, paths.NodeLockFile, "meshnode up")
	if err == nil || !strings.Contains(err.Error(), "process "+strconv.Itoa(os.Getpid())) || !strings.Contains(err.Error(), "--home") {
		t.Fatalf("second lock: %v", err)
	}
}

func TestConfigErrorIsErrConfig(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", configErrorf("backend.api_key_env names $%s", "X"))
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "$X") {
		t.Fatalf("%v", err)
	}
}
