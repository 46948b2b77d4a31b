package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dirProc is one `meshnode directory` process the bench started, with its
// stdout and stderr in files of its home.
type dirProc struct {
	name string
	home string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// buildMeshnode compiles cmd/meshnode into dir (the bench lives in the
// module's bench/ directory, so the module root is its parent).
func buildMeshnode(ctx context.Context, dir string) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the module root; pass -meshnode PATH")
	}
	bin := filepath.Join(dir, "meshnode")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/meshnode")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/meshnode: %w\n%s", err, out)
	}
	return bin, nil
}

// startDirectory runs `meshnode --home HOME directory --dev --listen
// 127.0.0.1:0 ARGS...` with config as HOME/config.toml.
func startDirectory(bin, name, home, config string, args ...string) (*dirProc, error) {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(config), 0o600); err != nil {
		return nil, err
	}
	stdout, err := os.Create(filepath.Join(home, "stdout.log"))
	if err != nil {
		return nil, err
	}
	stderr, err := os.Create(filepath.Join(home, "stderr.log"))
	if err != nil {
		stdout.Close()
		return nil, err
	}
	argv := append([]string{"--home", home, "directory", "--dev", "--listen", "127.0.0.1:0"}, args...)
	p := &dirProc{name: name, home: home, cmd: exec.Command(bin, argv...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=", "MESHNODE_HOME=")
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	if err := p.cmd.Start(); err != nil {
		stdout.Close()
		stderr.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(p.done)
	}()
	return p, nil
}

var listenRE = regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)

// url waits (bounded) for the "listening on" line.
func (p *dirProc) url(ctx context.Context, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-p.done:
			return "", fmt.Errorf("%s exited: %v; log: %s", p.name, p.err, p.logTail())
		default:
		}
		b, _ := os.ReadFile(filepath.Join(p.home, "stdout.log"))
		if m := listenRE.FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", fmt.Errorf("%s printed no listening line within %v; log: %s", p.name, within, p.logTail())
}

// logTail is the last lines of the process's stderr, for error messages.
func (p *dirProc) logTail() string {
	b, _ := os.ReadFile(filepath.Join(p.home, "stderr.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// stop sends SIGTERM and waits (bounded) before killing.
func (p *dirProc) stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within 20s of SIGTERM", p.name)
	}
	return nil
}

// memKiB reads VmRSS and VmHWM (peak RSS) of the process from
// /proc/PID/status, in KiB; zeros where /proc is unavailable.
func (p *dirProc) memKiB() (rss, peak int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			peak = n
		}
	}
	return rss, peak
}

// cpuSeconds is the process's user+system CPU time so far, from
// /proc/PID/stat (0 where /proc is unavailable).
func (p *dirProc) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields of the line (clock ticks, 100 Hz on Linux).
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// goMem reads the Go runtime's view of the process from its /metrics:
// MemStats Sys (all memory obtained from the OS) and HeapAlloc, in bytes.
func goMem(ctx context.Context, base string) (sys, heap float64) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "go_memstats_sys_bytes":
			sys, _ = strconv.ParseFloat(v, 64)
		case "go_memstats_heap_alloc_bytes":
			heap, _ = strconv.ParseFloat(v, 64)
		}
	}
	return sys, heap
}

// dbFiles sizes every SQLite file (and its -wal/-shm) under the home.
func (p *dirProc) dbFiles() map[string]int64 {
	out := map[string]int64{}
	_ = filepath.WalkDir(p.home, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(d.Name(), ".db") {
			return nil
		}
		if info, err := d.Info(); err == nil {
			out[d.Name()] = info.Size()
		}
		return nil
	})
	return out
}
