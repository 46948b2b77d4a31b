package federation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/meshnode/meshnode/dirbridge/directory"
)

// SeedDirectoryConfig composes `meshnode directory` in seed mode: a real
// IICP-DIR directory whose every registration and deregistration is
// appended to the signed log, with the federation endpoints on the same
// listener.
type SeedDirectoryConfig struct {
	// Directory is the directory's own configuration (listener, TLS, DB).
	Directory directory.Config
	// Options are extra directory options. WithOnChange is taken by the
	// seed: do not pass one.
	Options []directory.Option
	// Seed configures the log. Key is required. DBPath defaults to
	// federation-seed.db in Directory.StateDir (or beside Directory.DBPath);
	// PublicURL to the listener's URL; Live is set to the directory.
	Seed SeedConfig
	// Gossip, when set, runs a libp2p host that pushes events and liveness
	// digests to replicas (Seed.PubSub is taken from it).
	Gossip *GossipConfig
}

// SeedDirectory is a directory running as the Genesis Seed.
type SeedDirectory struct {
	cfg    SeedDirectoryConfig
	dir    *directory.Server
	seed   *Seed
	gossip *GossipHost
	feed   *changeFeed
	seedH  http.Handler // the seed's routes; set once before serving
	apiH   http.Handler // the same under /api
	log    *slog.Logger
}

// Change feed bounds: the hook must not block the directory's write path,
// so changes queue in memory; past maxFeedQueue the seed re-derives the
// missing events from the directory's state (reconcile) instead of growing.
const (
	maxFeedQueue   = 100_000
	feedEmitBatch  = 1000 // changes per log transaction
	feedRetryFirst = time.Second
	feedRetryMax   = 30 * time.Second
	drainBudget    = 5 * time.Second
)

// NewSeedDirectory validates cfg and opens the directory's store; it binds
// nothing and starts nothing. Listen binds the directory's listener and the
// gossip host and opens the seed's log (its did:web comes from the bound
// URL when Seed.PublicURL is empty); Serve runs everything (calling Listen
// when needed); Close releases what Serve never ran.
func NewSeedDirectory(ctx context.Context, cfg SeedDirectoryConfig) (*SeedDirectory, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := &SeedDirectory{cfg: cfg, feed: newChangeFeed(maxFeedQueue), log: cfg.Seed.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.log = d.log.With("component", "federation-seed")
	if cfg.Gossip != nil {
		g, err := NewGossipHost(*cfg.Gossip, d.log)
		if err != nil {
			return nil, err
		}
		d.gossip = g
	}
	opts := append(append([]directory.Option{}, cfg.Options...),
		directory.WithOnChange(d.feed.push), directory.WithHandlerWrap(d.mount))
	dir, err := directory.New(cfg.Directory, opts...)
	if err != nil {
		return nil, err
	}
	d.dir = dir
	return d, nil
}

// Listen binds the directory's listener and the gossip host, then opens
// the seed's log and joins its topic. On failure call Close. A second
// Listen does nothing.
func (d *SeedDirectory) Listen(ctx context.Context) error {
	if d.seed != nil {
		return nil
	}
	cfg := d.cfg.Seed
	var err error
	if cfg.PubSub, cfg.PublicURL, cfg.DBPath, err = bindDirectory(d.dir, d.gossip, cfg.PubSub, cfg.PublicURL,
		cfg.DBPath, stateFile(d.cfg.Directory, "federation-seed.db")); err != nil {
		return err
	}
	cfg.Live = dirLive{s: d.dir}
	seed, err := NewSeed(ctx, cfg)
	if err != nil {
		return err
	}
	d.seed, d.seedH, d.apiH = seed, seed.Handler(), http.StripPrefix("/api", seed.Handler())
	return nil
}

// listenerURL is the directory's own base URL (scheme from its TLS mode).
// bindDirectory is the binding step SeedDirectory and ReplicaDirectory
// share: the directory's listener, then the gossip host when there is one.
// It fills what the federation side needs from them: the gossip PubSub,
// the public URL (the bound one unless configured) and the state file
// (dbPath, else defaultDB).
func bindDirectory(dir *directory.Server, gossip *GossipHost, ps *pubsub.PubSub, publicURL, dbPath, defaultDB string) (*pubsub.PubSub, string, string, error) {
	if err := dir.Listen(); err != nil {
		return nil, "", "", err
	}
	if gossip != nil {
		if err := gossip.Start(); err != nil {
			return nil, "", "", err
		}
		ps = gossip.PubSub()
	}
	if publicURL == "" {
		publicURL = listenerURL(dir)
	}
	if dbPath == "" {
		dbPath = defaultDB
	}
	return ps, publicURL, dbPath, nil
}

func listenerURL(dir *directory.Server) string {
	if dir.Addr() == nil {
		return ""
	}
	scheme := "https"
	if !dir.TLS() {
		scheme = "http"
	}
	return scheme + "://" + dir.Addr().String()
}

// stateFile places a federation database beside the directory's.
func stateFile(c directory.Config, name string) string {
	if c.StateDir != "" {
		return filepath.Join(c.StateDir, name)
	}
	return filepath.Join(filepath.Dir(c.DBPath), name)
}

// seedRoutes are served by the seed, at the root and (for /v1 paths) under
// /api like every directory route.
var seedRoutes = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range SeedRoutes {
		m[p] = true
	}
	return m
}()

