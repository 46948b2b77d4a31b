package federation

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/meshnode/meshnode/internal/httpx"
)

// SeedConfig configures the Genesis Seed side of federation.
type SeedConfig struct {
	// DBPath is the seed's federation SQLite file (event log, replica rows,
	// materialised federated state). It is a file of its own, not the
	// directory's database: see docs/spec-decisions.md "## federation".
	DBPath string
	// Key signs events, snapshots and replica tokens (DIR-FED-21: Go's
	// crypto/ed25519 is pure Go, so it is always available).
	Key ed25519.PrivateKey
	// DID is signer_did, e.g. "did:web:iicp.network". Empty: derived from
	// PublicURL.
	DID string
	// PublicURL is the seed's base URL, advertised in its DID document.
	PublicURL string
	// Live supplies ephemeral node state for snapshots. Optional.
	Live LiveSource
	// PubSub, when set, pushes every new event on the gossip topic so
	// replicas converge without waiting for a poll.
	PubSub *pubsub.PubSub
	// Insecure admits http:// and loopback/private replica DIDs and
	// endpoints (loopback development and tests only).
	Insecure bool
	// HTTPClient resolves replica DIDs and probes their health when
	// Insecure is set (tests). Otherwise every such fetch goes through
	// httpx.GuardedClient: the address is checked when dialled and
	// redirects are not followed, whatever is set here.
	HTTPClient *http.Client

	PruneWindow      time.Duration // rolling window of retained events
	PruneInterval    time.Duration // how often pruning runs
	RegisterPerHour  int           // replica registrations per IP per hour
	SnapshotsPerHour int           // snapshots per replica per hour
	EventsPerMinute  int           // GET /v1/events per IP per minute
	SnapshotTimeout  time.Duration // generation budget before IICP-E046
	// LivenessInterval is how often a seed with gossip and a LiveFeed
	// publishes a liveness digest (liveness.go).
	LivenessInterval  time.Duration
	LivenessPerMinute int           // GET /v1/liveness per replica per minute
	ProbeTimeout      time.Duration // DID resolution and health probe budget
	ReplicaTokenTTL   time.Duration
	Logger            *slog.Logger
	Now               func() time.Time
}

// seedDefaults is the one table of seed defaults (S.13 §5.3, §5.5, §7.1).
var seedDefaults = SeedConfig{
	PruneWindow:      60 * time.Minute, // §5.3 federation rolling window
	PruneInterval:    time.Minute,
	RegisterPerHour:  5,   // §7.1 throttle:5,60
	SnapshotsPerHour: 5,   // §5.5 rate limit
	EventsPerMinute:  600, // public tail: a poller every 30 s needs 2
	SnapshotTimeout:  30 * time.Second,
	// Nodes heartbeat every 30 s and go dormant after 90 s: a digest every
	// 10 s keeps a replica's last_seen at most ~40 s behind the seed's.
	LivenessInterval:  10 * time.Second,
	LivenessPerMinute: 30,              // a replica polling every 10 s needs 6
	ProbeTimeout:      5 * time.Second, // §7.1 timeout ≤ 5 s
	ReplicaTokenTTL:   ReplicaTokenTTL,
}

func (c *SeedConfig) applyDefaults() {
	d := seedDefaults
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.PruneWindow, d.PruneWindow)
	setDur(&c.PruneInterval, d.PruneInterval)
	setDur(&c.SnapshotTimeout, d.SnapshotTimeout)
	setDur(&c.ProbeTimeout, d.ProbeTimeout)
	setDur(&c.ReplicaTokenTTL, d.ReplicaTokenTTL)
	setDur(&c.LivenessInterval, d.LivenessInterval)
	setInt(&c.LivenessPerMinute, d.LivenessPerMinute)
	setInt(&c.RegisterPerHour, d.RegisterPerHour)
	setInt(&c.SnapshotsPerHour, d.SnapshotsPerHour)
	setInt(&c.EventsPerMinute, d.EventsPerMinute)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case !c.Insecure:
		c.HTTPClient = httpx.GuardedClient(c.ProbeTimeout, nil)
	case c.HTTPClient == nil:
		c.HTTPClient = &http.Client{Timeout: c.ProbeTimeout, CheckRedirect: httpx.NoRedirects}
	}
}

// Seed is the Genesis Seed: it appends every federated change to the signed
// log, serves the federation endpoints and pushes events by gossip.
type Seed struct {
	cfg     SeedConfig
	log     *slog.Logger
	el      *eventLog
	topic   *pubsub.Topic
	metrics *seedMetrics
	handler http.Handler

	registerRL *httpx.Limiter
	snapshotRL *httpx.Limiter
	eventsRL   *httpx.Limiter
	livenessRL *httpx.Limiter
}

