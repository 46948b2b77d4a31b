package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/wire"
)

const (
	// dirBcryptCost is the token hash cost while populating: bcrypt is paid
	// once per REGISTER (heartbeats hit the verified-token cache), so the
	// production cost of 10 would only stretch the set-up, not change
	// what discover and heartbeat measure.
	dirBcryptCost = 4
	// registerWorkers is how many registrations run at once while populating.
	registerWorkers = 16
)

// Populate methods.
const (
	populateRegister = "register" // every node through POST /v1/register
	populateApply    = "apply"    // Server.ApplyChange, plus a registered subset for heartbeats
)

// dirFixture is a directory on loopback HTTP with N registered nodes.
type dirFixture struct {
	srv     *directory.Server
	base    string
	client  *http.Client
	raw     *rawPool // dirscale's pacers (nil: net/http)
	intents []string
	ids     []string // nodes that can heartbeat (hold a token)
	toks    []string // LOG-FORBIDDEN
	stop    func() error
}

// runDirectory is scenario "directory" (issue 4): discover and heartbeat
// throughput and p99 over loopback HTTP against N nodes over K intents.
func runDirectory(ctx context.Context, env *benchEnv, rep *Report) error {
	f, setup, err := newDirFixture(ctx, env.opts)
	if err != nil {
		return err
	}
	defer func() { _ = f.stop() }()
	rep.Directory = setup
	label := fmt.Sprintf("%d nodes/%d intents", setup.Nodes, setup.Intents)
	for _, c := range env.opts.concurrency {
		for _, p := range []*path{f.discoverPath(), f.heartbeatPath()} {
			rows, err := compare(ctx, "directory", label, []*path{p}, c, env.opts.duration, env.opts.rounds)
			if err != nil {
				return err
			}
			rep.Rows = append(rep.Rows, rows...)
		}
	}
	return nil
}

func newDirFixture(ctx context.Context, o options) (*dirFixture, *DirSetup, error) {
	dir, err := os.MkdirTemp("", "meshnode-bench-dir-")
	if err != nil {
		return nil, nil, err
	}
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/iicp/health") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	srv, err := directory.New(directory.Config{
		Listen: "127.0.0.1:0", StateDir: dir, Dev: true, BcryptCost: dirBcryptCost,
		RegisterRateLimit: 2 * o.dirNodes,
		// Every synthetic node registers from 127.0.0.1; the per-network
		// probation cap (one per /24 per answer) would shrink every answer
		// to a single node, which no real directory with 10k nodes sees.
		ProbationPerNetwork: -1,
	}, directory.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err == nil {
		if err = srv.Listen(); err != nil {
			_ = srv.Close()
		}
	}
	if err != nil {
		health.Close()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256, IdleConnTimeout: 90 * time.Second}
	f := &dirFixture{srv: srv, base: "http://" + srv.Addr().String(), client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	f.stop = func() error {
		cancel()
		err := <-done
		tr.CloseIdleConnections()
		health.Close()
		return errors.Join(err, os.RemoveAll(dir))
	}
	for i := range o.dirIntents {
		f.intents = append(f.intents, fmt.Sprintf("urn:iicp:intent:bench:task%02d:v1", i))
	}
	setup := &DirSetup{Nodes: o.dirNodes, Intents: o.dirIntents, Method: o.dirPopulate, BcryptCost: dirBcryptCost}
	start := time.Now()
	if err := f.populate(ctx, o, health.URL); err != nil {
		_ = f.stop()
		return nil, nil, err
	}
	setup.Seconds = time.Since(start).Seconds()
	setup.PerSec = float64(o.dirNodes) / setup.Seconds
	return f, setup, nil
}

// populate fills the directory. "register" sends every node through the
// real route (validation, liveness probe of a local health endpoint,
// token issue, SQLite); "apply" stores most records through the exported
// Server.ApplyChange (as a federation replica does, so those nodes hold
// no token) and registers heartbeatNodes of them for the heartbeat load.
func (f *dirFixture) populate(ctx context.Context, o options, healthURL string) error {
	viaRoute := o.dirNodes
	if o.dirPopulate == populateApply {
		viaRoute = max(1, min(maxHeartbeatNodes, o.dirNodes/10))
		now := time.Now()
		for i := viaRoute; i < o.dirNodes; i++ {
			id := newUUID()
			rec := &directory.NodeRecord{NodeID: id, Endpoint: fmt.Sprintf("%s/n%d", healthURL, i), Region: regionOf(i),
				Capabilities: []wire.Capability{{Intent: f.intents[i%len(f.intents)], Models: []string{"m"}}},
				Limits:       wire.Limits{MaxConcurrent: 1 + i%16}, CIPLevel: "CIP-None", RegisteredAt: now, UpdatedAt: now}
			ev := directory.ChangeEvent{Kind: directory.ChangeRegister, NodeID: id, Record: rec, ObservedIP: "127.0.0.1", At: now}
			if err := f.srv.ApplyChange(ctx, ev); err != nil {
				return fmt.Errorf("applying node %d: %w", i, err)
			}
		}
	}
	return f.registerAll(ctx, viaRoute, healthURL)
}

