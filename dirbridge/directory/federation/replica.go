package federation

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Sink mirrors verified state changes into another store (the directory's
// store in replica mode, through its single write choke point). Optional.
type Sink interface {
	ApplyState(ctx context.Context, ch *StateChange) error
}

// ReplicaConfig configures a replica directory (`meshnode directory --seed URL`).
type ReplicaConfig struct {
	// SeedURL is the Genesis Seed's base URL (https; http only with Insecure).
	SeedURL string
	// SeedKey pins the seed's Ed25519 key. Empty: taken from the seed's DID
	// document on first start and pinned in the database thereafter.
	SeedKey ed25519.PublicKey
	// DBPath is the replica's SQLite file (state and sync progress).
	DBPath string
	// Key is the replica's own Ed25519 key: its DID document and the
	// signature on every discovery response (DIR-FED-20).
	Key ed25519.PrivateKey
	// PublicURL is the replica's own https base URL (registration endpoint,
	// did:web identity).
	PublicURL string
	// DID defaults to the did:web of PublicURL.
	DID string
	// Token is a replica_token from an earlier registration. Empty: the
	// replica registers itself (S.13 §7.1) and keeps the token.
	Token string
	// PubSub, when set, subscribes to the seed's event topic.
	PubSub *pubsub.PubSub
	// Sink receives every verified change and the verified live state (the
	// directory's store in ReplicaDirectory, which serves discovery from
	// it). Optional: without one the replica only keeps the verified state
	// in its own database, and nothing serves it.
	Sink Sink
	// NoPush turns off the long-poll of the seed's events and liveness
	// (replicapush.go): the replica then follows by gossip and polling.
	NoPush bool
	// Insecure admits an http:// seed (loopback development and tests).
	Insecure   bool
	HTTPClient *http.Client

	PollInterval time.Duration // S.13 §5.3 incremental poll
	// LivenessInterval is the seed's digest interval: the replica polls
	// GET /v1/liveness this often when gossip brought no digest.
	LivenessInterval time.Duration
	MaxLag           time.Duration // DIR-FED-08: no discovery beyond this
	SnapshotRefresh  time.Duration // refresh of ephemeral node state
	RetryInterval    time.Duration // first retry after a failed bootstrap
	Logger           *slog.Logger
	Now              func() time.Time
}

// replicaDefaults is the one table of replica defaults.
var replicaDefaults = ReplicaConfig{
	PollInterval: 30 * time.Second, // S.13 §5.3 step 5
	MaxLag:       5 * time.Minute,  // S.13 §5.3, DIR-FED-08
	// Four refreshes an hour stay inside the seed's 5 snapshots/hour.
	SnapshotRefresh: 15 * time.Minute,
	RetryInterval:   time.Second,
	// Matches the seed's default digest interval.
	LivenessInterval: 10 * time.Second,
}

func (c *ReplicaConfig) applyDefaults() {
	d := replicaDefaults
	for _, p := range []struct{ v, def *time.Duration }{
		{&c.PollInterval, &d.PollInterval}, {&c.MaxLag, &d.MaxLag}, {&c.SnapshotRefresh, &d.SnapshotRefresh},
		{&c.RetryInterval, &d.RetryInterval},
		{&c.LivenessInterval, &d.LivenessInterval},
	} {
		if *p.v == 0 {
			*p.v = *p.def
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
}

// Replica follows the seed's signed log and serves discovery from the
// verified state. Serve runs the sync; Handler serves HTTP.
type Replica struct {
	cfg     ReplicaConfig
	log     *slog.Logger
	db      *sql.DB
	metrics *replicaMetrics
	seedErr error // seed URL unusable: writes get IICP-E047

	// Sync state, owned by the Serve goroutine once it runs.
	chain      *Chain
	seedDID    string
	seedKey    ed25519.PublicKey
	genesis    string
	token      string
	topic      *pubsub.Topic
	pollNow    chan struct{}
	gossipIn   chan *Event
	livenessIn chan *LivenessDigest
	pushIn     chan pushed // long-poll answers for the loop (replicapush.go)
	serveOnce  sync.Once
	subs       sync.WaitGroup // the gossip subscription reader; Serve waits for it

	appliedSeq    atomic.Int64
	lastConfirmed atomic.Int64 // unix ms of the last proof we were at the seed's head
	ready         atomic.Bool  // bootstrapped: state is verified

	// Liveness clock (replicalive.go).
	liveSeedMs     atomic.Int64 // ts_ms of the newest verified digest
	liveRecvNs     atomic.Int64 // when it arrived (replica clock)
	lastGossipLive atomic.Int64 // when gossip or a long-poll last brought a digest
	liveSinceMs    atomic.Int64 // next GET /v1/liveness since_ms
}

// Meta keys of the replica's progress.
const (
	metaAppliedSeq    = "applied_seq"
	metaNextPrevHash  = "next_prev_hash"
	metaSeedDID       = "seed_did"
	metaSeedKey       = "seed_key"
	metaReplicaToken  = "replica_token" // bearer secret: never logged
	metaLastConfirmed = "last_confirmed_ms"
)

// NewReplica opens the replica database and reloads verified state; it does
// no network I/O (Serve does).
func NewReplica(ctx context.Context, cfg ReplicaConfig) (*Replica, error) {
	cfg.applyDefaults()
	if cfg.DBPath == "" {
		return nil, errors.New("federation: replica needs DBPath")
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		// Without its key a replica cannot sign discovery (IICP-E048).
		return nil, errors.New("federation: replica needs its Ed25519 private key")
	}
	if cfg.DID == "" && cfg.PublicURL != "" {
		did, err := DIDWebFor(cfg.PublicURL)
		if err != nil {
			return nil, fmt.Errorf("federation: replica DID: %w", err)
		}
		cfg.DID = did
	}
	db, err := openDB(ctx, cfg.DBPath)
	if err != nil {
		return nil, fmt.Errorf("federation: %w", err)
	}
	r := &Replica{cfg: cfg, log: cfg.Logger.With("component", "federation-replica", "replica", cfg.DID), db: db,
		metrics: newReplicaMetrics(), pollNow: make(chan struct{}, 1), gossipIn: make(chan *Event, 256),
		livenessIn: make(chan *LivenessDigest, 16), pushIn: make(chan pushed),
		seedErr: checkSeedURL(cfg.SeedURL, cfg.Insecure)}
	if err := r.loadProgress(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return r, nil
}

// errSeedURL is the DIR-FED-18 misconfiguration.
var errSeedURL = errors.New("seed URL missing or not https")

func checkSeedURL(s string, insecure bool) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && !(insecure && u.Scheme == "http")) {
		return errSeedURL
	}
	return nil
}

// loadProgress restores the pinned seed identity, the chain head and the
// index, so a restart resumes from its seq instead of from genesis.
func (r *Replica) loadProgress(ctx context.Context) error {
	m := map[string]string{}
	for _, k := range []string{metaAppliedSeq, metaNextPrevHash, metaSeedDID, metaSeedKey, metaGenesisHash, metaReplicaToken, metaLastConfirmed} {
		v, ok, err := getMeta(ctx, r.db, k)
		if err != nil {
			return err
		}
		if ok {
			m[k] = v
		}
	}
	r.token = r.cfg.Token
	if r.token == "" {
		r.token = m[metaReplicaToken]
	}
	if k, ok := m[metaSeedKey]; ok {
		b, err := hex.DecodeString(k)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return errors.New("federation: corrupt pinned seed key")
		}
		if len(r.cfg.SeedKey) > 0 && !r.cfg.SeedKey.Equal(ed25519.PublicKey(b)) {
			return errors.New("federation: configured seed key differs from the pinned one; re-bootstrap this replica")
		}
		r.seedKey, r.seedDID = b, m[metaSeedDID]
	}
	r.genesis = m[metaGenesisHash]
	if v, ok := m[metaLastConfirmed]; ok {
		n, _ := strconv.ParseInt(v, 10, 64)
		r.lastConfirmed.Store(n)
	}
	seqStr, ok := m[metaAppliedSeq]
	if !ok || r.seedKey == nil {
		return nil // never bootstrapped
	}
	seq, err := strconv.ParseInt(seqStr, 10, 64)
	if err != nil {
		return fmt.Errorf("federation: corrupt applied seq: %w", err)
	}
	r.chain = NewChain(r.seedKey, r.seedDID, seq, m[metaNextPrevHash])
	r.appliedSeq.Store(seq)
	r.metrics.appliedSq.Set(float64(seq))
	r.ready.Store(true)
	return nil
}

// AppliedSeq is the highest verified seq in the replica's state.
func (r *Replica) AppliedSeq() int64 { return r.appliedSeq.Load() }

// Lag is the time since the replica last confirmed it was at the seed's
// head; a replica that never synced is infinitely behind.
func (r *Replica) Lag() time.Duration {
	c := r.lastConfirmed.Load()
	if c == 0 || !r.ready.Load() {
		return time.Duration(1<<63 - 1)
	}
	return max(0, r.cfg.Now().Sub(time.UnixMilli(c)))
}

// Close releases the database. Call after Serve returned.
func (r *Replica) Close() error { return r.db.Close() }

// Serve syncs until ctx ends: identity and registration, bootstrap when
// there is no verified state, then gossip plus polling. Network failures
// are retried; a replica with verified state keeps serving meanwhile.
func (r *Replica) Serve(ctx context.Context) error {
	if err := r.seedErr; err != nil {
		return fmt.Errorf("federation: %w", err)
	}
	defer r.subs.Wait() // the subscription reader ends with ctx
	retry := r.cfg.RetryInterval
	for r.chain == nil || r.topic == nil && r.cfg.PubSub != nil {
		err := r.start(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("replica start failed; retrying", "error", err, "retry_in", retry)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
		retry = min(2*retry, r.cfg.PollInterval)
	}
	return r.loop(ctx)
}

// start resolves the seed identity, registers, subscribes and bootstraps,
// each only if not yet done.
func (r *Replica) start(ctx context.Context) error {
	if r.seedKey == nil {
		if err := r.resolveSeed(ctx); err != nil {
			return err
		}
	}
	if r.cfg.PubSub != nil && r.topic == nil {
		if err := r.subscribe(ctx); err != nil {
			return err
		}
	}
	if r.chain == nil {
		if r.token == "" {
			if err := r.register(ctx); err != nil {
				return err
			}
		}
		if err := r.bootstrap(ctx, true); err != nil {
			return err
		}
	}
	return nil
}

func (r *Replica) loop(ctx context.Context) error {
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	refresh := time.NewTicker(r.cfg.SnapshotRefresh)
	defer refresh.Stop()
	live := time.NewTicker(r.cfg.LivenessInterval)
	defer live.Stop()
	r.pollOnce(ctx) // catch up right away (restart, or events during bootstrap)
	r.pollLiveness(ctx)
	if !r.cfg.NoPush {
		stopPush := r.startPush(ctx)
		defer stopPush()
	}
	for {
		r.metrics.lag.Set(min(r.Lag(), 100*365*24*time.Hour).Seconds())
		select {
		case <-ctx.Done():
			return nil
		case ev := <-r.gossipIn:
			r.applyGossip(ctx, ev)
		case p := <-r.pushIn:
			r.applyPushed(ctx, p)
		case d := <-r.livenessIn:
			r.applyLiveness(ctx, d, "gossip")
		case <-live.C:
			r.pollLiveness(ctx)
		case <-r.pollNow:
			r.pollOnce(ctx)
		case <-poll.C:
			r.pollOnce(ctx)
		case <-refresh.C:
			if err := r.bootstrap(ctx, false); err != nil && ctx.Err() == nil {
				r.log.Warn("snapshot refresh failed", "error", err)
			}
		}
	}
}

func (r *Replica) pollOnce(ctx context.Context) {
	if err := r.poll(ctx); err != nil && ctx.Err() == nil {
		r.log.Warn("polling seed events", "error", err)
	}
}

// triggerPoll asks the loop for an immediate poll (coalesced).
func (r *Replica) triggerPoll() {
	select {
	case r.pollNow <- struct{}{}:
	default:
	}
}

// subscribe joins the seed's gossip topic and feeds verified events to the
// loop. The validator counts what it rejects: forged or malformed gossip is
// reported like a forged polled event.
func (r *Replica) subscribe(ctx context.Context) error {
	did, pub := r.seedDID, r.seedKey
	name := EventTopic(did)
	v := func(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if _, err := decodeGossip(msg.Data, did, pub); err != nil {
			r.reject("gossip", err)
			return pubsub.ValidationReject
		}
		return pubsub.ValidationAccept
	}
	t, err := joinTopicWith(r.cfg.PubSub, name, v)
	if err != nil {
		return err
	}
	sub, err := t.Subscribe()
	if err != nil {
		_ = t.Close()
		return fmt.Errorf("federation: subscribing: %w", err)
	}
	r.topic = t
	r.subs.Add(1)
	go func() {
		defer r.subs.Done()
		defer sub.Cancel()
		for {
			msg, err := sub.Next(ctx)
			if err != nil {
				r.log.Debug("gossip subscription ended", "error", err)
				return // ctx ended
			}
			m, err := decodeGossip(msg.Data, did, pub)
			if err != nil {
				continue // validated already; cannot happen
			}
			if m.live != nil {
				select {
				case r.livenessIn <- m.live:
				default: // loop busy: the next digest or poll covers it
				}
				continue
			}
			select {
			case r.gossipIn <- m.ev:
			default:
				r.triggerPoll() // loop busy: the poll picks it up
			}
		}
	}()
	return nil
}

// reject reports a refused event or snapshot: a metric with a bounded
// reason label and a log line naming the IICP code and seq, never the
// payload (S.13 §5.3 "alert operator").
func (r *Replica) reject(source string, err error) {
	reason := ReasonLabel(err)
	switch {
	case errors.Is(err, ErrSnapshotSignature):
		reason = "snapshot_signature"
	case errors.Is(err, ErrLivenessSignature):
		reason = "liveness_signature"
	}
	r.metrics.rejected.WithLabelValues(reason).Inc()
	code := "IICP-E013"
	var ve *VerifyError
	if errors.As(err, &ve) {
		code = string(ve.Code())
	}
	r.log.Warn("rejected federated data", "source", source, "code", code, "reason", reason, "error", err)
}
