package directory

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestFlushWritesEveryDirtyStateInChunks: a write-behind batch larger than
// flushChunk is written in several transactions and every state reaches
// the database (a restart reloads what heartbeats set).
func TestFlushWritesEveryDirtyStateInChunks(t *testing.T) {
	ctx := context.Background()
	st, err := openStore(ctx, filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	const n = 2*flushChunk + 7
	t0 := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		rec := &NodeRecord{NodeID: id, Endpoint: "https://n.example", Region: "eu"}
		state := &nodeState{LastSeen: t0, Available: true}
		recRaw, stRaw, _ := encodeNode(rec, state)
		if _, err := tx.ExecContext(ctx, upsertNodeKeepCredential, id, recRaw, stRaw); err != nil {
			t.Fatal(err)
		}
		st.idx.put(rec, state, Credential{}, false)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	st.idx.forAll(func(e *entry) {
		next := *e.state.Load()
		next.LastSeen = t0.Add(time.Minute)
		e.state.Store(&next)
		st.markDirty(e.rec.NodeID, &addrEvent{nodeID: e.rec.NodeID, ip: "192.0.2.1", kind: "heartbeat", at: t0})
	})
	if err := st.flush(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := st.db.QueryContext(ctx, `SELECT state FROM nodes`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	updated := 0
	for rows.Next() {
		var raw []byte
		var ns nodeState
		if err := rows.Scan(&raw); err != nil || json.Unmarshal(raw, &ns) != nil {
			t.Fatal("undecodable state")
		}
		if ns.LastSeen.Equal(t0.Add(time.Minute)) {
			updated++
		}
	}
	var hist int
	if err := st.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM address_history`).Scan(&hist); err != nil {
		t.Fatal(err)
	}
	if updated != n || hist != n || len(st.dirty) != 0 {
		t.Fatalf("%d of %d states flushed, %d address rows, %d still dirty", updated, n, hist, len(st.dirty))
	}
}

// TestFlushTickPacesBurstsOldestFirst: a paced tick writes at most
// max(flushTickRows, an eighth of the queue), the oldest states first, and
// leaves the rest queued for the next ticks; a full flush writes all.
func TestFlushTickPacesBurstsOldestFirst(t *testing.T) {
	ctx := context.Background()
	st, err := openStore(ctx, filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	const n = 3 * flushTickRows
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		rec := &NodeRecord{NodeID: ids[i], Endpoint: "https://n.example", Region: "eu"}
		state := &nodeState{Available: true}
		recRaw, stRaw, _ := encodeNode(rec, state)
		if _, err := tx.ExecContext(ctx, upsertNodeKeepCredential, ids[i], recRaw, stRaw); err != nil {
			t.Fatal(err)
		}
		st.idx.put(rec, state, Credential{}, false)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		st.markDirty(id, nil)
	}
	st.markDirty(ids[0], nil) // already queued: not queued twice
	if err := st.flushTick(ctx); err != nil {
		t.Fatal(err)
	}
	if len(st.dirty) != n-flushTickRows || st.hasDirty(ids[flushTickRows-1]) || !st.hasDirty(ids[flushTickRows]) {
		t.Fatalf("after one tick %d still dirty; want the oldest %d written", len(st.dirty), flushTickRows)
	}
	if err := st.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(st.dirty) != 0 || len(st.queue) != 0 {
		t.Fatalf("after a full flush: %d dirty, %d queued", len(st.dirty), len(st.queue))
	}
}

// TestFlushSkipsDeregisteredQueuedNode: a node deregistered while queued is
// not written (its row is gone) and does not count against a tick.
func TestFlushSkipsDeregisteredQueuedNode(t *testing.T) {
	st := &store{dirty: map[string]struct{}{}}
	st.markDirty("a", nil)
	st.markDirty("b", nil)
	delete(st.dirty, "a") // what published does on DEREGISTER
	st.markDirty("c", nil)
	ids, _ := st.takeDirty(2)
	if len(ids) != 2 || ids[0] != "b" || ids[1] != "c" || len(st.queue) != 0 {
		t.Fatalf("took %v, queue left %v; want [b c] and nothing", ids, st.queue)
	}
}
