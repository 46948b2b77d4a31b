package federation

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/internal/httperr"
	"github.com/meshnode/meshnode/wire"
)

// Bounds of one sync round.
const (
	pollPageLimit    = maxEventsLimit
	maxPagesPerPoll  = 1000      // 1M events; more waits for the next tick
	maxEventsBody    = 96 << 20  // a full page of maximal events
	maxSnapshotBytes = 512 << 20 // ~100k nodes
	maxSmallBody     = maxRequestBody * 4
)

// errSeedStatus wraps an unexpected seed response.
var errSeedStatus = errors.New("seed answered with an error")

// seedGet performs GET path on the seed and returns the capped body.
func (r *Replica) seedGet(ctx context.Context, path string, auth bool, limit int64) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(r.cfg.SeedURL, "/")+path, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if auth {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", req.URL.Path, httperr.Transport("seed", err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", req.URL.Path, httperr.Transport("seed", err))
	}
	if int64(len(body)) > limit {
		return nil, nil, fmt.Errorf("%s: response larger than %d bytes", req.URL.Path, limit)
	}
	return resp, body, nil
}

// seedError decodes an IICP error envelope from a non-200 answer.
func seedError(status int, body []byte) error {
	var env struct {
		Error *wire.Error `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		return fmt.Errorf("%w: %d %s", errSeedStatus, status, env.Error.Code)
	}
	return fmt.Errorf("%w: %d", errSeedStatus, status)
}

// resolveSeed fetches the seed's DID document and pins its Ed25519 key and
// DID: events must be signed by this key and carry this signer_did
// (DIR-FED-03). A configured SeedKey must match.
func (r *Replica) resolveSeed(ctx context.Context) error {
	resp, body, err := r.seedGet(ctx, "/.well-known/did.json", false, maxDIDDocBytes)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return seedError(resp.StatusCode, body)
	}
	var doc DIDDocument
	if err := json.Unmarshal(body, &doc); err != nil || !strings.HasPrefix(doc.ID, "did:") {
		return fmt.Errorf("%w: seed DID document invalid", ErrDIDUnresolvable)
	}
	key, err := doc.Ed25519Key()
	if err != nil {
		return err
	}
	if len(r.cfg.SeedKey) > 0 && !r.cfg.SeedKey.Equal(key) {
		return fmt.Errorf("%w: seed DID key differs from the configured seed key", ErrUntrustedRoot)
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if err := errors.Join(setMeta(ctx, tx, metaSeedDID, doc.ID), setMeta(ctx, tx, metaSeedKey, hex.EncodeToString(key))); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	r.seedDID, r.seedKey = doc.ID, key
	return nil
}

// register runs the §7.1 handshake for this replica and stores its token.
func (r *Replica) register(ctx context.Context) error {
	if r.cfg.PublicURL == "" || r.cfg.DID == "" {
		return errors.New("federation: replica has no token and no PublicURL to register with")
	}
	body, _ := json.Marshal(RegisterReplicaRequest{DID: r.cfg.DID, Endpoint: r.cfg.PublicURL, TrustTierRequest: TrustLow})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(r.cfg.SeedURL, "/")+"/v1/replicas/register", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("registering replica: %w", httperr.Transport("seed", err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxSmallBody))
	if err != nil {
		return fmt.Errorf("registering replica: %w", httperr.Transport("seed", err))
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("registering replica: %w", seedError(resp.StatusCode, raw))
	}
	var ack RegisterReplicaResponse
	if err := json.Unmarshal(raw, &ack); err != nil || ack.ReplicaToken == "" {
		return errors.New("registering replica: malformed acknowledgement")
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if err := setMeta(ctx, tx, metaReplicaToken, ack.ReplicaToken); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	r.token = ack.ReplicaToken
	r.log.Info("registered with seed", "replica_id", ack.ReplicaID, "trust_tier", ack.TrustTier)
	return nil
}

// bootstrap fetches, verifies and applies a snapshot (S.13 §5.3 step 1).
// full replaces the state and moves the chain head to snapshot_seq; a
// refresh (full=false) behind the replica's own head only updates the
// ephemeral node state, so a snapshot never rolls verified events back.
func (r *Replica) bootstrap(ctx context.Context, full bool) error {
	resp, body, err := r.seedGet(ctx, "/v1/snapshot", true, maxSnapshotBytes)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("snapshot: %w", seedError(resp.StatusCode, body))
	}
	snap, err := VerifySnapshot(r.seedKey, r.seedDID, body, resp.Header.Get(HeaderSnapshotSig))
	if err != nil {
		r.reject("snapshot", err)
		return fmt.Errorf("snapshot rejected: %w", err)
	}
	if err := r.checkGenesis(snap.GenesisHash); err != nil {
		r.reject("snapshot", err)
		return err
	}
	if !full && snap.SnapshotSeq < r.appliedSeq.Load() {
		return r.refreshLive(ctx, snap)
	}
	if err := r.applySnapshot(ctx, snap); err != nil {
		return err
	}
	r.metrics.snapshots.Inc()
	r.log.Info("applied snapshot", "snapshot_seq", snap.SnapshotSeq, "nodes", len(snap.Nodes))
	return nil
}

// errFork: the seed's genesis_hash differs from the pinned one.
var errFork = errors.New("genesis_hash differs from the pinned chain")

// checkGenesis pins genesis_hash on first use (DIR-FED-14/17); the value
// of an empty log (GenesisRoot) is replaced by the first real one once.
func (r *Replica) checkGenesis(g string) error {
	if r.genesis == "" || r.genesis == GenesisRoot || r.genesis == g {
		return nil
	}
	return &VerifyError{Reason: fmt.Errorf("%w: %w", ErrChainLink, errFork)}
}

func (r *Replica) applySnapshot(ctx context.Context, snap *Snapshot) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()          //nolint:errcheck // no-op after commit
	old, err := nodeIDs(ctx, tx) // the Sink deregisters those the snapshot lacks
	if err != nil {
		return err
	}
	for _, q := range []string{`DELETE FROM fed_nodes`, `DELETE FROM fed_replicas`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("clearing state: %w", err)
		}
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO fed_nodes (node_id, seq, ts_ms, record, credit_balance, reputation) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	for i := range snap.Nodes {
		n := &snap.Nodes[i]
		var p RegisterPayload
		if err := json.Unmarshal(n.Registration, &p); err != nil || p.NodeID != n.NodeID || p.Endpoint == "" {
			return fmt.Errorf("%w: snapshot node registration", ErrMalformed)
		}
		if _, err := ins.ExecContext(ctx, n.NodeID, n.RegisteredSeq, n.RegisteredTsMs, []byte(n.Registration),
			nullFloat(n.CreditBalance), nullFloat(n.ReputationScore)); err != nil {
			return fmt.Errorf("storing snapshot node: %w", err)
		}
	}
	for _, rep := range snap.Replicas {
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO fed_replicas (replica_id, did, endpoint, trust_tier, status, registered_at, region_hint)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, rep.ReplicaID, rep.DID, rep.Endpoint, rep.TrustTier, rep.Status, rep.RegisteredAt, rep.RegionHint); err != nil {
			return fmt.Errorf("storing snapshot replica: %w", err)
		}
	}
	next := GenesisRoot
	if snap.HeadEvent != nil {
		next = ChainHash(snap.HeadEvent.Sig)
	}
	if err := r.saveProgress(ctx, tx, snap.SnapshotSeq, next, snap.GenesisHash, snap.SnapshotTsMs); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing snapshot: %w", err)
	}
	r.genesis = snap.GenesisHash
	r.chain = NewChain(r.seedKey, r.seedDID, snap.SnapshotSeq, next)
	// The Sink before the seq and readiness: a reader that sees either
	// sees the whole snapshot in the directory too.
	r.mirrorSnapshot(ctx, snap, old)
	r.appliedSeq.Store(snap.SnapshotSeq)
	r.metrics.appliedSq.Set(float64(snap.SnapshotSeq))
	r.ready.Store(true)
	return nil
}

// refreshLive hands the ephemeral state of a snapshot older than our head
// to the Sink (its node registrations are not newer than ours).
func (r *Replica) refreshLive(ctx context.Context, snap *Snapshot) error {
	live := make([]LiveNode, 0, len(snap.Nodes))
	for i := range snap.Nodes {
		if l := liveOfSnapshot(&snap.Nodes[i]); l.LastSeenMs > 0 {
			live = append(live, l)
		}
	}
	r.mirrorLive(ctx, live)
	return nil
}

// nodeIDs lists the nodes of the replicated state in tx.
func nodeIDs(ctx context.Context, tx *sql.Tx) (map[string]struct{}, error) {
	rows, err := tx.QueryContext(ctx, `SELECT node_id FROM fed_nodes`)
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	defer rows.Close()
	out := map[string]struct{}{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("listing nodes: %w", err)
		}
		out[id] = struct{}{}
	}
	return out, rows.Err()
}

func nullFloat(f *float64) sql.NullFloat64 {
	if f == nil {
		return sql.NullFloat64{}
	}
	return sql.NullFloat64{Float64: *f, Valid: true}
}

// saveProgress records the chain head in tx. asOfMs is the seed time at
// which our state was known current (now when we reached the head, else
// the last applied event's ts_ms); the replica's lag is measured from it.
func (r *Replica) saveProgress(ctx context.Context, tx *sql.Tx, seq int64, next, genesis string, asOfMs int64) error {
	ms := asOfMs
	if prev := r.lastConfirmed.Load(); prev > ms {
		ms = prev
	}
	r.lastConfirmed.Store(ms)
	return errors.Join(setMeta(ctx, tx, metaAppliedSeq, strconv.FormatInt(seq, 10)),
		setMeta(ctx, tx, metaNextPrevHash, next), setMeta(ctx, tx, metaGenesisHash, genesis),
		setMeta(ctx, tx, metaLastConfirmed, strconv.FormatInt(ms, 10)))
}
