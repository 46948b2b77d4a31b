package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// ReplicaDirectoryConfig composes `meshnode directory --seed URL`: a real
// IICP-DIR directory whose node state comes only from the seed's verified
// log, so it serves the full discover (same scoring, filters and views)
// while writes go to the seed.
type ReplicaDirectoryConfig struct {
	// Directory is the directory's own configuration (listener, TLS, DB).
	Directory directory.Config
	// Options are extra directory options.
	Options []directory.Option
	// Replica configures sync. SeedURL and Key are required. DBPath
	// defaults to federation-replica.db in Directory.StateDir (or beside
	// Directory.DBPath); PublicURL to the listener's URL; Sink is set to the
	// directory.
	Replica ReplicaConfig
	// Gossip, when set, runs a libp2p host subscribed to the seed's topic
	// (Replica.PubSub is taken from it); Gossip.Peers should name the
	// seed's host.
	Gossip *GossipConfig
}

// ReplicaDirectory is a directory running as a replica of a seed.
type ReplicaDirectory struct {
	cfg    ReplicaDirectoryConfig
	dir    *directory.Server
	rep    *Replica
	gossip *GossipHost
	next   http.Handler // the directory's routes, wrapped by the replica
	h      atomic.Value // http.Handler: the replica's gate around next, set by Listen
	log    *slog.Logger
}

