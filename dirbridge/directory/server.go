package directory

import (
	"github.com/prometheus/client_golang/prometheus"

	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
)

// Server is an IICP-DIR directory: HTTP handlers over an in-memory index
// backed by SQLite. Build it with New, then run Serve (or Close it).
type Server struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	store    *store
	tokens   *tokens
	prober   *prober
	signKey  ed25519.PrivateKey
	onChange func(ChangeEvent)
	// registry is the process registry from WithRegistry (nil: own one).
	registry *prometheus.Registry
	metrics  *metrics
	handler  http.Handler
	wraps    []func(http.Handler) http.Handler // federation (replica.go)
	liveNow  func() time.Time                  // replica liveness clock (replica.go)

	regLimit, keyLimit, ctLimit, memberLimit, revokedLimit, probeLimit, peerLimit *httpx.Limiter
	// badTokenLimit counts wrong node tokens per source; badTokenLog
	// bounds the WARN lines they produce.
	badTokenLimit  *httpx.Limiter
	badTokenLog    *httpx.LogLimiter
	trustedProxies []netip.Prefix
	lnStats        httpx.ListenerStats

	// operators holds display names and the per-operator cap (operator.go).
	operators *operatorBook
	// evidence holds proxy tokens, telemetry and audit reports (evidence.go).
	evidence *evidenceBook

	// repEpoch identifies the outcome-v2 score epoch (reputation.go).
	repEpoch string

	storeCheck storeCheck // last store write probe (health.go)

	nodeLocks keyedMutex
	replay    replayCache

	lnMu      sync.Mutex   // guards ln and closed
	ln        net.Listener // bound by Listen
	closed    bool
	closeOnce sync.Once
	// revoked lists recent deregistrations for mesh peers (membership.go).
	revoked  revocations
	closeErr error
}

// Server timeouts: bounded so slow clients cannot hold connections.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 16 << 10
	shutdownBudget    = 5 * time.Second
	maintenanceEvery  = 30 * time.Second // at most; a third of stale_after when shorter
)

// Secondary rate limits (iicp-dir.md §3.12, §3.3e).
const (
	directoryKeyPerMin  = 30
	consumerTokenPerMin = 60
	membershipPerMin    = 10
	revokedPerMin       = 240 // per source: many nodes may share one NAT address
	probePerMin         = 10
	// badTokensPerMin wrong node tokens per source and minute before its
	// token-checked requests are refused unchecked; a node with a stale
	// token needs one or two.
	badTokensPerMin  = 10
	badTokenLogLines = 10 // WARN lines per minute about wrong tokens
)

// New validates the configuration, opens the database and reloads the
// index; it binds nothing. Listen binds cfg.Listen (Serve calls it when
// needed; call it first to learn Addr or to fail before announcing). Call
// Serve to run it, or Close.
func New(cfg Config, opts ...Option) (*Server, error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if riskErr != nil {
		return nil, riskErr
	}
	s := &Server{cfg: cfg, log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.log = s.log.With("component", "directory")
	s.trustedProxies, _ = parsePrefixes(cfg.TrustedProxies)
	if err := s.openState(context.Background()); err != nil {
		return nil, err
	}
	var err error
	if s.prober, err = newProber(&s.cfg); err != nil {
		s.store.close()
		return nil, err
	}
	s.regLimit = httpx.NewLimiter(cfg.RegisterRateLimit, cfg.RegisterRateWindow, 0)
	s.keyLimit = httpx.NewLimiter(directoryKeyPerMin, time.Minute, 0)
	s.ctLimit = httpx.NewLimiter(consumerTokenPerMin, time.Minute, 0)
	s.memberLimit = httpx.NewLimiter(membershipPerMin, time.Minute, 0)
	s.revokedLimit = httpx.NewLimiter(revokedPerMin, time.Minute, 0)
	s.probeLimit = httpx.NewLimiter(probePerMin, time.Minute, 0)
	s.peerLimit = httpx.NewLimiter(1, 30*time.Second, 0) // §3.6: one gossip per 30 s per sender
	s.badTokenLimit = httpx.NewLimiter(badTokensPerMin, time.Minute, 0)
	s.badTokenLog = httpx.NewLogLimiter(badTokenLogLines, time.Minute)
	if s.metrics, err = newMetrics(s); err != nil {
		s.store.close()
		return nil, fmt.Errorf("directory metrics: %w", err)
	}
	s.handler = s.wrapHandler(s.routes())
	return s, nil
}

func (s *Server) openState(ctx context.Context) error {
	if s.cfg.StateDir != "" {
		if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
			return fmt.Errorf("directory: creating state dir: %w", err)
		}
	}
	path := s.cfg.DBPath
	if path == "" {
		path = filepath.Join(s.cfg.StateDir, "directory.db")
	}
	st, err := openStore(ctx, path)
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	secret, err := st.secret(ctx, "token_index_key", randomBytes(32))
	if err == nil && s.signKey == nil {
		s.signKey, err = loadSigningKey(ctx, st, filepath.Join(filepath.Dir(path), SigningKeyFile))
	}
	if err != nil {
		st.close()
		return fmt.Errorf("directory: %w", err)
	}
	epoch, err := st.secret(ctx, "reputation_epoch", newReputationEpoch)
	if err != nil {
		st.close()
		return fmt.Errorf("directory: %w", err)
	}
	s.repEpoch = string(epoch)
	if s.operators, err = openOperatorBook(ctx, st.db, s.cfg.MaxNodesPerOperator); err != nil {
		st.close()
		return fmt.Errorf("directory: %w", err)
	}
	if s.evidence, err = openEvidence(ctx, st.db, s.now()); err != nil {
		st.close()
		return fmt.Errorf("directory: %w", err)
	}
	st.idx.policy = &rankPolicy{now: s.now, graduatesAt: s.graduatesAt, regions: newRegionTable()}
	n, err := st.load(ctx)
	if err != nil {
		st.close()
		return fmt.Errorf("directory: %w", err)
	}
	st.onChange = s.onChange
	s.store = st
	s.tokens = &tokens{secret: secret, cost: s.cfg.BcryptCost}
	s.log.Info("directory state loaded", "nodes", n)
	return nil
}

