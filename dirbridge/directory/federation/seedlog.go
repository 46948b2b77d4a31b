package federation

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshnode/meshnode/internal/jcs"
	"github.com/meshnode/meshnode/wire"
)

// The seed's own tables, in the same file as the materialised state so that
// an event and its effect commit in one transaction. fed_events refuses
// UPDATE: the log is append-only (DIR-FED-EVENTCHAIN-01); only pruning of
// the rolling window deletes (S.13 §5.3).
const logSchema = `
CREATE TABLE IF NOT EXISTS fed_events (
	seq INTEGER PRIMARY KEY,
	event_id TEXT NOT NULL UNIQUE,
	event_type TEXT NOT NULL,
	ts_ms INTEGER NOT NULL,
	payload BLOB NOT NULL,
	prev_hash TEXT NOT NULL,
	sig TEXT NOT NULL,
	signer_did TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fed_events_ts ON fed_events (ts_ms);
CREATE TRIGGER IF NOT EXISTS fed_events_append_only BEFORE UPDATE ON fed_events
BEGIN SELECT RAISE(ABORT, 'federated event log is append-only'); END;
CREATE TABLE IF NOT EXISTS fed_replica_auth (
	replica_id TEXT PRIMARY KEY,
	did TEXT NOT NULL UNIQUE,
	endpoint TEXT NOT NULL,
	trust_tier TEXT NOT NULL,
	status TEXT NOT NULL,
	registered_at TEXT NOT NULL,
	token_jti TEXT NOT NULL DEFAULT '',
	expires_at_ms INTEGER NOT NULL DEFAULT 0
);`

// Meta keys of the seed log.
const (
	metaHeadSeq       = "head_seq"
	metaHeadSig       = "head_sig"
	metaGenesisHash   = "genesis_hash"
	metaPrunedThrough = "pruned_through"
)

// Change is one federated state change to append.
type Change struct {
	Type    EventType
	Payload any // JSON-encodable; canonicalised before signing
}

// ErrNotFederated refuses to log an event type outside the closed set
// (DIR-FED-16): heartbeats and score updates must stay ephemeral.
var ErrNotFederated = errors.New("event type is not federated")

// eventLog is the seed's signed, hash-chained, append-only log.
type eventLog struct {
	db  *sql.DB
	key ed25519.PrivateKey
	did string
	now func() time.Time

	mu            sync.Mutex // serialises appends: seq and prev_hash come from the head
	headSeq       int64
	headSig       string
	genesisHash   string
	prunedThrough int64
}

func openEventLog(ctx context.Context, path string, key ed25519.PrivateKey, did string, now func() time.Time) (*eventLog, error) {
	db, err := openDB(ctx, path, logSchema)
	if err != nil {
		return nil, err
	}
	l := &eventLog{db: db, key: key, did: did, now: now, genesisHash: GenesisRoot}
	if err := l.loadHead(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return l, nil
}

func (l *eventLog) loadHead(ctx context.Context) error {
	vals := map[string]string{}
	for _, k := range []string{metaHeadSeq, metaHeadSig, metaGenesisHash, metaPrunedThrough} {
		v, ok, err := getMeta(ctx, l.db, k)
		if err != nil {
			return err
		}
		if ok {
			vals[k] = v
		}
	}
	if v, ok := vals[metaHeadSeq]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("corrupt head seq: %w", err)
		}
		l.headSeq = n
	}
	l.headSig = vals[metaHeadSig]
	if v, ok := vals[metaGenesisHash]; ok {
		l.genesisHash = v
	}
	if v, ok := vals[metaPrunedThrough]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("corrupt pruned_through: %w", err)
		}
		l.prunedThrough = n
	}
	return nil
}

func (l *eventLog) close() error { return l.db.Close() }

// head returns the last seq, the genesis hash and the pruned horizon.
func (l *eventLog) head() (seq int64, genesis string, pruned int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.headSeq, l.genesisHash, l.prunedThrough
}

