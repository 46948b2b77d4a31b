package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/wire"
)

// TaskEngine executes a validated CALL. It is the same engine the HTTP
// bridge uses; the mesh only frames and decodes. Execute always returns a
// non-nil Response.
type TaskEngine interface {
	Execute(ctx context.Context, call *wire.Call, caller wire.Caller) *wire.Response
}

// Option adjusts a Mesh at construction.
type Option func(*Mesh) error

// WithClock replaces the wall clock (tests of expiry and staleness).
func WithClock(now func() time.Time) Option {
	return func(m *Mesh) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", errConfig)
		}
		m.now = now
		return nil
	}
}

// Mesh is one node's presence on the libp2p mesh: DHT, gossip, peer
// table, the task protocol server and the direct-call client. Build it
// with New, run it with Serve; the caller owns and closes the host.
type Mesh struct {
	h       host.Host
	cfg     Config
	engine  TaskEngine
	gateway atomic.Pointer[gatewayEngine] // ServeGateway (gateway.go)
	log     *slog.Logger
	now     func() time.Time

	ctx    context.Context // lives until Close; parents pubsub and handlers
	cancel context.CancelFunc

	dht   *dht.IpfsDHT
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	sub   *pubsub.Subscription

	table    *PeerTable
	breakers *breakers
	calls    *inflight  // outbound task streams per peer
	pool     streamPool // idle persistent task streams (streampool.go)
	nodeIDs  nodeIDMemo // answerers' proven node_ids
	// idleOverride (ns), when positive, replaces serverStreamIdle (tests).
	idleOverride atomic.Int64
	// idleServed counts served persistent streams waiting for a request;
	// idleServedOverride, when not 0, replaces idleServedMax (tests; < 0: 0).
	idleServed, idleServedOverride atomic.Int64
	stats                          stats
	members                        membership
	operator                       operatorTrust
	rates                          successRates

	bootMu    sync.Mutex
	boot      map[peer.ID]peer.AddrInfo
	bootTried map[peer.ID]bool // dialled at least once since added

	lookupMu sync.Mutex
	lookups  map[string]bool // intents with a background DHT lookup running

	// loopback: the host listens on loopback alone (a development mesh),
	// so peers' loopback addresses are theirs, not this host's.
	loopback bool

	startMu    sync.Mutex  // serialises Start
	started    atomic.Bool // Start attached the DHT, gossip and handlers
	seq        atomic.Uint64
	active     atomic.Int64 // task streams being served
	provided   atomic.Bool
	joins      joinState
	protected  atomic.Int32
	serving    atomic.Bool
	kickAdvert chan struct{}
	kickBoot   chan struct{}
	rttSem     chan struct{}

	trackMu   sync.Mutex
	closed    bool
	wg        sync.WaitGroup // Serve loops, RTT probes and task handlers
	closeOnce sync.Once
	closeErr  error
}

// ErrServing is returned by a second Serve on the same Mesh.
var ErrServing = errors.New("mesh: already serving")

// ErrNotStarted is returned by Call before Start (or Serve).
var ErrNotStarted = errors.New("mesh: not started")

// New builds the mesh on an existing host. engine serves inbound tasks; it
// may be nil only for a pure consumer (no Capabilities). It validates and
// allocates only: Start attaches the DHT, gossip and task handlers to the
// host (as go-libp2p's identify service), Serve runs the background work
// (bootstrap, adverts, providing, expiry, RTT), calling Start when the
// caller did not, and Close waits for everything it started.
func New(h host.Host, cfg Config, engine TaskEngine, opts ...Option) (*Mesh, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil host", errConfig)
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	own, err := NodeIDOf(h.ID())
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: host key: %w", errConfig, err)
	case cfg.NodeID == "":
		cfg.NodeID = own
	case cfg.NodeID != own:
		return nil, fmt.Errorf("%w: node_id %s is not the host key's node_id %s", errConfig, cfg.NodeID, own)
	}
	if engine == nil && len(cfg.Capabilities) > 0 {
		return nil, fmt.Errorf("%w: capabilities without an engine", errConfig)
	}
	m := &Mesh{
		h: h, cfg: cfg, engine: engine, now: time.Now,
		log:        cfg.Logger.With("component", "mesh"),
		table:      newPeerTable(h.ID()),
		breakers:   newBreakers(cfg.BreakerThreshold, cfg.BreakerOpenFor),
		calls:      newInflight(callStreamsPerPeer),
		loopback:   listensOnLoopback(h),
		boot:       make(map[peer.ID]peer.AddrInfo),
		bootTried:  make(map[peer.ID]bool),
		lookups:    make(map[string]bool),
		kickAdvert: make(chan struct{}, 1),
		kickBoot:   make(chan struct{}, 1),
		rttSem:     make(chan struct{}, rttConcurrency),
	}
	for _, o := range opts {
		if err := o(m); err != nil {
			return nil, err
		}
	}
	// Restarted nodes must supersede their old adverts: start seq at the clock.
	m.seq.Store(uint64(m.now().UnixNano()))
	m.addBootstrap(cfg.BootstrapPeers)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m, nil
}