// Listen binds cfg.Listen with its TLS (loading or creating the
// certificate). It does nothing without cfg.Listen or when already bound,
// and fails after Close.
func (s *Server) Listen() error {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	switch {
	case s.closed:
		return errors.New("directory: listen after close")
	case s.ln != nil || s.cfg.Listen == "":
		return nil
	}
	return s.listen()
}

func (s *Server) listen() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("directory: listening: %w", err)
	}
	ln = httpx.NewConnCap(ln, s.cfg.MaxConnsPerIP, &s.lnStats)
	if len(s.cfg.ACME.Domains) > 0 {
		s.ln = tls.NewListener(ln, s.acmeTLSConfig())
		return nil
	}
	if !s.cfg.Dev || s.cfg.TLSCertFile != "" {
		cert, err := s.loadCert()
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS13, // SEC-TLS-01
			NextProtos:   []string{"h2", "http/1.1"},
		})
	}
	s.ln = ln
	return nil
}

func (s *Server) loadCert() (tls.Certificate, error) {
	if s.cfg.TLSCertFile != "" {
		c, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		if err != nil {
			return c, fmt.Errorf("directory: loading TLS certificate: %w", err)
		}
		return c, nil
	}
	return loadOrCreateSelfSigned(s.cfg.StateDir, s.cfg.TLSHosts, s.now())
}

// Addr is the bound listen address (nil before Listen or without a
// listener).
func (s *Server) Addr() net.Addr {
	if ln := s.listener(); ln != nil {
		return ln.Addr()
	}
	return nil
}

func (s *Server) listener() net.Listener {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return s.ln
}

// TLS reports whether the listener speaks TLS.
func (s *Server) TLS() bool {
	return s.listener() != nil && (len(s.cfg.ACME.Domains) > 0 || !s.cfg.Dev || s.cfg.TLSCertFile != "")
}

// Handler is the full route table for in-process use (the node's embedded
// directory). Background loops still need Serve.
func (s *Server) Handler() http.Handler { return s.handler }

// PublicKey is the directory's Ed25519 public key (consumer tokens, tickets).
func (s *Server) PublicKey() ed25519.PublicKey { return s.signKey.Public().(ed25519.PublicKey) }

// Serve binds (Listen) when cfg.Listen is set, serves HTTP and runs the
// write-behind and maintenance loops until ctx ends, then shuts down within
// a bound, flushes and closes the database. Every goroutine it started has
// ended when it returns.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		_ = s.Close()
		return err
	}
	ln := s.listener()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	var hs *http.Server
	if ln != nil {
		hs = &http.Server{
			Handler:           s.handler,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          httpx.ServerErrorLog(s.log, &s.lnStats),
			BaseContext:       func(net.Listener) context.Context { return ctx },
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("directory: serving: %w", err)
				cancel()
			}
		}()
		s.log.Info("directory listening", "addr", ln.Addr().String(), "tls", s.TLS())
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.loops(ctx) }()
	if s.liveNow == nil && s.cfg.ReprobeInterval > 0 {
		// A replica's node state comes from its seed, which probes.
		wg.Add(1)
		go func() { defer wg.Done(); newReprober(s, s.cfg.ReprobeInterval, s.cfg.ReprobeConcurrency).run(ctx) }()
	}
	<-ctx.Done()
	if hs != nil {
		sctx, scancel := context.WithTimeout(context.Background(), shutdownBudget)
		_ = hs.Shutdown(sctx)
		scancel()
	}
	wg.Wait()
	err := s.Close()
	select {
	case e := <-errc:
		return e
	default:
		return err
	}
}

