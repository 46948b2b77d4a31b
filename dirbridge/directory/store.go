package directory

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// schema is applied at open; every statement is idempotent.
const schema = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
	node_id     TEXT PRIMARY KEY,
	record      BLOB NOT NULL,
	state       BLOB NOT NULL,
	token_hash  BLOB,
	token_index TEXT UNIQUE
);
CREATE TABLE IF NOT EXISTS address_history (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	node_id     TEXT NOT NULL,
	ip          TEXT NOT NULL,
	kind        TEXT NOT NULL,
	observed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS address_history_node ON address_history(node_id, observed_at);
CREATE INDEX IF NOT EXISTS address_history_age ON address_history(observed_at);
`

// addrEvent is one immutable address-history row (DIR-ADDR-06).
type addrEvent struct {
	nodeID, ip, kind string
	at               time.Time
}

// store owns the SQLite database and the index. apply is the single write
// path for registrations and deregistrations; heartbeat state is written
// behind in batches by flush (it is soft state: losing the last second of
// last_seen on a crash is harmless, losing a registration is not).
type store struct {
	db       *sql.DB
	idx      *index
	onChange func(ChangeEvent)

	mu sync.Mutex // guards dirty, queue and pendingAddr
	// dirty holds the nodes whose state awaits the write-behind; queue
	// lists them oldest first (an id no longer in dirty is skipped: it was
	// written or deregistered since).
	dirty       map[string]struct{}
	queue       []string
	pendingAddr []addrEvent
}

// storeSynchronous is the SQLite synchronous level: FULL, so a commit is
// on disk before REGISTER is acknowledged (NORMAL in WAL mode may lose the
// last commits on power loss). A variable only so the benchmark can
// measure what FULL costs against NORMAL.
var storeSynchronous = "FULL"

// openStore opens (creating, mode 0600) the database with WAL,
// synchronous=FULL, a busy timeout and one connection: SQLite allows one
// writer, and every read is served from memory.
func openStore(ctx context.Context, path string) (*store, error) {
	if err := SecureDBFile(path); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "synchronous("+storeSynchronous+")")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema+continuitySchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("applying schema: %w", err)
	}
	return &store{db: db, idx: newIndex(), dirty: make(map[string]struct{})}, nil
}

func (st *store) close() error { return st.db.Close() }

// load rebuilds the index from the database (restart loses nothing).
func (st *store) load(ctx context.Context) (int, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT record, state, token_hash, token_index FROM nodes`)
	if err != nil {
		return 0, fmt.Errorf("loading nodes: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var recRaw, stRaw []byte
		var cred Credential
		var credIndex sql.NullString
		if err := rows.Scan(&recRaw, &stRaw, &cred.Hash, &credIndex); err != nil {
			return n, fmt.Errorf("scanning node: %w", err)
		}
		cred.Index = credIndex.String
		rec, ns := new(NodeRecord), new(nodeState)
		if err := json.Unmarshal(recRaw, rec); err != nil {
			return n, fmt.Errorf("decoding node record: %w", err)
		}
		if err := json.Unmarshal(stRaw, ns); err != nil {
			return n, fmt.Errorf("decoding node state: %w", err)
		}
		st.idx.strs.internRecord(rec)
		st.idx.put(rec, ns, cred, false)
		n++
	}
	return n, rows.Err()
}

// secret returns the meta value under key, creating it with gen when absent.
func (st *store) secret(ctx context.Context, key string, gen func() ([]byte, error)) ([]byte, error) {
	var v []byte
	err := st.db.QueryRowContext(ctx, `SELECT v FROM meta WHERE k = ?`, key).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	if v, err = gen(); err != nil {
		return nil, fmt.Errorf("generating %s: %w", key, err)
	}
	if _, err := st.db.ExecContext(ctx, `INSERT INTO meta (k, v) VALUES (?, ?)`, key, v); err != nil {
		return nil, fmt.Errorf("storing %s: %w", key, err)
	}
	return v, nil
}

func randomBytes(n int) func() ([]byte, error) {
	return func() ([]byte, error) {
		b := make([]byte, n)
		_, err := rand.Read(b)
		return b, err
	}
}

