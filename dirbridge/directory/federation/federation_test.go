package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitTopicPeers waits until the seed's gossip topic sees n subscribers:
// the precondition for push delivery, not part of the measured latency.
func waitTopicPeers(t *testing.T, s *seedEnv, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, "replicas subscribed to the seed topic", func() bool {
		return len(s.gn.ps.ListPeers(EventTopic(s.seed.DID()))) >= n
	})
}

// TestDIR_FED_01_08_SeedAndTwoReplicas_Gossip: a node registered at the seed
// is discoverable at both replicas within 1 s by gossip alone (polling is
// set to an hour); every discover response is signed (DIR-FED-20); a forged
// event pushed on the topic is rejected and reported; with the seed stopped
// the replicas keep serving discovery.
func TestDIR_FED_01_08_SeedAndTwoReplicas_Gossip(t *testing.T) {
	seed := newSeedEnv(t, true)
	seed.register(t, nodeID(0)) // before the replicas exist: reaches them by snapshot
	dir := t.TempDir()
	noPush := func(c *ReplicaDirectoryConfig) { c.Replica.NoPush = true } // gossip alone
	r1 := newReplicaEnv(t, seed, filepath.Join(dir, "r1"), true, noPush)
	r2 := newReplicaEnv(t, seed, filepath.Join(dir, "r2"), true, noPush)
	for _, r := range []*replicaEnv{r1, r2} {
		waitFor(t, 5*time.Second, "bootstrap", func() bool { return r.serves(t, nodeID(0)) })
	}
	waitTopicPeers(t, seed, 2)

	seed.register(t, nodeID(1))
	for i, r := range []*replicaEnv{r1, r2} {
		took := waitFor(t, time.Second, "gossiped node at replica", func() bool { return r.serves(t, nodeID(1)) })
		t.Logf("replica %d: discoverable after %v", i+1, took)
	}
	if got := counterValue(t, r1.r.metrics.applied.WithLabelValues("gossip")); got < 1 {
		t.Fatalf("replica 1 applied %v events by gossip, want ≥ 1", got)
	}

	// A forged event: well-formed, next seq, correct prev_hash, signer_did
	// of the seed, but signed with another key, published by a stranger.
	attacker := newGossipNode(t)
	attacker.connect(t, r1.gn)
	topic, err := attacker.ps.Join(EventTopic(seed.seed.DID()))
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Close()
	// The attacker publishes without subscribing (fanout to r1).
	waitFor(t, 5*time.Second, "attacker sees r1 in the topic", func() bool {
		return len(attacker.ps.ListPeers(EventTopic(seed.seed.DID()))) >= 1
	})
	head := r1.r.AppliedSeq()
	forged := Event{EventID: newUUID(), EventType: EventRegister, Seq: head + 1, TsMs: time.Now().UnixMilli(),
		Payload:  json.RawMessage(`{"capabilities":[{"intent":"` + testIntent + `"}],"endpoint":"https://evil.example","node_id":"evil","region":"eu-central"}`),
		PrevHash: ChainHash(lastSig(t, seed)), SignerDID: seed.seed.DID()}
	if err := Sign(newKey(t), &forged); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(forged)
	if err := topic.Publish(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "forged gossip rejected", func() bool {
		return counterValue(t, r1.r.metrics.rejected.WithLabelValues("signature")) >= 1
	})
	if r1.serves(t, "evil") || r1.r.AppliedSeq() != head {
		t.Fatal("replica applied a forged event")
	}

	// Seed gone: replicas keep answering from verified state.
	seed.stop()
	for _, r := range []*replicaEnv{r1, r2} {
		if !r.serves(t, nodeID(0)) || !r.serves(t, nodeID(1)) {
			t.Fatal("replica stopped serving discovery when the seed went away")
		}
	}
}

// lastSig is the signature of the seed's head event.
func lastSig(t *testing.T, s *seedEnv) string {
	t.Helper()
	evs, err := s.seed.el.rangeEvents(context.Background(), s.seed.HeadSeq()-1, 1, nil)
	if err != nil || len(evs) != 1 {
		t.Fatalf("reading head event: %v", err)
	}
	return evs[0].Sig
}