// Close flushes pending heartbeat state and releases the database and
// listener. Serve calls it on exit; call it directly only without Serve.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.lnMu.Lock()
		s.closed = true
		if s.ln != nil {
			_ = s.ln.Close()
		}
		s.lnMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
		defer cancel()
		if err := s.store.flush(ctx); err != nil {
			s.closeErr = fmt.Errorf("directory: final flush: %w", err)
		}
		s.prober.closeIdle()
		if err := s.store.close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("directory: closing database: %w", err)
		}
	})
	return s.closeErr
}

// loops runs the heartbeat write-behind and the maintenance tasks.
func (s *Server) loops(ctx context.Context) {
	flush := time.NewTicker(s.cfg.FlushInterval)
	defer flush.Stop()
	maint := time.NewTicker(min(maintenanceEvery, max(s.cfg.StaleAfter/3, 100*time.Millisecond)))
	defer maint.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			if err := s.store.flushTick(ctx); err != nil && ctx.Err() == nil {
				s.metrics.flushErrors.Inc()
				s.log.Warn("heartbeat flush failed", "error", err)
			}
		case <-maint.C:
			s.maintain(ctx)
		}
	}
}

// maintain marks stale nodes dormant, prunes address history beyond the
// retention and sweeps idle rate-limit keys.
func (s *Server) maintain(ctx context.Context) {
	now := s.now()
	s.markDormant(now)
	if n, err := s.store.pruneAddressHistory(ctx, now.Add(-s.cfg.AddressHistoryRetention)); err != nil {
		s.log.Warn("address history pruning failed", "error", err)
	} else if n > 0 {
		s.log.Debug("address history pruned", "rows", n)
	}
	if err := s.evidence.prune(ctx, now); err != nil {
		s.log.Warn("evidence pruning failed", "error", err)
	}
	for _, l := range []*httpx.Limiter{s.regLimit, s.keyLimit, s.ctLimit, s.memberLimit, s.revokedLimit, s.probeLimit, s.peerLimit, s.badTokenLimit} {
		l.Sweep(now)
	}
	s.replay.sweep(now)
}

// markDormant records dormant_since on nodes that went stale (iicp-dir.md
// §3.2). Discover does not depend on it: it checks last_seen itself.
func (s *Server) markDormant(now time.Time) {
	var stale []*entry
	s.store.idx.forAll(func(e *entry) {
		st := e.state.Load()
		if st.DormantSince == nil && !s.live(st, now) {
			stale = append(stale, e)
		}
	})
	for _, e := range stale {
		old := e.state.Load()
		if old.DormantSince != nil || s.live(old, now) {
			continue
		}
		next := *old
		t := now
		next.DormantSince = &t
		next.Available = false
		if e.state.CompareAndSwap(old, &next) {
			s.store.idx.refreshRanks(e)
			s.store.markDirty(e.rec.NodeID, nil)
			s.metrics.misses.Inc()
			s.log.Info("node expired: no heartbeat within stale_after", "node", e.rec.NodeID,
				"last_seen", old.LastSeen.UTC().Format(time.RFC3339), "stale_after", s.cfg.StaleAfter)
		}
	}
}

// liveCutoff is the oldest last_seen (unix ns) live at now: live(st, now)
// is st.LastSeen.UnixNano() >= liveCutoff(now).
func (s *Server) liveCutoff(now time.Time) int64 {
	if s.liveNow != nil {
		now = s.liveNow()
	}
	return now.Add(-s.cfg.StaleAfter).UnixNano()
}

// live reports whether a node was heard from within the liveness window.
func (s *Server) live(st *nodeState, now time.Time) bool {
	if s.liveNow != nil {
		now = s.liveNow()
	}
	return now.Sub(st.LastSeen) <= s.cfg.StaleAfter
}

func (s *Server) activeCount() int {
	now, n := s.now(), 0
	s.store.idx.forAll(func(e *entry) {
		if s.live(e.state.Load(), now) {
			n++
		}
	})
	return n
}

// ApplyChange applies a change received from elsewhere (a federation
// replica following the seed's event log) through the same choke point as
// local registrations. Heartbeat state starts fresh at ev.At.
func (s *Server) ApplyChange(ctx context.Context, ev ChangeEvent) error {
	if ev.Kind == ChangeRegister {
		if ev.Record == nil || ev.Record.NodeID != ev.NodeID {
			return errors.New("directory: register change without a matching record")
		}
		st := &nodeState{LastSeen: ev.At, Available: true, Reputation: defaultReputation, ObservedIP: ev.ObservedIP}
		return s.store.apply(ctx, ev, st)
	}
	return s.store.apply(ctx, ev, nil)
}

// keyedMutex serialises registrations per node_id without a global lock
// (a liveness probe may take seconds).
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedEntry)
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