// apply is the choke point every registration and deregistration passes:
// persist in one transaction, then update the index, then call the hook.
// state is the heartbeat state to store with a REGISTER.
func (st *store) apply(ctx context.Context, ev ChangeEvent, state *nodeState) error {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	switch ev.Kind {
	case ChangeRegister:
		if err := st.writeRegister(ctx, tx, ev, state); err != nil {
			return err
		}
	case ChangeDeregister:
		if err := st.retireTx(ctx, tx, ev.NodeID, ev.At); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM nodes WHERE node_id = ?`, ev.NodeID); err != nil {
			return fmt.Errorf("deleting node: %w", err)
		}
	default:
		return fmt.Errorf("applying change: unknown kind %q", ev.Kind)
	}
	if ev.ObservedIP != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO address_history (node_id, ip, kind, observed_at) VALUES (?, ?, ?, ?)`,
			ev.NodeID, ev.ObservedIP, kindName(ev.Kind), ev.At.UnixMilli()); err != nil {
			return fmt.Errorf("recording address: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing change: %w", err)
	}
	cred := Credential{}
	if ev.Credential != nil {
		cred = *ev.Credential
	}
	// A credential we just issued is verified by construction.
	st.published(ev, state, cred, ev.Credential != nil)
	return nil
}

// published brings the in-memory index in line with a committed change and
// tells the change hook (federation's seed log): a REGISTER files the node
// with state and cred, a DEREGISTER drops it and its pending heartbeat.
func (st *store) published(ev ChangeEvent, state *nodeState, cred Credential, verified bool) {
	if ev.Kind == ChangeRegister {
		st.idx.strs.internRecord(ev.Record) // a new record: no reader has it yet
		st.idx.put(ev.Record, state, cred, verified)
	} else {
		st.idx.remove(ev.NodeID)
		st.mu.Lock()
		delete(st.dirty, ev.NodeID)
		st.mu.Unlock()
	}
	if st.onChange != nil {
		st.onChange(ev)
	}
}

// upsertNodeKeepCredential writes a node's record and state and keeps any
// credential columns the row has (a replicated change carries none).
const upsertNodeKeepCredential = `INSERT INTO nodes (node_id, record, state) VALUES (?, ?, ?)
	ON CONFLICT(node_id) DO UPDATE SET record = excluded.record, state = excluded.state`

// encodeNode is the stored JSON of a node's record and state.
func encodeNode(rec *NodeRecord, state *nodeState) (recRaw, stRaw []byte, err error) {
	if recRaw, err = json.Marshal(rec); err != nil {
		return nil, nil, fmt.Errorf("encoding record: %w", err)
	}
	if stRaw, err = json.Marshal(state); err != nil {
		return nil, nil, fmt.Errorf("encoding state: %w", err)
	}
	return recRaw, stRaw, nil
}