// TestDIR_FED_PollOnly_ConvergesWithinOneInterval: with gossip off, a
// registration reaches the replicas within one poll interval.
func TestDIR_FED_PollOnly_ConvergesWithinOneInterval(t *testing.T) {
	const interval = 300 * time.Millisecond
	seed := newSeedEnv(t, false)
	dir := t.TempDir()
	fast := func(c *ReplicaDirectoryConfig) { c.Replica.PollInterval = interval }
	r1 := newReplicaEnv(t, seed, filepath.Join(dir, "r1"), false, fast)
	r2 := newReplicaEnv(t, seed, filepath.Join(dir, "r2"), false, fast)
	for _, r := range []*replicaEnv{r1, r2} {
		waitFor(t, 5*time.Second, "bootstrap", func() bool { return r.r.ready.Load() })
	}
	seed.register(t, nodeID(7))
	for _, r := range []*replicaEnv{r1, r2} {
		// One interval, plus scheduling slack for a loaded CI machine.
		took := waitFor(t, interval+200*time.Millisecond, "polled node at replica", func() bool { return r.serves(t, nodeID(7)) })
		t.Logf("discoverable after %v (poll interval %v)", took, interval)
	}
}

// TestDIR_FED_02_RestartResumesFromSeq: a replica stopped mid-stream and
// restarted on the same database catches up from its persisted seq: no
// snapshot, and its first tail request starts at that seq, not at genesis.
func TestDIR_FED_02_RestartResumesFromSeq(t *testing.T) {
	seed := newSeedEnv(t, false)
	state := t.TempDir()
	fast := func(c *ReplicaDirectoryConfig) { c.Replica.PollInterval = 100 * time.Millisecond }
	r := newReplicaEnv(t, seed, state, false, fast)
	for i := range 5 {
		seed.register(t, nodeID(i))
	}
	waitFor(t, 5*time.Second, "first sync", func() bool { return r.r.AppliedSeq() == seed.seed.HeadSeq() })
	stoppedAt := r.r.AppliedSeq()
	r.stop()

	for i := 5; i < 10; i++ {
		seed.register(t, nodeID(i))
	}
	seed.resetRequests()
	r2 := newReplicaEnv(t, seed, state, false, fast, func(c *ReplicaDirectoryConfig) { c.Replica.Key = r.cfg.Replica.Key })
	waitFor(t, 5*time.Second, "catch-up after restart", func() bool { return r2.r.AppliedSeq() == seed.seed.HeadSeq() })
	if !r2.serves(t, nodeID(0)) || !r2.serves(t, nodeID(9)) {
		t.Fatal("restarted replica lacks nodes from before or after the restart")
	}
	checkResumedTail(t, seed.requests(), stoppedAt)
}

// checkResumedTail fails t unless a restarted replica's requests to its
// seed skip bootstrap (no snapshot, no re-registration) and its first tail
// request starts at stoppedAt, the seq it had applied before stopping.
func checkResumedTail(t *testing.T, requests []string, stoppedAt int64) {
	t.Helper()
	var first string
	for _, q := range requests {
		if strings.HasPrefix(q, "/v1/snapshot") || strings.HasPrefix(q, "/v1/replicas/register") {
			t.Fatalf("restart re-bootstrapped: %s", q)
		}
		if first == "" && strings.HasPrefix(q, "/v1/events") {
			first = q
		}
	}
	want := "since_seq=" + itoa(stoppedAt) + "&"
	if !strings.Contains(first, want) {
		t.Fatalf("first tail request after restart %q, want %q", first, want)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestDIR_FED_01_04_ForgedEventOverHTTP: a tampered event in the polled
// tail (payload edited after signing) is rejected with IICP-E013, counted,
// and nothing from it or after it is applied.
func TestDIR_FED_01_04_ForgedEventOverHTTP(t *testing.T) {
	seed := newSeedEnv(t, false)
	r := newReplicaEnv(t, seed, t.TempDir(), false,
		func(c *ReplicaDirectoryConfig) { c.Replica.PollInterval = 50 * time.Millisecond })
	waitFor(t, 5*time.Second, "bootstrap", func() bool { return r.r.ready.Load() })
	head := r.r.AppliedSeq()
	seed.tamper.Store(func(b []byte) []byte {
		return bytes.ReplaceAll(b, []byte(`"region":"eu-central"`), []byte(`"region":"evil-west"`))
	})
	seed.register(t, nodeID(1))
	waitFor(t, 5*time.Second, "tampered event rejected", func() bool {
		return counterValue(t, r.r.metrics.rejected.WithLabelValues("signature")) >= 1
	})
	if r.r.AppliedSeq() != head || r.serves(t, nodeID(1)) {
		t.Fatal("replica applied a tampered event")
	}
	// Once the seed serves honest bytes again, the replica resumes from the
	// last valid seq.
	seed.tamper.Store(func(b []byte) []byte { return b })
	waitFor(t, 5*time.Second, "recovery after tampering stops", func() bool { return r.serves(t, nodeID(1)) })
}