// mount puts the seed's endpoints beside the directory's routes.
func (d *SeedDirectory) mount(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case d.seedH == nil: // before Listen: the directory alone
			next.ServeHTTP(w, r)
		case seedRoutes[p]:
			d.seedH.ServeHTTP(w, r)
		case strings.HasPrefix(p, "/api/v1/") && seedRoutes[p[len("/api"):]]:
			d.apiH.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// Directory is the underlying directory server.
func (d *SeedDirectory) Directory() *directory.Server { return d.dir }

// Seed is the federation log (nil before Listen).
func (d *SeedDirectory) Seed() *Seed { return d.seed }

// Addr is the listener's address (nil without a listener).
func (d *SeedDirectory) Addr() net.Addr { return d.dir.Addr() }

// URL is the listener's base URL.
func (d *SeedDirectory) URL() string { return listenerURL(d.dir) }

// Handler serves the directory and the seed routes (in-process use).
func (d *SeedDirectory) Handler() http.Handler { return d.dir.Handler() }

// GossipAddrs are the seed's libp2p addresses (with /p2p/ID) that replicas
// pass as --gossip-peer; empty without gossip.
func (d *SeedDirectory) GossipAddrs() []string {
	if d.gossip == nil {
		return nil
	}
	return d.gossip.Addrs()
}

// Serve runs the directory, the log feed, pruning, liveness digests and
// the gossip host until ctx ends; then the directory stops accepting
// writes, the queued changes are logged, and everything is closed. It
// calls Listen first when the caller did not; every goroutine it started
// has ended when it returns.
func (d *SeedDirectory) Serve(ctx context.Context) error {
	if err := d.Listen(ctx); err != nil {
		return errors.Join(err, d.Close())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dirDone := make(chan struct{})
	var wg sync.WaitGroup
	var dirErr, seedErr error
	wg.Add(3)
	go func() {
		defer wg.Done()
		defer close(dirDone)
		defer cancel() // a failed listener stops the seed too
		dirErr = d.dir.Serve(ctx)
	}()
	go func() { defer wg.Done(); seedErr = d.seed.Serve(ctx) }()
	go func() { defer wg.Done(); d.runFeed(ctx, dirDone) }()
	if d.gossip != nil {
		wg.Add(1)
		go func() { defer wg.Done(); d.gossip.Serve(ctx) }()
	}
	wg.Wait()
	err := errors.Join(dirErr, seedErr, d.seed.Close())
	d.closeGossip()
	return err
}

// Close releases everything when Serve was never called.
func (d *SeedDirectory) Close() error {
	err := d.dir.Close()
	if d.seed != nil {
		err = errors.Join(err, d.seed.Close())
	}
	d.closeGossip()
	return err
}

func (d *SeedDirectory) closeGossip() {
	if d.gossip != nil {
		_ = d.gossip.Close()
	}
}

// runFeed appends queued directory changes to the log in batches. It first
// reconciles the log with the directory (changes lost by a crash between
// the directory's commit and its hook, or a directory that ran before
// federation was enabled), and again whenever the queue overflowed or an
// append failed. After the directory stopped, it drains what is left.
func (d *SeedDirectory) runFeed(ctx context.Context, dirDone <-chan struct{}) {
	resync, retry := true, feedRetryFirst
	for {
		batch, overflow := d.feed.take(feedEmitBatch)
		resync = resync || overflow
		if len(batch) > 0 {
			if _, err := d.seed.Emit(ctx, batch...); err != nil {
				if ctx.Err() != nil {
					d.feed.requeue(batch)
					break
				}
				d.log.Error("appending directory changes", "changes", len(batch), "error", err)
				resync = true // the batch is lost; reconcile re-derives it
			}
			continue
		}
		if resync {
			if err := d.reconcile(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				d.log.Error("reconciling the log with the directory", "error", err, "retry_in", retry)
				select {
				case <-ctx.Done():
				case <-time.After(retry):
				}
				retry = min(2*retry, feedRetryMax)
				continue
			}
			resync, retry = false, feedRetryFirst
			continue
		}
		select {
		case <-d.feed.signal:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	<-dirDone // no hook runs after this
	dctx, cancel := context.WithTimeout(context.Background(), drainBudget)
	defer cancel()
	for {
		batch, _ := d.feed.take(feedEmitBatch)
		if len(batch) == 0 {
			return
		}
		if _, err := d.seed.Emit(dctx, batch...); err != nil {
			// The next start's reconcile re-derives them.
			d.log.Warn("appending directory changes at shutdown", "changes", len(batch), "error", err)
			return
		}
	}
}

// reconcile appends whatever makes the log's node state equal the
// directory's: REGISTER for nodes missing or different, DEREGISTER for
// nodes the directory no longer has. It runs with the queue drained, so
// every later change is newer than what it read.
func (d *SeedDirectory) reconcile(ctx context.Context) error {
	logged, err := d.seed.el.nodeRecords(ctx)
	if err != nil {
		return err
	}
	var chs []Change
	for _, rec := range d.dir.NodeRecords() {
		p := payloadOf(rec)
		canon, err := canonicalJSON(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(canon, logged[rec.NodeID]) {
			chs = append(chs, Change{Type: EventRegister, Payload: p})
		}
		delete(logged, rec.NodeID)
	}
	for id := range logged {
		chs = append(chs, Change{Type: EventDeregister, Payload: DeregisterPayload{NodeID: id}})
	}
	for start := 0; start < len(chs); start += feedEmitBatch {
		if _, err := d.seed.Emit(ctx, chs[start:min(start+feedEmitBatch, len(chs))]...); err != nil {
			return fmt.Errorf("appending reconciled changes: %w", err)
		}
	}
	if len(chs) > 0 {
		d.log.Info("reconciled the federated log with the directory", "changes", len(chs))
	}
	return nil
}

// changeFeed is the hook's queue: push never blocks.
type changeFeed struct {
	mu       sync.Mutex
	q        []Change
	max      int
	overflow bool
	signal   chan struct{}
}

func newChangeFeed(max int) *changeFeed {
	return &changeFeed{max: max, signal: make(chan struct{}, 1)}
}

// push is the directory's OnChange hook.
func (f *changeFeed) push(ev directory.ChangeEvent) {
	c, ok := changeOf(&ev)
	if !ok {
		return
	}
	f.mu.Lock()
	if len(f.q) >= f.max {
		f.overflow = true
	} else {
		f.q = append(f.q, c)
	}
	f.mu.Unlock()
	select {
	case f.signal <- struct{}{}:
	default:
	}
}

// take removes up to n queued changes and reports (and clears) overflow.
func (f *changeFeed) take(n int) ([]Change, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := min(n, len(f.q))
	batch := append([]Change(nil), f.q[:k]...)
	f.q = f.q[k:]
	if len(f.q) == 0 {
		f.q = nil // let the backing array go
	}
	ov := f.overflow
	f.overflow = false
	return batch, ov
}

// requeue puts a batch back at the front (an append cut short by shutdown).
func (f *changeFeed) requeue(batch []Change) {
	f.mu.Lock()
	f.q = append(batch, f.q...)
	f.mu.Unlock()
}