// maxHeartbeatNodes caps how many nodes the "apply" method registers for
// real (a tenth of them, at most this many): enough that concurrent
// heartbeats rarely hit the same node.
const maxHeartbeatNodes = 1000

func regionOf(i int) string { return []string{"eu-central", "us-west", "ap-south"}[i%3] }

// registerAll registers n nodes through POST /v1/register.
func (f *dirFixture) registerAll(ctx context.Context, n int, healthURL string) error {
	f.ids, f.toks = make([]string, n), make([]string, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range registerWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				id, tok, err := f.register(ctx, i, healthURL)
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("registering node %d: %w", i, err) })
					return
				}
				f.ids[i], f.toks[i] = id, tok
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

func (f *dirFixture) register(ctx context.Context, i int, healthURL string) (string, string, error) {
	body, err := json.Marshal(map[string]any{
		"endpoint": fmt.Sprintf("%s/n%d", healthURL, i), "region": regionOf(i),
		"capabilities": []map[string]any{{"intent": f.intents[i%len(f.intents)], "models": []string{"m"}}},
		"limits":       map[string]any{"max_concurrent": 1 + i%16},
	})
	if err != nil {
		return "", "", err
	}
	raw, status, err := f.post(ctx, "/v1/register", body, "")
	if err != nil {
		return "", "", err
	}
	if status != http.StatusCreated {
		return "", "", fmt.Errorf("HTTP %d: %s", status, errCode(raw))
	}
	var ack struct {
		NodeID    string `json:"node_id"`
		NodeToken string `json:"node_token"`
	}
	if err := json.Unmarshal(raw, &ack); err != nil || ack.NodeID == "" || ack.NodeToken == "" {
		return "", "", errors.New("ACK without node_id or node_token")
	}
	return ack.NodeID, ack.NodeToken, nil
}

// discoverPath asks for the best nodes of a random intent in one region.
func (f *dirFixture) discoverPath() *path {
	p := &path{name: "discover"}
	p.do = func(ctx context.Context, seq int64) error {
		intent := f.intents[int(seq)%len(f.intents)]
		if f.raw != nil {
			return f.rawDiscover(ctx, intent)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.base+"/v1/discover?intent="+intent+"&region=eu-central", nil)
		if err != nil {
			return err
		}
		resp, err := f.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		buf := answerBufs.Get().(*bytes.Buffer)
		defer answerBufs.Put(buf)
		buf.Reset()
		if _, err := buf.ReadFrom(io.LimitReader(resp.Body, 1<<20)); err != nil {
			return fmt.Errorf("HTTP %d: reading NODELIST: %w", resp.StatusCode, err)
		}
		n, ok := nodeListCount(buf.Bytes())
		if resp.StatusCode != http.StatusOK || !ok || n == 0 {
			return fmt.Errorf("HTTP %d with %d nodes", resp.StatusCode, n)
		}
		return nil
	}
	return p
}

// heartbeatPath sends an authenticated heartbeat from a random node.
func (f *dirFixture) heartbeatPath() *path {
	p := &path{name: "heartbeat"}
	p.do = func(ctx context.Context, seq int64) error {
		i := rand.IntN(len(f.ids))
		body, err := json.Marshal(map[string]any{"node_id": f.ids[i], "load": float64(seq%10) / 10, "active_jobs": seq % 4})
		if err != nil {
			return err
		}
		raw, status, err := f.post(ctx, "/v1/heartbeat", body, f.toks[i])
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", status, errCode(raw))
		}
		return nil
	}
	return p
}

func (f *dirFixture) post(ctx context.Context, route string, body []byte, token string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.base+route, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return raw, resp.StatusCode, err
}

// errCode extracts error.code from an IICP error envelope ("?" if none);
// only the code is reported, never the body.
func errCode(raw []byte) string {
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &env) != nil || env.Error.Code == "" {
		return "?"
	}
	return env.Error.Code
}

// answerBufs are the discover pacers' read buffers.
var answerBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// nodeListCount reads "count" from a meshnode NODELIST without decoding the
// nodes: the directory writes {"count":N first, and the load generator
// must not spend the CPU the directory under test is measured on (both
// share the host). The directory's own tests check the whole answer.
func nodeListCount(b []byte) (int, bool) {
	const head = `{"count":`
	if !bytes.HasPrefix(b, []byte(head)) {
		return 0, false
	}
	n, digits := 0, 0
	for _, c := range b[len(head):] {
		if c < '0' || c > '9' {
			break
		}
		n, digits = n*10+int(c-'0'), digits+1
	}
	return n, digits > 0 && digits < 7
}

// rawDiscover is one discover through the lean client (dirscale).
func (f *dirFixture) rawDiscover(ctx context.Context, intent string) error {
	buf := answerBufs.Get().(*bytes.Buffer)
	defer answerBufs.Put(buf)
	status, err := f.raw.do(ctx, http.MethodGet, "/v1/discover?intent="+intent+"&region=eu-central", "", nil, buf)
	if err != nil {
		return err
	}
	n, ok := nodeListCount(buf.Bytes())
	if status != http.StatusOK || !ok || n == 0 {
		return fmt.Errorf("HTTP %d with %d nodes", status, n)
	}
	return nil
}