// append runs build inside one transaction, then signs and stores the
// changes it returns as consecutive events and applies them to the state
// tables. build may write other rows (replica credentials) whose change must
// be atomic with its event. Nothing is visible unless all of it commits.
func (l *eventLog) append(ctx context.Context, build func(*sql.Tx) ([]Change, error)) ([]Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("beginning append: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	changes, err := build(tx)
	if err != nil {
		return nil, err
	}
	seq, sig, genesis := l.headSeq, l.headSig, l.genesisHash
	out := make([]Event, 0, len(changes))
	exec := newStmtCache(tx)
	defer exec.close()
	for _, c := range changes {
		ev, err := l.newEvent(c, seq, sig)
		if err != nil {
			return nil, err
		}
		if _, err := exec.ExecContext(ctx, `INSERT INTO fed_events (seq, event_id, event_type, ts_ms, payload, prev_hash, sig, signer_did)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, ev.Seq, ev.EventID, string(ev.EventType), ev.TsMs,
			[]byte(ev.Payload), ev.PrevHash, ev.Sig, ev.SignerDID); err != nil {
			return nil, fmt.Errorf("inserting event: %w", err)
		}
		if _, err := applyEvent(ctx, exec, &ev); err != nil {
			return nil, err
		}
		if seq == 0 || genesis == GenesisRoot {
			genesis = ChainHash(ev.Sig)
		}
		seq, sig = ev.Seq, ev.Sig
		out = append(out, ev)
	}
	if err := errors.Join(setMeta(ctx, tx, metaHeadSeq, strconv.FormatInt(seq, 10)),
		setMeta(ctx, tx, metaHeadSig, sig), setMeta(ctx, tx, metaGenesisHash, genesis)); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("committing append: %w", err)
	}
	l.headSeq, l.headSig, l.genesisHash = seq, sig, genesis
	return out, nil
}

func (l *eventLog) newEvent(c Change, prevSeq int64, prevSig string) (Event, error) {
	if !c.Type.Federated() {
		return Event{}, fmt.Errorf("%w: %q", ErrNotFederated, c.Type)
	}
	canon, err := canonicalJSON(c.Payload)
	if err != nil {
		return Event{}, fmt.Errorf("%s payload: %w", c.Type, err)
	}
	if len(canon) > MaxPayloadBytes || canon[0] != '{' {
		return Event{}, fmt.Errorf("%s payload: not an object of at most %d bytes", c.Type, MaxPayloadBytes)
	}
	prev := GenesisRoot
	if prevSeq > 0 {
		prev = ChainHash(prevSig)
	}
	ev := Event{EventID: newUUID(), EventType: c.Type, Seq: prevSeq + 1, TsMs: l.now().UnixMilli(),
		Payload: canon, PrevHash: prev, SignerDID: l.did}
	if err := Sign(l.key, &ev); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// canonicalJSON is the RFC 8785 form of v: the bytes an event signs and
// fed_nodes.record stores.
func canonicalJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	canon, err := jcs.Canonicalize(raw)
	if err != nil {
		return nil, fmt.Errorf("canonicalizing: %w", err)
	}
	return canon, nil
}

// nodeRecords returns every node's stored REGISTER payload by node_id.
func (l *eventLog) nodeRecords(ctx context.Context) (map[string][]byte, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT node_id, record FROM fed_nodes`)
	if err != nil {
		return nil, fmt.Errorf("reading node records: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id string
		var rec []byte
		if err := rows.Scan(&id, &rec); err != nil {
			return nil, fmt.Errorf("scanning node record: %w", err)
		}
		out[id] = rec
	}
	return out, rows.Err()
}

// errPruned: the requested range starts before the rolling window.
var errPruned = errors.New("range pruned")

// rangeEvents returns up to limit events with seq > since, optionally only
// of the given types.
func (l *eventLog) rangeEvents(ctx context.Context, since int64, limit int, types []EventType) ([]Event, error) {
	l.mu.Lock()
	pruned := l.prunedThrough
	l.mu.Unlock()
	if since < pruned {
		return nil, errPruned
	}
	q := `SELECT seq, event_id, event_type, ts_ms, payload, prev_hash, sig, signer_did FROM fed_events WHERE seq > ?`
	args := []any{since}
	if len(types) > 0 {
		q += ` AND event_type IN (?` + strings.Repeat(",?", len(types)-1) + `)`
		for _, t := range types {
			args = append(args, string(t))
		}
	}
	q += ` ORDER BY seq LIMIT ?`
	args = append(args, limit)
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("querying events: %w", err)
	}
	defer rows.Close()
	out := make([]Event, 0, min(limit, 128))
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

type scanner interface{ Scan(dest ...any) error }

func scanEvent(r scanner) (Event, error) {
	var ev Event
	var typ string
	var payload []byte
	if err := r.Scan(&ev.Seq, &ev.EventID, &typ, &ev.TsMs, &payload, &ev.PrevHash, &ev.Sig, &ev.SignerDID); err != nil {
		return Event{}, fmt.Errorf("scanning event: %w", err)
	}
	ev.EventType, ev.Payload = EventType(typ), payload
	return ev, nil
}

// latestTs is ts_ms of the head event (0 when the log is empty).
func (l *eventLog) latestTs(ctx context.Context) (int64, error) {
	var ts sql.NullInt64
	err := l.db.QueryRowContext(ctx, `SELECT ts_ms FROM fed_events ORDER BY seq DESC LIMIT 1`).Scan(&ts)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading head event: %w", err)
	}
	return ts.Int64, nil
}

// prune deletes events older than cutoff, always keeping the head event so
// the chain can be continued from a snapshot (S.13 §5.3 rolling window).
func (l *eventLog) prune(ctx context.Context, cutoff time.Time) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("beginning prune: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	var maxSeq sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(seq) FROM fed_events WHERE ts_ms < ? AND seq < ?`,
		cutoff.UnixMilli(), l.headSeq).Scan(&maxSeq); err != nil {
		return 0, fmt.Errorf("finding prune horizon: %w", err)
	}
	if !maxSeq.Valid || maxSeq.Int64 <= l.prunedThrough {
		return 0, nil
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM fed_events WHERE seq <= ?`, maxSeq.Int64)
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	if err := setMeta(ctx, tx, metaPrunedThrough, strconv.FormatInt(maxSeq.Int64, 10)); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("committing prune: %w", err)
	}
	l.prunedThrough = maxSeq.Int64
	n, _ := res.RowsAffected()
	return n, nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return wire.UUIDv4(b)
}
