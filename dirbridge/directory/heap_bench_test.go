package directory

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

// BenchmarkHeapPerNode measures what one registered, heartbeating node
// costs the directory's live heap: b.N nodes in the bench shape (one
// capability, 50 intents) filed through store.apply and one heartbeat
// each through applyHeartbeat. B/node and objects/node are the figures a
// 100k-node directory multiplies (pointers are what the GC marks).
//
//	go test -run '^$' -bench HeapPerNode -benchtime 100000x ./dirbridge/directory/
func BenchmarkHeapPerNode(b *testing.B) {
	s, err := New(Config{Listen: "127.0.0.1:0", StateDir: b.TempDir(), Dev: true, BcryptCost: 4},
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var intents []string
	for i := range 50 {
		intents = append(intents, fmt.Sprintf("urn:iicp:intent:bench:task%02d:v1", i))
	}
	ms0 := heapNow()
	now := time.Now()
	ids := make([]string, b.N)
	for i := range b.N {
		_, cred, err := s.tokens.issue()
		if err != nil {
			b.Fatal(err)
		}
		id := newUUID()
		// Decoded from JSON and built as REGISTER does: each string its own copy.
		body := fmt.Sprintf(`{"node_id":%q,"endpoint":"http://127.0.0.1:40000/n%d","region":%q,`+
			`"capabilities":[{"intent":%q,"models":["m"]}],"limits":{"max_concurrent":%d}}`,
			id, i, []string{"eu-central", "us-west", "ap-south"}[i%3], intents[i%len(intents)], 1+i%16)
		var rb registerBody
		if err := json.Unmarshal([]byte(body), &rb); err != nil {
			b.Fatal(err)
		}
		rec, st := buildRecord(&rb, nil, now, "127.0.0.1")
		if err := s.store.apply(context.Background(), ChangeEvent{Kind: ChangeRegister, NodeID: id, Record: rec, Credential: &cred, At: now}, st); err != nil {
			b.Fatal(err)
		}
		ids[i] = id
	}
	load, jobs := 0.5, 1
	for _, id := range ids {
		s.applyHeartbeat(s.store.idx.get(id), &heartbeatBody{NodeID: id, Load: &load, ActiveJobs: &jobs}, now, "127.0.0.1")
	}
	if err := s.store.flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	ms1 := heapNow()
	b.ReportMetric(float64(ms1.HeapAlloc-ms0.HeapAlloc)/float64(b.N), "B/node")
	b.ReportMetric(float64(ms1.HeapObjects-ms0.HeapObjects)/float64(b.N), "objects/node")
	runtime.KeepAlive(ids)
}

func heapNow() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}