// NewSeed opens the seed's log and joins the gossip topic when PubSub is set.
func NewSeed(ctx context.Context, cfg SeedConfig) (*Seed, error) {
	cfg.applyDefaults()
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("federation: seed needs an Ed25519 private key")
	}
	if cfg.DBPath == "" {
		return nil, errors.New("federation: seed needs DBPath")
	}
	if cfg.DID == "" {
		did, err := DIDWebFor(cfg.PublicURL)
		if err != nil {
			return nil, fmt.Errorf("federation: seed DID: %w", err)
		}
		cfg.DID = did
	}
	el, err := openEventLog(ctx, cfg.DBPath, cfg.Key, cfg.DID, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("federation: %w", err)
	}
	s := &Seed{cfg: cfg, log: cfg.Logger.With("subsystem", "federation-seed"), el: el, metrics: newSeedMetrics(),
		registerRL: httpx.NewLimiter(cfg.RegisterPerHour, time.Hour, 0),
		snapshotRL: httpx.NewLimiter(cfg.SnapshotsPerHour, time.Hour, 0),
		eventsRL:   httpx.NewLimiter(cfg.EventsPerMinute, time.Minute, 0),
		livenessRL: httpx.NewLimiter(cfg.LivenessPerMinute, time.Minute, 0)}
	if cfg.PubSub != nil {
		t, err := joinEventTopic(cfg.PubSub, cfg.DID, cfg.Key.Public().(ed25519.PublicKey))
		if err != nil {
			el.close()
			return nil, err
		}
		s.topic = t
	}
	seq, _, _ := el.head()
	s.metrics.headSeq.Set(float64(seq))
	s.handler = s.routes()
	return s, nil
}

// DID is the seed's signer_did.
func (s *Seed) DID() string { return s.cfg.DID }

// PublicKey is the seed's event-signing key.
func (s *Seed) PublicKey() ed25519.PublicKey { return s.cfg.Key.Public().(ed25519.PublicKey) }

// HeadSeq is the highest emitted seq.
func (s *Seed) HeadSeq() int64 { seq, _, _ := s.el.head(); return seq }

// Emit appends changes as signed consecutive events and pushes them by
// gossip. It returns when the events are durable. Types outside the closed
// set are refused (DIR-FED-16).
func (s *Seed) Emit(ctx context.Context, changes ...Change) ([]Event, error) {
	evs, err := s.el.append(ctx, func(*sql.Tx) ([]Change, error) { return changes, nil })
	if err != nil {
		return nil, err
	}
	s.published(ctx, evs)
	return evs, nil
}

// published updates metrics and gossips events that are already durable.
func (s *Seed) published(ctx context.Context, evs []Event) {
	for i := range evs {
		s.metrics.appended.WithLabelValues(string(evs[i].EventType)).Inc()
	}
	if len(evs) > 0 {
		s.metrics.headSeq.Set(float64(evs[len(evs)-1].Seq))
	}
	if s.topic == nil {
		return
	}
	for i := range evs {
		b, err := json.Marshal(&evs[i])
		if err != nil {
			continue
		}
		// A lost gossip message costs one poll interval, never correctness.
		if err := s.topic.Publish(ctx, b); err != nil {
			s.log.Warn("gossiping event", "seq", evs[i].Seq, "error", err)
		}
	}
}

// Serve prunes the rolling window and, with gossip and a LiveFeed,
// publishes liveness digests until ctx ends.
func (s *Seed) Serve(ctx context.Context) error {
	if _, ok := s.cfg.Live.(LiveFeed); ok && s.topic != nil {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() { defer close(done); s.livenessLoop(ctx) }()
	}
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			n, err := s.el.prune(ctx, s.cfg.Now().Add(-s.cfg.PruneWindow))
			if err != nil && ctx.Err() == nil {
				s.log.Error("pruning event log", "error", err)
			} else if n > 0 {
				s.log.Debug("pruned event log", "events", n)
			}
		}
	}
}

// Prune removes events older than the rolling window now (Serve does this
// periodically).
func (s *Seed) Prune(ctx context.Context) (int64, error) {
	return s.el.prune(ctx, s.cfg.Now().Add(-s.cfg.PruneWindow))
}

// Close leaves the gossip topic and closes the database.
func (s *Seed) Close() error {
	var errs []error
	if s.topic != nil {
		errs = append(errs, s.topic.Close())
	}
	errs = append(errs, s.el.close())
	return errors.Join(errs...)
}

// Handler serves the seed's federation routes; mount it beside the
// directory's handler (see Routes).
func (s *Seed) Handler() http.Handler { return s.handler }

// SeedRoutes lists the paths Handler serves, for the composition root's mux.
var SeedRoutes = []string{
	"/v1/events", "/v1/snapshot", "/v1/liveness", "/v1/replicas/register", "/v1/replicas/deregister",
	"/.well-known/did.json", "/.well-known/iicp-replicas.json",
}
