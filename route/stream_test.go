package route

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/internal/identity"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/wire"
)

// slowEngine is a real engine (open mode) serving llm:chat:v1 with model
// "slow-model" on an OpenAI-compatible test backend that generates one
// token per interval.
func slowEngine(t *testing.T, nodeID string, n int, interval time.Duration) (*node.Engine, *testutil.SlowLLM) {
	t.Helper()
	llm := testutil.NewSlowLLM("slow-model", n, interval)
	srv := httptest.NewServer(llm.Handler())
	t.Cleanup(srv.Close)
	be, err := backend.NewOpenAI(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := backend.NewRouter(backend.Route{Intent: wire.IntentChat, Mode: backend.ModeChat, Backend: be, Models: []string{"slow-model"}})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := node.New(node.Config{NodeID: nodeID, MaxConcurrent: 4}, rt,
		node.WithOpenMode(), node.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Wait(ctx)
	})
	return eng, llm
}

// streamCollector records chunk contents and arrival times.
type streamCollector struct {
	mu   sync.Mutex
	text strings.Builder
	at   []time.Time
	stop int // return an error at this many chunks (0: never)
}

var errConsumerGone = errors.New("consumer went away")

func (c *streamCollector) chunk(b json.RawMessage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var v struct {
		Choices []struct {
			Delta struct {
				Content string `json:"content"`
			} `json:"delta"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	for _, ch := range v.Choices {
		c.text.WriteString(ch.Delta.Content)
	}
	c.at = append(c.at, time.Now())
	if c.stop > 0 && len(c.at) >= c.stop {
		return errConsumerGone
	}
	return nil
}

func streamingPair(t *testing.T, n int, interval time.Duration) (*Router, *testutil.SlowLLM) {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	eng, llm := slowEngine(t, id.NodeID(), n, interval)
	server := startMeshAs(t, id, eng, []wire.Capability{{Intent: wire.IntentChat}})
	caller := startMesh(t, nil)
	caller.m.AddBootstrapPeers([]peer.AddrInfo{server.peer})
	testutil.WaitFor(t, 15*time.Second, "the caller to learn the server's advert", func() bool { return len(meshTargets(t, caller.m)) > 0 })
	r := newRouter(t, []Finder{MeshFinder{M: caller.m}}, WithTransport(PathMesh, MeshTransport{M: caller.m}))
	return r, llm
}

// The lifecycle profile over a real libp2p task stream: the tokens reach
// the caller while the serving node's backend is still generating, in
// order, and the terminal RESPONSE is a completed event with no result
// (the chunks were the output).
func TestCallStreamOverMesh(t *testing.T) {
	r, llm := streamingPair(t, 8, 20*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var col streamCollector
	res, err := r.CallStream(ctx, testCall(), Query{}, col.chunk)
	if err != nil {
		t.Fatalf("CallStream: %v", err)
	}
	if res.Path != PathMesh || res.Response.Lifecycle == nil || res.Response.Lifecycle.Event != wire.EventCompleted {
		t.Fatalf("result %+v", res)
	}
	if col.text.String() != llm.Text() {
		t.Fatalf("streamed %q, want %q", col.text.String(), llm.Text())
	}
	done := llm.FinishedAt()
	if len(done) != 1 || len(col.at) < 2 || !col.at[0].Before(done[0]) {
		t.Fatalf("first chunk at %v, backend finished at %v: not streamed", col.at, done)
	}
}

// A caller that stops listening resets the stream; the serving node
// cancels its backend request, and the call is not retried elsewhere.
func TestCallStreamConsumerGoneCancelsBackend(t *testing.T) {
	r, llm := streamingPair(t, 200, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	col := streamCollector{stop: 2}
	res, err := r.CallStream(ctx, testCall(), Query{}, col.chunk)
	if !errors.Is(err, ErrStreamBroken) || res.Attempts != 1 {
		t.Fatalf("err %v, attempts %d: want one broken attempt", err, res.Attempts)
	}
	testutil.WaitFor(t, 10*time.Second, "the backend request to be cancelled", func() bool { return llm.Cancelled() == 1 })
	if llm.Finished() != 0 {
		t.Fatal("the backend ran to the end")
	}
}