// Start attaches the mesh to its host: the DHT, GossipSub (advert topic and
// subscription) and, with an engine, the task stream handlers. A second
// Start does nothing; a failed one closes the mesh.
func (m *Mesh) Start() error {
	m.startMu.Lock()
	defer m.startMu.Unlock()
	if m.ctx.Err() != nil {
		return ErrClosed
	}
	if m.started.Load() {
		return nil
	}
	if err := m.start(); err != nil {
		return err
	}
	m.started.Store(true)
	return nil
}

func (m *Mesh) start() (err error) {
	defer func() {
		if err != nil {
			_ = m.Close()
		}
	}()
	m.dht, err = newDHT(m.h, m.cfg.DHTMode, m.bootstrapPeers)
	if err != nil {
		return err
	}
	v := &advertValidator{
		maxBytes: m.cfg.AdvertMaxBytes, ttl: m.cfg.PeerTTL, skew: m.cfg.MaxClockSkew,
		now: m.now, table: m.table, stats: &m.stats,
		limiter: newRateLimiter(m.cfg.AdvertRate, m.cfg.AdvertBurst),
	}
	m.ps, m.topic, err = newGossip(m.ctx, m.h, v)
	if err != nil {
		return err
	}
	m.sub, err = m.topic.Subscribe()
	if err != nil {
		return fmt.Errorf("subscribing to %s: %w", AdvertTopic, err)
	}
	if m.engine != nil {
		for _, c := range taskCodecs {
			m.h.SetStreamHandler(c.proto, m.taskHandler(c))
		}
	}
	return nil
}

// Serve runs the mesh's background work until ctx ends, then closes the
// mesh (not the host). It returns nil on a clean shutdown.
func (m *Mesh) Serve(ctx context.Context) error {
	if !m.serving.CompareAndSwap(false, true) {
		return ErrServing
	}
	if err := m.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(m.ctx, cancel) // Close also ends Serve
	defer stop()
	loops := []func(context.Context){
		m.bootstrapLoop, m.readAdverts, m.watchJoins, m.advertLoop, m.provideLoop, m.maintainLoop,
	}
	if m.cfg.MDNS {
		loops = append(loops, m.mdnsLoop)
	}
	for _, f := range loops {
		if !m.track() {
			break
		}
		go func() {
			defer m.wg.Done()
			f(ctx)
		}()
	}
	<-ctx.Done()
	return m.Close()
}

// Close stops the mesh: handlers are removed, gossip and DHT shut down and
// in-flight task handlers are waited for (each is bounded by its deadline).
// The host stays open. Close is idempotent.
func (m *Mesh) Close() error {
	m.closeOnce.Do(func() {
		m.trackMu.Lock()
		m.closed = true
		m.trackMu.Unlock()
		for _, c := range taskCodecs {
			m.h.RemoveStreamHandler(c.proto)
		}
		m.h.RemoveStreamHandler(GatewayProtocol)
		// Cancelling the context ends pubsub (subscription and topic with
		// it) and every loop; Topic.Close is not called because it races
		// with TopicEventHandler.Cancel inside go-libp2p-pubsub v0.19.0.
		if m.cancel != nil {
			m.cancel()
		}
		m.wg.Wait()
		m.pool.close()
		if m.dht != nil {
			m.closeErr = m.dht.Close()
		}
	})
	return m.closeErr
}

// Host is the libp2p host the mesh runs on.
func (m *Mesh) Host() host.Host { return m.h }

// Table is the live peer table.
func (m *Mesh) Table() *PeerTable { return m.table }

// Peers lists known peers with their circuit state, for `meshnode peers`.
func (m *Mesh) Peers() []PeerInfo {
	ps := m.table.Snapshot()
	now := m.now()
	for i := range ps {
		ps[i].Breaker = m.breakers.State(ps[i].PeerID, now)
	}
	return ps
}

// Stats returns event counters: adverts published/accepted, advert
// rejections by reason, task frames refused, calls and retries.
func (m *Mesh) Stats() map[string]uint64 { return m.stats.snapshot() }

// Provided reports whether every served intent has been provided to the
// DHT at least once.
func (m *Mesh) Provided() bool { return m.provided.Load() }

// track registers one goroutine in m.wg unless the mesh is closing; the
// caller must call m.wg.Done when it returns true.
func (m *Mesh) track() bool {
	m.trackMu.Lock()
	defer m.trackMu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	return true
}
