package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

func TestMain(m *testing.M) {
	// The test binary doubles as a helper process inside network
	// namespaces (netns_test.go): then it runs the helper, not the tests.
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	goleak.VerifyTestMain(m)
}

// buildBinary compiles cmd/meshnode into a temp dir once per test binary.
func buildBinary(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(t.TempDir(), "meshnode")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/meshnode")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is one meshnode process with its output captured.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer // stdout
	errb bytes.Buffer // stderr (logs)
	done chan struct{}
	err  error
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// start launches bin with args; the process is killed at test cleanup.
func start(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	return startEnv(t, name, nil, bin, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(append(os.Environ(), "NOTIFY_SOCKET=", "MESHNODE_HOME="), env...)
	p.cmd.Stdout = lockedWriter{&p.mu, &p.out}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.errb}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("---- %s stdout ----\n%s", name, p.stdout())
			t.Logf("---- %s stderr ----\n%s", name, p.stderr())
		}
	})
	return p
}

func (p *proc) stdout() string { p.mu.Lock(); defer p.mu.Unlock(); return p.out.String() }
func (p *proc) stderr() string { p.mu.Lock(); defer p.mu.Unlock(); return p.errb.String() }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig and waits (bounded) for the exit; it returns the exit code.
func (p *proc) stop(sig syscall.Signal, within time.Duration) int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("%s did not exit within %v of %v", p.name, within, sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

// run executes a short CLI command and returns stdout and the exit code.
func run(t *testing.T, bin string, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	out, errb, code := runCommand(timeout, bin, args...)
	if code != 0 {
		t.Logf("meshnode %s: exit %d\nstderr: %s", strings.Join(args, " "), code, errb)
	}
	return out, code
}

// runCommand runs name with args (no systemd notify socket, no
// MESHNODE_HOME from the caller's environment) for at most timeout and
// returns stdout, stderr and the exit code (-1: it did not exit normally).
func runCommand(timeout time.Duration, name string, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=", "MESHNODE_HOME=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return out.String(), errb.String(), code
}

// eventually waits up to within for cond.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, within, what, cond)
}

var listenLine = regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)

// directoryURL waits for the directory's "listening on" stdout line.
func directoryURL(t *testing.T, p *proc) string {
	t.Helper()
	var u string
	eventually(t, 20*time.Second, p.name+" listening line", func() bool {
		if p.exited() {
			t.Fatalf("%s exited: %v", p.name, p.err)
		}
		sc := bufio.NewScanner(strings.NewReader(p.stdout()))
		for sc.Scan() {
			if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
				u = m[1]
				return true
			}
		}
		return false
	})
	return u
}

// runtimeOf waits for a node's runtime.json (written once it is up).
func runtimeOf(t *testing.T, p *proc, home string) admin.Runtime {
	t.Helper()
	var rt admin.Runtime
	eventually(t, 30*time.Second, p.name+" runtime.json", func() bool {
		if p.exited() {
			t.Fatalf("%s exited: %v", p.name, p.err)
		}
		b, err := os.ReadFile(filepath.Join(home, "runtime.json"))
		return err == nil && json.Unmarshal(b, &rt) == nil
	})
	return rt
}

// plainClient keeps no idle connections, so no goroutine outlives a test.
var plainClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// discover asks the directory which nodes serve chat now.
func discover(t *testing.T, dirURL string) map[string]bool {
	t.Helper()
	resp, err := plainClient.Get(dirURL + "/v1/discover?intent=" + wire.IntentChat + "&limit=50")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var nl wire.NodeList
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(b, &nl) != nil {
		return nil
	}
	out := map[string]bool{}
	for _, n := range nl.Nodes {
		out[n.NodeID] = true
	}
	return out
}

// writeTestConfig selects the test profile (short timers, loopback, :0).
func writeTestConfig(t *testing.T, home string) {
	t.Helper()
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := "version = 1\nprofile = \"test\"\n"
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

func status(t *testing.T, bin, home string) *admin.Status {
	t.Helper()
	out, code := run(t, bin, 10*time.Second, "--home", home, "status", "--json")
	if code != 0 {
		return nil
	}
	var st admin.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return &st
}

// peers reads `meshnode peers --json`; nil when the node does not answer.
func peers(t *testing.T, bin, home string) []admin.Peer {
	t.Helper()
	out, code := run(t, bin, 10*time.Second, "--home", home, "peers", "--json")
	if code != 0 {
		return nil
	}
	var ps []admin.Peer
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		t.Fatalf("peers --json: %v\n%s", err, out)
	}
	return ps
}

var gossipLine = regexp.MustCompile(`gossip\s+(/ip4/127\.0\.0\.1/\S+/p2p/\S+)`)

// gossipAddr reads a seed directory's gossip multiaddr from its start-up block.
func gossipAddr(t *testing.T, p *proc) string {
	t.Helper()
	var a string
	eventually(t, 20*time.Second, p.name+" gossip line", func() bool {
		if m := gossipLine.FindStringSubmatch(p.stdout()); m != nil {
			a = m[1]
			return true
		}
		return false
	})
	return a
}
