package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/wire"
)

// TestDIR_FED_01_20_SeedDirectoryToReplicaDirectories: a node registers at
// the seed's real POST /v1/register and is discoverable through the real
// discover route of both replica directories within 1 s by gossip (polling
// off), with the seed's score and views, in signed responses (DIR-FED-20).
// The log carries no token and no observed address; the seed routes answer
// under /v1 and /api/v1; a deregistration propagates; with the seed
// stopped the replicas keep serving, until they are more than 5 minutes
// behind (DIR-FED-08).
func TestDIR_FED_01_20_SeedDirectoryToReplicaDirectories(t *testing.T) {
	seed := newSeedDir(t, seedDirOpts{gossip: true})
	clock := &offsetClock{}
	r1 := newReplicaDir(t, seed, replicaDirOpts{gossip: true, now: clock.Now})
	r2 := newReplicaDir(t, seed, replicaDirOpts{gossip: true})
	for _, r := range []*replicaDirEnv{r1, r2} {
		waitFor(t, 10*time.Second, "replica bootstrap", func() bool { code, _ := r.discover(t); return code == http.StatusOK })
	}
	waitTopic(t, seed, 2)

	node := healthSrv(t)
	a := newUUID()
	token := registerAt(t, http.DefaultClient, seed.url, a, node)
	for i, r := range []*replicaDirEnv{r1, r2} {
		took := waitFor(t, time.Second, "registered node at replica", func() bool { return r.serves(t, a) })
		t.Logf("replica %d: discoverable after %v", i+1, took)
	}
	// Same scoring and view as the seed (last_seen is the event's time).
	_, atSeed := discoverAt(t, seed.url, nil)
	_, atRep := r1.discover(t)
	sn, rn := atSeed[a], atRep[a]
	delete(sn, "last_seen")
	delete(rn, "last_seen")
	sj, _ := json.Marshal(sn)
	rj, _ := json.Marshal(rn)
	if !bytes.Equal(sj, rj) {
		t.Fatalf("replica view differs from the seed's:\nseed    %s\nreplica %s", sj, rj)
	}

	// The log: REGISTER present, no token, no observed address; /api twin.
	code, evs := getBody(t, seed.url+"/v1/events?since_seq=0")
	if code != http.StatusOK || !strings.Contains(string(evs), a) {
		t.Fatalf("seed events: %d %s", code, evs)
	}
	if containsAny(evs, token, "observed_source_ip", "token_hash", "node_token") {
		t.Fatal("the federated log carries a credential or an observed address")
	}
	if code, api := getBody(t, seed.url+"/api/v1/events?since_seq=0"); code != http.StatusOK || !strings.Contains(string(api), a) {
		t.Fatalf("/api/v1/events: %d", code)
	}
	if code, did := getBody(t, seed.url+"/.well-known/did.json"); code != http.StatusOK || !strings.Contains(string(did), seed.sd.Seed().DID()) {
		t.Fatalf("seed DID document: %d", code)
	}

	// Deregistration at the seed propagates.
	if code := call(t, http.DefaultClient, http.MethodDelete, seed.url+"/v1/register", token, nil); code != http.StatusOK {
		t.Fatalf("deregister: %d", code)
	}
	for _, r := range []*replicaDirEnv{r1, r2} {
		waitFor(t, time.Second, "deregistration at replica", func() bool { return !r.serves(t, a) })
	}

	// Seed gone: the replicas keep answering from verified state.
	b := newUUID()
	registerAt(t, http.DefaultClient, seed.url, b, node)
	for _, r := range []*replicaDirEnv{r1, r2} {
		waitFor(t, time.Second, "second node at replica", func() bool { return r.serves(t, b) })
	}
	seed.stop()
	for _, r := range []*replicaDirEnv{r1, r2} {
		if !r.serves(t, b) {
			t.Fatal("replica stopped serving discovery when the seed went away")
		}
	}
	// More than MaxLag behind: 503 with Retry-After, never stale nodes.
	clock.Add(6 * time.Minute)
	resp, err := http.Get(r1.url + "/v1/discover?intent=" + testIntent)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("lagging replica answered %d (Retry-After %q), want 503", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestDIR_FED_PollOnly_ReplicaDirectory: with gossip off, a registration at
// the seed reaches both replica directories within one poll interval.
func TestDIR_FED_PollOnly_ReplicaDirectory(t *testing.T) {
	const interval = 300 * time.Millisecond
	seed := newSeedDir(t, seedDirOpts{})
	r1 := newReplicaDir(t, seed, replicaDirOpts{poll: interval})
	r2 := newReplicaDir(t, seed, replicaDirOpts{poll: interval})
	for _, r := range []*replicaDirEnv{r1, r2} {
		waitFor(t, 10*time.Second, "replica bootstrap", func() bool { code, _ := r.discover(t); return code == http.StatusOK })
	}
	a := newUUID()
	registerAt(t, http.DefaultClient, seed.url, a, healthSrv(t))
	for _, r := range []*replicaDirEnv{r1, r2} {
		took := waitFor(t, interval+300*time.Millisecond, "polled node at replica", func() bool { return r.serves(t, a) })
		t.Logf("discoverable after %v (poll interval %v)", took, interval)
	}
}

// TestDIR_FED_02_ReplicaDirectoryRestartResumes: a replica directory
// stopped mid-stream and restarted on its state catches up from its
// persisted seq — no snapshot, no re-registration, first tail request at
// that seq — and serves nodes from before and after the restart.
func TestDIR_FED_02_ReplicaDirectoryRestartResumes(t *testing.T) {
	seed := newSeedDir(t, seedDirOpts{})
	state, key := t.TempDir(), newKey(t)
	opts := replicaDirOpts{stateDir: state, key: key, poll: 100 * time.Millisecond}
	r := newReplicaDir(t, seed, opts)
	node := healthSrv(t)
	var ids []string
	for range 3 {
		ids = append(ids, newUUID())
		registerAt(t, http.DefaultClient, seed.url, ids[len(ids)-1], node)
	}
	waitFor(t, 10*time.Second, "first sync", func() bool { return r.rd.Replica().AppliedSeq() == seed.sd.Seed().HeadSeq() })
	stoppedAt := r.rd.Replica().AppliedSeq()
	r.stop()
	for range 3 {
		ids = append(ids, newUUID())
		registerAt(t, http.DefaultClient, seed.url, ids[len(ids)-1], node)
	}
	seed.resetRequests()
	r2 := newReplicaDir(t, seed, opts)
	waitFor(t, 10*time.Second, "catch-up after restart", func() bool {
		return r2.rd.Replica().AppliedSeq() == seed.sd.Seed().HeadSeq()
	})
	for _, id := range ids {
		if !r2.serves(t, id) {
			t.Fatalf("restarted replica does not serve %s", id)
		}
	}
	checkResumedTail(t, seed.requests(), stoppedAt)
}

// TestDIR_FED_01_04_ForgedEventNeverServed: a tampered event in the tail
// is rejected (IICP-E013, counted); the replica directory neither applies
// nor serves it, and resumes from the last valid seq once the seed serves
// honest bytes.
func TestDIR_FED_01_04_ForgedEventNeverServed(t *testing.T) {
	seed := newSeedDir(t, seedDirOpts{})
	r := newReplicaDir(t, seed, replicaDirOpts{poll: 50 * time.Millisecond})
	waitFor(t, 10*time.Second, "bootstrap", func() bool { code, _ := r.discover(t); return code == http.StatusOK })
	head := r.rd.Replica().AppliedSeq()
	seed.tamper.Store(func(b []byte) []byte {
		return bytes.ReplaceAll(b, []byte(`"region":"eu-central"`), []byte(`"region":"evil-west"`))
	})
	a := newUUID()
	registerAt(t, http.DefaultClient, seed.url, a, healthSrv(t))
	waitFor(t, 5*time.Second, "tampered event rejected", func() bool {
		return counterValue(t, r.rd.Replica().metrics.rejected.WithLabelValues("signature")) >= 1
	})
	if r.rd.Replica().AppliedSeq() != head || r.serves(t, a) {
		t.Fatal("replica applied or serves a tampered event")
	}
	seed.tamper.Store(func(b []byte) []byte { return b })
	waitFor(t, 5*time.Second, "recovery after tampering stops", func() bool { return r.serves(t, a) })
	_, nodes := r.discover(t)
	if nodes[a]["region"] != "eu-central" {
		t.Fatalf("served region %v", nodes[a]["region"])
	}
}

// TestDIR_FED_Liveness_ReplicaFollowsSeedHeartbeats: heartbeats reach
// replicas only as signed liveness digests. A node heartbeating at the seed
// stays discoverable at the replica for several liveness windows; once it
// stops it goes dormant there too; a forged digest cannot keep it alive.
func TestDIR_FED_Liveness_ReplicaFollowsSeedHeartbeats(t *testing.T) {
	for _, gossip := range []bool{true, false} {
		name := map[bool]string{true: "gossip", false: "poll"}[gossip]
		t.Run(name, func(t *testing.T) {
			const stale = 1500 * time.Millisecond
			seed := newSeedDir(t, seedDirOpts{gossip: gossip, staleAfter: stale})
			r := newReplicaDir(t, seed, replicaDirOpts{gossip: gossip, staleAfter: stale})
			waitFor(t, 10*time.Second, "bootstrap", func() bool { code, _ := r.discover(t); return code == http.StatusOK })
			a := newUUID()
			token := registerAt(t, http.DefaultClient, seed.url, a, healthSrv(t))
			waitFor(t, 2*time.Second, "node at replica", func() bool { return r.serves(t, a) })
			for start := time.Now(); time.Since(start) < 2*stale; {
				heartbeat(t, seed.url, a, token, 0.25)
				if !r.serves(t, a) {
					t.Fatalf("node went dormant at the replica %v into heartbeating", time.Since(start))
				}
				time.Sleep(200 * time.Millisecond) // the node's heartbeat cadence, not a wait for a condition
			}
			_, nodes := r.discover(t)
			if nodes[a]["load"] != 0.25 {
				t.Fatalf("replica load %v, want the heartbeat's 0.25", nodes[a]["load"])
			}
			if gossip {
				forgeLiveness(t, r, seed.sd.Seed().DID(), a)
			}
			took := waitFor(t, stale+2*time.Second, "node dormant at the replica", func() bool { return !r.serves(t, a) })
			t.Logf("dormant at the replica %v after the last heartbeat", took)
		})
	}
}

// forgeLiveness publishes a digest signed by a stranger claiming id was
// seen now, and waits until the replica rejected it.
func forgeLiveness(t *testing.T, r *replicaDirEnv, did, id string) {
	t.Helper()
	attacker := newGossipNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := r.rd.gossip.Host()
	if err := attacker.h.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	topic, err := attacker.ps.Join(EventTopic(did))
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Close()
	waitFor(t, 5*time.Second, "attacker sees the replica in the topic", func() bool { return len(topic.ListPeers()) >= 1 })
	msg, err := signLiveness(newKey(t), &LivenessDigest{Schema: LivenessSchema, SeedDID: did, TsMs: time.Now().Add(time.Hour).UnixMilli(),
		Nodes: []LiveNode{{NodeID: id, LastSeenMs: time.Now().Add(time.Hour).UnixMilli(), Available: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := topic.Publish(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "forged digest rejected", func() bool {
		return counterValue(t, r.rd.Replica().metrics.rejected.WithLabelValues("liveness_signature")) >= 1
	})
}

// TestDIR_FED_18_WriteAtReplicaFollowedToSeed: a write at a replica
// directory is a 307 to the seed (path kept); clients follow it (DIR-FED-05)
// so a node registers, heartbeats and deregisters through a replica URL, and
// the result is replicated back.
func TestDIR_FED_18_WriteAtReplicaFollowedToSeed(t *testing.T) {
	seed := newSeedDir(t, seedDirOpts{gossip: true})
	r := newReplicaDir(t, seed, replicaDirOpts{gossip: true})
	waitFor(t, 10*time.Second, "bootstrap", func() bool { code, _ := r.discover(t); return code == http.StatusOK })
	waitTopic(t, seed, 1)

	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := plain.Post(r.url+"/v1/register?x=1", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != seed.url+"/v1/register?x=1" ||
		resp.Header.Get("X-IICP-Replica-Redirect") != "true" {
		t.Fatalf("write at replica: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A node configured with only the replica URL: register with net/http's
	// own 307 handling, then heartbeat and deregister with the node's real
	// directory client (dirbridge/dirclient follows ≤ 3 redirects, DIR-FED-06).
	a := newUUID()
	token := registerAt(t, &http.Client{Timeout: 10 * time.Second}, r.url, a, healthSrv(t))
	waitFor(t, time.Second, "node registered through the replica is replicated", func() bool { return r.serves(t, a) })
	dc, err := dirclient.New(r.url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	load := 0.5
	if _, err := dc.Heartbeat(ctx, token, &wire.Heartbeat{NodeID: a, Load: &load}); err != nil {
		t.Fatalf("heartbeat through the replica: %v", err)
	}
	if err := dc.Deregister(ctx, token, a); err != nil {
		t.Fatalf("deregister through the replica: %v", err)
	}
	waitFor(t, time.Second, "deregistration replicated", func() bool { return !r.serves(t, a) })
}

// TestDIR_FED_15_SnapshotCarriesLiveState: the seed directory's snapshot
// holds the registration and the directory's live node state (load,
// active_jobs, last_seen, reputation) as §5.5 lists them.
func TestDIR_FED_15_SnapshotCarriesLiveState(t *testing.T) {
	seed := newSeedDir(t, seedDirOpts{})
	a := newUUID()
	token := registerAt(t, http.DefaultClient, seed.url, a, healthSrv(t))
	heartbeat(t, seed.url, a, token, 0.7)
	s := seed.sd.Seed()
	waitFor(t, 5*time.Second, "REGISTER logged", func() bool { return s.HeadSeq() >= 1 })
	snap, err := s.el.snapshot(context.Background(), s.cfg.Live)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Nodes) != 1 || snap.SnapshotSeq != s.HeadSeq() {
		t.Fatalf("snapshot: seq %d, %d nodes", snap.SnapshotSeq, len(snap.Nodes))
	}
	n := snap.Nodes[0]
	if n.NodeID != a || n.Load == nil || *n.Load != 0.7 || n.LastSeen == "" || !n.Available || n.ReputationScore == nil ||
		n.ActiveJobs == nil || len(snap.Capabilities) != 1 {
		t.Fatalf("snapshot node lacks live state: %+v", n)
	}
	body, _ := json.Marshal(snap)
	if containsAny(body, token, "observed_source_ip") {
		t.Fatal("snapshot carries a token or an observed address")
	}
}

// TestDIR_FED_SeedReconcilesUnloggedChanges: changes the directory
// committed without the log seeing them (a crash between the commit and the
// hook, or a directory run before federation was on) are appended when the
// seed starts, so replicas never miss a registered node.
func TestDIR_FED_SeedReconcilesUnloggedChanges(t *testing.T) {
	state := t.TempDir()
	plain, err := directory.New(dirConfig(t, state, 0), directory.WithLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- plain.Serve(ctx) }()
	a := newUUID()
	registerAt(t, http.DefaultClient, "http://"+plain.Addr().String(), a, healthSrv(t))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	seed := newSeedDir(t, seedDirOpts{stateDir: state})
	waitFor(t, 5*time.Second, "reconciled REGISTER", func() bool { return seed.sd.Seed().HeadSeq() >= 1 })
	r := newReplicaDir(t, seed, replicaDirOpts{poll: 100 * time.Millisecond})
	waitFor(t, 5*time.Second, "reconciled node at replica", func() bool { return r.serves(t, a) })
	head := seed.sd.Seed().HeadSeq()
	seed.stop()
	// A restart with nothing unlogged appends nothing.
	seed2 := newSeedDir(t, seedDirOpts{stateDir: state})
	if err := seed2.sd.reconcile(context.Background()); err != nil || seed2.sd.Seed().HeadSeq() != head {
		t.Fatalf("second reconcile: err %v, head %d → %d", err, head, seed2.sd.Seed().HeadSeq())
	}
}