func (st *store) writeRegister(ctx context.Context, tx *sql.Tx, ev ChangeEvent, state *nodeState) error {
	if ev.Record == nil || state == nil {
		return errors.New("applying register: record and state required")
	}
	recRaw, stRaw, err := encodeNode(ev.Record, state)
	if err != nil {
		return err
	}
	if ev.Credential == nil {
		// A replica applying a remote event has no credential: keep any we hold.
		_, err = tx.ExecContext(ctx, upsertNodeKeepCredential, ev.NodeID, recRaw, stRaw)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO nodes (node_id, record, state, token_hash, token_index) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT(node_id) DO UPDATE SET record = excluded.record, state = excluded.state,
			token_hash = excluded.token_hash, token_index = excluded.token_index`,
			ev.NodeID, recRaw, stRaw, ev.Credential.Hash, ev.Credential.Index)
	}
	if err != nil {
		return fmt.Errorf("writing node: %w", err)
	}
	return nil
}

func kindName(k ChangeKind) string {
	if k == ChangeRegister {
		return "register"
	}
	return "deregister"
}

// markDirty queues a node's heartbeat state (and an address change) for the
// next flush.
func (st *store) markDirty(id string, addr *addrEvent) {
	st.mu.Lock()
	if _, ok := st.dirty[id]; !ok {
		st.dirty[id] = struct{}{}
		st.queue = append(st.queue, id)
	}
	if addr != nil {
		st.pendingAddr = append(st.pendingAddr, *addr)
	}
	st.mu.Unlock()
}

// flushChunk is how many heartbeat states one write-behind transaction
// writes. The store has one connection: a REGISTER waiting behind a flush
// waits for one chunk, not for every heartbeat of the last interval (at
// 100k nodes that is ~3,300 rows a second).
const flushChunk = 512

// Write-behind pacing: a tick writes every queued state up to
// flushTickRows, and beyond that an eighth of the queue (oldest first), so
// a burst — a replica applying a 40k-row liveness digest, a fleet coming
// back at once — is written over a few ticks instead of taking a core for
// a second at every digest. Steady heartbeat traffic (3.3k/s at 100k
// nodes) is written each tick.
const (
	flushTickRows = 8 * flushChunk
	flushSpread   = 8
)

// flush writes every queued heartbeat state and pending address event
// (Close, tests).
func (st *store) flush(ctx context.Context) error { return st.flushSome(ctx, 0) }

// flushTick is the loop's paced flush.
func (st *store) flushTick(ctx context.Context) error {
	st.mu.Lock()
	n := max(flushTickRows, (len(st.queue)+flushSpread-1)/flushSpread)
	st.mu.Unlock()
	return st.flushSome(ctx, n)
}

// flushSome writes the oldest limit queued states (0: all) and every
// pending address event, in transactions of at most flushChunk states. A
// failed chunk and everything after it is re-queued.
func (st *store) flushSome(ctx context.Context, limit int) error {
	ids, addrs := st.takeDirty(limit)
	for len(ids) > 0 || len(addrs) > 0 {
		n := min(flushChunk, len(ids))
		if err := st.writeBatch(ctx, ids[:n], addrs); err != nil {
			st.mu.Lock()
			requeue := ids[:0:0]
			for _, id := range ids {
				if _, ok := st.dirty[id]; !ok {
					st.dirty[id] = struct{}{}
					requeue = append(requeue, id)
				}
			}
			st.queue = append(requeue, st.queue...)
			st.pendingAddr = append(addrs, st.pendingAddr...)
			st.mu.Unlock()
			return err
		}
		ids, addrs = ids[n:], nil
	}
	return nil
}

// takeDirty dequeues up to limit (0: all) dirty ids, oldest first, and the
// pending address events.
func (st *store) takeDirty(limit int) ([]string, []addrEvent) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if limit <= 0 {
		limit = len(st.queue)
	}
	ids := make([]string, 0, min(limit, len(st.dirty)))
	i := 0
	for ; i < len(st.queue) && len(ids) < limit; i++ {
		if id := st.queue[i]; st.hasDirty(id) {
			delete(st.dirty, id)
			ids = append(ids, id)
		}
	}
	st.queue = st.queue[i:]
	if len(st.queue) == 0 {
		st.queue = nil // let a burst's backing array go
	}
	addrs := st.pendingAddr
	st.pendingAddr = nil
	return ids, addrs
}

func (st *store) hasDirty(id string) bool {
	_, ok := st.dirty[id]
	return ok
}

func (st *store) writeBatch(ctx context.Context, dirty []string, addrs []addrEvent) error {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning flush: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	upd, err := tx.PrepareContext(ctx, `UPDATE nodes SET state = ? WHERE node_id = ?`)
	if err != nil {
		return fmt.Errorf("preparing flush: %w", err)
	}
	defer upd.Close()
	for _, id := range dirty {
		e := st.idx.get(id)
		if e == nil {
			continue // deregistered meanwhile
		}
		raw, err := json.Marshal(e.state.Load())
		if err != nil {
			return fmt.Errorf("encoding state: %w", err)
		}
		if _, err := upd.ExecContext(ctx, raw, id); err != nil {
			return fmt.Errorf("flushing state: %w", err)
		}
	}
	for _, a := range addrs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO address_history (node_id, ip, kind, observed_at) VALUES (?, ?, ?, ?)`,
			a.nodeID, a.ip, a.kind, a.at.UnixMilli()); err != nil {
			return fmt.Errorf("flushing address history: %w", err)
		}
	}
	return tx.Commit()
}

// pruneAddressHistory drops rows older than the retention (never below 30 days).
func (st *store) pruneAddressHistory(ctx context.Context, before time.Time) (int64, error) {
	res, err := st.db.ExecContext(ctx, `DELETE FROM address_history WHERE observed_at < ?`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("pruning address history: %w", err)
	}
	return res.RowsAffected()
}

// addressHistory returns a node's history, newest first (operator-internal
// only: DIR-ADDR-07 forbids serving it to anyone but the owner).
func (st *store) addressHistory(ctx context.Context, nodeID string, limit int) ([]addrEvent, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT ip, kind, observed_at FROM address_history
		WHERE node_id = ? ORDER BY observed_at DESC, id DESC LIMIT ?`, nodeID, limit)
	if err != nil {
		return nil, fmt.Errorf("reading address history: %w", err)
	}
	defer rows.Close()
	var out []addrEvent
	for rows.Next() {
		var a addrEvent
		var ms int64
		if err := rows.Scan(&a.ip, &a.kind, &ms); err != nil {
			return nil, fmt.Errorf("scanning address history: %w", err)
		}
		a.nodeID, a.at = nodeID, time.UnixMilli(ms)
		out = append(out, a)
	}
	return out, rows.Err()
}