// NewReplicaDirectory validates cfg and opens the directory's store; it
// binds nothing, starts nothing and does no network I/O. Listen binds the
// directory's listener and the gossip host, opens the replica's verified
// state and makes the directory hold exactly it; Serve syncs and serves
// (calling Listen when needed); Close releases what Serve never ran.
func NewReplicaDirectory(ctx context.Context, cfg ReplicaDirectoryConfig) (*ReplicaDirectory, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkSeedURL(cfg.Replica.SeedURL, cfg.Replica.Insecure); err != nil {
		// A replica must not start without a seed to send writes to
		// (S.13 §6.2a); Replica.Handler's IICP-E047 covers a library user
		// who runs one anyway.
		return nil, fmt.Errorf("federation: replica: %w", err)
	}
	if len(cfg.Replica.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("federation: replica needs its Ed25519 private key")
	}
	d := &ReplicaDirectory{cfg: cfg, log: cfg.Replica.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Gossip != nil {
		g, err := NewGossipHost(*cfg.Gossip, d.log.With("component", "federation-replica"))
		if err != nil {
			return nil, err
		}
		d.gossip = g
	}
	opts := append(append([]directory.Option{}, cfg.Options...),
		directory.WithHandlerWrap(d.wrap), directory.WithLivenessClock(d.livenessNow))
	dir, err := directory.New(cfg.Directory, opts...)
	if err != nil {
		return nil, err
	}
	d.dir = dir
	return d, nil
}

// Listen binds the directory's listener and the gossip host, opens the
// replica's state (its did:web comes from the bound URL when
// Replica.PublicURL is empty) and reconciles the directory with it. On
// failure call Close. A second Listen does nothing.
func (d *ReplicaDirectory) Listen(ctx context.Context) error {
	if d.rep != nil {
		return nil
	}
	cfg := d.cfg.Replica
	var err error
	if cfg.PubSub, cfg.PublicURL, cfg.DBPath, err = bindDirectory(d.dir, d.gossip, cfg.PubSub, cfg.PublicURL,
		cfg.DBPath, stateFile(d.cfg.Directory, "federation-replica.db")); err != nil {
		return err
	}
	cfg.Sink = dirSink{s: d.dir}
	rep, err := NewReplica(ctx, cfg)
	if err != nil {
		return err
	}
	if err := d.reconcileWith(ctx, rep); err != nil {
		return errors.Join(err, rep.Close())
	}
	d.rep = rep
	d.h.Store(rep.Handler(d.next))
	return nil
}

// wrap is the directory's handler wrap: the replica's write gate, lag gate
// and response signing around the directory's routes.
func (d *ReplicaDirectory) wrap(next http.Handler) http.Handler {
	d.next = next
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, _ := d.h.Load().(http.Handler)
		if h == nil { // before Listen: no verified state to serve
			httpx.WriteError(w, unavailable(wire.CodeUnavailable, "replica not started"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// livenessNow is the directory's liveness clock (Replica.LivenessNow).
func (d *ReplicaDirectory) livenessNow() time.Time {
	if d.h.Load() == nil { // before Listen (h is stored after rep)
		return time.Now()
	}
	return d.rep.LivenessNow()
}

// reconcile makes the directory hold exactly the replica's verified nodes:
// it repairs a crash between the replica's commit and the directory's, and
// removes anything the directory held that the seed never signed (a
// replica never serves unverifiable state).
func (d *ReplicaDirectory) reconcileWith(ctx context.Context, rep *Replica) error {
	verified, err := rep.nodeRecords(ctx)
	if err != nil {
		return err
	}
	var evs []directory.ChangeEvent
	for _, rec := range d.dir.NodeRecords() {
		v, ok := verified[rec.NodeID]
		if ok {
			canon, err := canonicalJSON(payloadOf(rec))
			if err == nil && bytes.Equal(canon, v.record) {
				delete(verified, rec.NodeID)
				continue
			}
		}
		if !ok {
			evs = append(evs, directory.ChangeEvent{Kind: directory.ChangeDeregister, NodeID: rec.NodeID,
				Reason: directory.ReasonExplicit, At: time.Now()})
		}
	}
	for id, v := range verified {
		var p RegisterPayload
		if err := json.Unmarshal(v.record, &p); err != nil || p.NodeID != id {
			return fmt.Errorf("federation: corrupt replicated record for a node: %w", errors.Join(err, ErrMalformed))
		}
		evs = append(evs, directory.ChangeEvent{Kind: directory.ChangeRegister, NodeID: id,
			Record: recordOf(&p, v.tsMs), At: time.UnixMilli(v.tsMs)})
	}
	if len(evs) == 0 {
		return nil
	}
	d.log.Info("reconciled the replica directory with its verified state", "changes", len(evs))
	return d.dir.ApplyReplicated(ctx, evs)
}

type verifiedNode struct {
	record []byte
	tsMs   int64
}

// nodeRecords returns the replica's verified registrations by node_id.
func (r *Replica) nodeRecords(ctx context.Context) (map[string]verifiedNode, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT node_id, record, ts_ms FROM fed_nodes`)
	if err != nil {
		return nil, fmt.Errorf("federation: reading nodes: %w", err)
	}
	defer rows.Close()
	out := map[string]verifiedNode{}
	for rows.Next() {
		var id string
		var v verifiedNode
		if err := rows.Scan(&id, &v.record, &v.tsMs); err != nil {
			return nil, fmt.Errorf("federation: scanning node: %w", err)
		}
		out[id] = v
	}
	return out, rows.Err()
}

// Directory is the underlying directory server.
func (d *ReplicaDirectory) Directory() *directory.Server { return d.dir }

// Replica is the sync engine (nil before Listen).
func (d *ReplicaDirectory) Replica() *Replica { return d.rep }

// Addr is the listener's address (nil without a listener).
func (d *ReplicaDirectory) Addr() net.Addr { return d.dir.Addr() }

// URL is the listener's base URL.
func (d *ReplicaDirectory) URL() string { return listenerURL(d.dir) }

// Handler serves the replica's whole HTTP surface (in-process use).
func (d *ReplicaDirectory) Handler() http.Handler { return d.dir.Handler() }

// Serve syncs from the seed and serves the directory until ctx ends. The
// directory's store closes only after sync stopped writing to it. It calls
// Listen first when the caller did not; every goroutine it started has
// ended when it returns.
func (d *ReplicaDirectory) Serve(ctx context.Context) error {
	if err := d.Listen(ctx); err != nil {
		return errors.Join(err, d.Close())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dirCtx, dirCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer dirCancel()
	var wg sync.WaitGroup
	var dirErr, repErr error
	repDone := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer cancel() // a failed listener stops sync too
		dirErr = d.dir.Serve(dirCtx)
	}()
	go func() {
		defer wg.Done()
		defer close(repDone)
		if repErr = d.rep.Serve(ctx); repErr != nil {
			cancel()
		}
	}()
	if d.gossip != nil {
		wg.Add(1)
		go func() { defer wg.Done(); d.gossip.Serve(ctx) }()
	}
	<-ctx.Done()
	<-repDone
	dirCancel()
	wg.Wait()
	err := errors.Join(dirErr, repErr, d.rep.Close())
	d.closeGossip()
	return err
}

// Close releases everything when Serve was never called.
func (d *ReplicaDirectory) Close() error {
	err := d.dir.Close()
	if d.rep != nil {
		err = errors.Join(err, d.rep.Close())
	}
	d.closeGossip()
	return err
}

func (d *ReplicaDirectory) closeGossip() {
	if d.gossip != nil {
		_ = d.gossip.Close()
	}
}
