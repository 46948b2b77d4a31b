package federation

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testutil"
)

// TestDIR_FED_Push_ReplicaDirectoryInRealTime: with no gossip and polling
// set to an hour (events and liveness), a registration at the seed
// directory reaches the replica directory's discover — only the seed's
// long-poll can have carried it — and so does a heartbeat's load.
func TestDIR_FED_Push_ReplicaDirectoryInRealTime(t *testing.T) {
	seed := newSeedDir(t, seedDirOpts{})
	r := newReplicaDir(t, seed, replicaDirOpts{poll: time.Hour, live: time.Hour})
	waitFor(t, 10*time.Second, "replica bootstrap", func() bool { code, _ := r.discover(t); return code == http.StatusOK })
	for i := range 5 {
		a := newUUID()
		token := registerAt(t, http.DefaultClient, seed.url, a, healthSrv(t))
		took := waitFor(t, 10*time.Second, "pushed node at replica", func() bool { return r.serves(t, a) })
		t.Logf("registration %d discoverable at the replica after %v", i, took)
		if i == 0 {
			heartbeat(t, seed.url, a, token, 0.75)
			waitFor(t, 15*time.Second, "pushed liveness at replica", func() bool {
				_, nodes := r.discover(t)
				return nodes[a]["load"] == 0.75
			})
		}
	}
	var held bool
	for _, q := range seed.requests() {
		held = held || strings.HasPrefix(q, "/v1/events?") && strings.Contains(q, "wait=")
	}
	if !held {
		t.Fatal("the replica never long-polled GET /v1/events")
	}
}

// TestDIR_FED_Push_FallsBackToPollingOldSeed: a seed whose /v1/events
// answers carry no X-IICP-Wait (an older seed) is polled, and the replica
// says so once.
func TestDIR_FED_Push_FallsBackToPollingOldSeed(t *testing.T) {
	const interval = 300 * time.Millisecond
	seed := newSeedDir(t, seedDirOpts{})
	seed.oldSeed.Store(true)
	logs := &testutil.SyncBuffer{}
	r := newReplicaDir(t, seed, replicaDirOpts{poll: interval,
		log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	waitFor(t, 10*time.Second, "replica bootstrap", func() bool { code, _ := r.discover(t); return code == http.StatusOK })
	a := newUUID()
	registerAt(t, http.DefaultClient, seed.url, a, healthSrv(t))
	waitFor(t, 10*time.Second, "polled node at replica", func() bool { return r.serves(t, a) })
	waitFor(t, 5*time.Second, "fallback log line", func() bool {
		return strings.Contains(logs.String(), "seed does not push events")
	})
	if n := strings.Count(logs.String(), "seed does not push events"); n != 1 {
		t.Fatalf("fallback logged %d times, want once", n)
	}
}

// getWith performs GET u with an optional bearer token; a transport error
// is a zero response (safe to call off the test goroutine).
func getWith(ctx context.Context, u, token string) (*http.Response, []byte) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return &http.Response{Header: http.Header{}}, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestSeedLongPoll: the seed's GET /v1/events?wait contract.
func TestSeedLongPoll(t *testing.T) {
	seed := newSeedEnv(t, false)
	seed.register(t, nodeID(1))
	rep := newReplicaEnv(t, seed, t.TempDir(), false)
	waitFor(t, 10*time.Second, "replica ready", func() bool { return rep.r.ready.Load() })
	token := rep.r.token // written before ready was set
	rep.stop()           // the test holds the requests itself now
	ctx := context.Background()
	head := seed.seed.HeadSeq() // node 1 and the replica's registration
	base := seed.srv.URL + "/v1/events?since_seq=" + strconv.FormatInt(head, 10) + "&wait="

	// A malformed wait is a structured validation error.
	resp, body := getWith(ctx, base+"soon", token)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"validation_error"`) {
		t.Fatalf("wait=soon: %d %s", resp.StatusCode, body)
	}
	// Anonymous callers are answered at once: held sockets are for replicas.
	resp, _ = getWith(ctx, base+"20", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get(HeaderWait) != "0" {
		t.Fatalf("anonymous wait: %d %s=%q", resp.StatusCode, HeaderWait, resp.Header.Get(HeaderWait))
	}
	// A replica is held until the next event is durable.
	got := make(chan EventsResponse, 1)
	go func() {
		resp, body := getWith(ctx, base+"20", token)
		var er EventsResponse
		_ = json.Unmarshal(body, &er)
		if resp.Header.Get(HeaderWait) != "20" {
			er.HeadSeq = -1
		}
		got <- er
	}()
	waitFor(t, 5*time.Second, "request held", func() bool { return seed.seed.push.waiters.Load() == 1 })
	select {
	case <-got:
		t.Fatal("held request answered before any event")
	default:
	}
	seed.register(t, nodeID(2))
	er := <-got
	if er.HeadSeq != head+1 || len(er.Events) != 1 || er.Events[0].Seq != head+1 {
		t.Fatalf("held answer: head %d, %d events", er.HeadSeq, len(er.Events))
	}
	// Stopping the seed releases held requests at once.
	done := make(chan struct{})
	go func() {
		defer close(done)
		getWith(ctx, seed.srv.URL+"/v1/events?since_seq="+strconv.FormatInt(head+1, 10)+"&wait=20", token)
	}()
	waitFor(t, 5*time.Second, "request held", func() bool { return seed.seed.push.waiters.Load() == 1 })
	seed.seed.push.close()
	<-done
}

// TestSeedLongPoll_OneReplicaCannotHoldEverything: an attacker who
// registered one (low-trust) replica cannot pin the seed's held-request
// budget: beyond maxWaitersPerReplica its requests are answered at once.
func TestSeedLongPoll_OneReplicaCannotHoldEverything(t *testing.T) {
	seed := newSeedEnv(t, false)
	rep := newReplicaEnv(t, seed, t.TempDir(), false)
	waitFor(t, 10*time.Second, "replica ready", func() bool { return rep.r.ready.Load() })
	token := rep.r.token
	rep.stop()
	ctx, cancel := context.WithCancel(context.Background())
	u := seed.srv.URL + "/v1/events?since_seq=" + strconv.FormatInt(seed.seed.HeadSeq(), 10) + "&wait=20"
	var wg sync.WaitGroup
	for range maxWaitersPerReplica {
		wg.Add(1)
		go func() { defer wg.Done(); getWith(ctx, u, token) }()
	}
	waitFor(t, 5*time.Second, "requests held", func() bool { return seed.seed.push.waiters.Load() == maxWaitersPerReplica })
	resp, _ := getWith(context.Background(), u, token)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(HeaderWait) != "0" {
		t.Fatalf("request beyond the per-replica cap: %d %s=%q", resp.StatusCode, HeaderWait, resp.Header.Get(HeaderWait))
	}
	cancel() // the clients leave: their held requests end
	wg.Wait()
	waitFor(t, 5*time.Second, "held requests released", func() bool { return seed.seed.push.waiters.Load() == 0 })
}

// FuzzParseWait: any wait value is a bounded duration or a validation
// error, never a panic.
func FuzzParseWait(f *testing.F) {
	for _, s := range []string{"", "0", "15", "20", "21", "-1", "1e9", "99999999999999999999", "abc", "1.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, err := http.NewRequest(http.MethodGet, "/v1/events?wait="+url.QueryEscape(v), nil)
		if err != nil {
			return
		}
		d, werr := parseWait(r)
		if werr == nil && (d < 0 || d > maxWait) {
			t.Fatalf("wait=%q gave %v", v, d)
		}
	})
}
