package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// buildExample builds examples/gocall.
func buildExample(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(t.TempDir(), "gocall")
	cmd := exec.Command("go", "build", "-o", bin, "./examples/gocall")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build examples/gocall: %v\n%s", err, out)
	}
	return bin
}

// runExample runs the example with the given node token in its
// environment and returns stdout, stderr and the exit status.
func runExample(t *testing.T, bin, nodeToken string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "MESHNODE_NODE_TOKEN="+nodeToken, "MESHNODE_DIRECTORY=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code := 0
	if err := cmd.Run(); err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return out.String(), errb.String(), code
}

// TestE2E_GoClientWithoutNode (issue 15 item 4): examples/gocall, a Go
// program that runs no node, against a real `meshnode directory` and a
// real `meshnode up` node. Without a credential the node's 401 is a Go
// error (exit 1, "unauthorized"), never a silent success; with a
// registered node's token the program obtains consumer tokens from the
// directory, finds the node through a verified dispatch ticket and prints
// the backend's answer; a token the directory refuses is an error before
// any task is sent.
func TestE2E_GoClientWithoutNode(t *testing.T) {
	bin, example := buildBinary(t), buildExample(t)
	backend, calls := testBackend(t)
	base := t.TempDir()
	dirHome, home := filepath.Join(base, "dir"), filepath.Join(base, "node")
	writeTestConfig(t, dirHome)
	writeTestConfig(t, home)
	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--listen", "127.0.0.1:0", "--no-seed-log")
	dirURL := directoryURL(t, dir)
	nodeP := start(t, "node", bin, "--home", home, "up", "--dev", "--directory", dirURL, "--backend", backend.URL,
		"--http", "127.0.0.1:0", "--no-mesh", "--no-mcp")
	rt := runtimeOf(t, nodeP, home)
	eventually(t, 15*time.Second, "the node listed by the directory", func() bool { return discover(t, dirURL)[rt.NodeID] })

	out, errOut, code := runExample(t, example, "", "-directory", dirURL, "hello from go")
	if code != 1 || !strings.Contains(errOut, "unauthorized") || out != "" {
		t.Fatalf("without a token: exit %d, stdout %q, stderr %q; want exit 1 and unauthorized", code, out, errOut)
	}
	if calls.Load() != 0 {
		t.Fatalf("the backend ran a task the node should have refused")
	}

	tok, code := run(t, bin, 10*time.Second, "--home", home, "token")
	tok = strings.TrimSpace(tok)
	if code != 0 || tok == "" {
		t.Fatalf("meshnode token: exit %d", code)
	}
	out, errOut, code = runExample(t, example, tok, "-directory", dirURL, "hello from go")
	if code != 0 || strings.TrimSpace(out) != "backend says: hello from go" {
		t.Fatalf("with a token: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "served by node "+rt.NodeID+" over http") || calls.Load() != 1 {
		t.Fatalf("served: %q, backend calls %d", errOut, calls.Load())
	}
	if strings.Contains(out+errOut, tok) {
		t.Fatal("the example printed the node token")
	}

	_, errOut, code = runExample(t, example, strings.Repeat("0", 64), "-directory", dirURL, "hello from go")
	if code != 1 || !strings.Contains(errOut, "refused AgentConfig.NodeToken") || calls.Load() != 1 {
		t.Fatalf("wrong token: exit %d, stderr %q, backend calls %d", code, errOut, calls.Load())
	}
	if strings.Contains(nodeP.stdout()+nodeP.stderr()+dir.stderr(), "hello from go") {
		t.Fatal("a process logged the prompt")
	}
}
