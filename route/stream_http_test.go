package route

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/cx"
	"github.com/meshnode/meshnode/dirbridge/httpapi"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

// tapTransport keeps a copy of every response body byte the client reads.
type tapTransport struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (tp *tapTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		resp.Body = &tapBody{rc: resp.Body, tp: tp}
	}
	return resp, err
}

func (tp *tapTransport) seen() []byte {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return bytes.Clone(tp.buf.Bytes())
}

type tapBody struct {
	rc io.ReadCloser
	tp *tapTransport
}

func (b *tapBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.tp.mu.Lock()
	b.tp.buf.Write(p[:n])
	b.tp.mu.Unlock()
	return n, err
}
func (b *tapBody) Close() error { return b.rc.Close() }

// httpStreamingNode is the real HTTP bridge with IICP-CX over a real
// engine whose backend generates one token per interval.
func httpStreamingNode(t *testing.T, n int, interval time.Duration) (Target, *testutil.SlowLLM) {
	t.Helper()
	eng, llm := slowEngine(t, "6f1c2f0e-3b7a-4c1e-9d2a-0a1b2c3d4e5f", n, interval)
	ring, err := cx.OpenKeyRing(filepath.Join(t.TempDir(), cx.DefaultFileName), "node-http")
	if err != nil {
		t.Fatal(err)
	}
	prov, err := cx.NewProvider(ring)
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(eng, httpapi.WithAddr("127.0.0.1:0"), httpapi.WithPlaintextDev(), httpapi.WithConfidential(prov.Hook()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	key := ring.PublicKey()
	return Target{Path: PathHTTP, NodeID: "http-node", Node: wire.NodeSummary{NodeID: "http-node", Endpoint: srv.URL, CXPublicKey: &key}}, llm
}

// The lifecycle profile on the HTTP bridge: POST /v1/task answers with an
// event stream whose tokens reach the caller while the backend generates,
// and every partial is sealed with IICP-CX (no token crosses the wire in
// plaintext).
func TestCallStreamOverHTTPBridgeSealed(t *testing.T) {
	tg, llm := httpStreamingNode(t, 8, 20*time.Millisecond)
	tap := &tapTransport{}
	r := newRouter(t, []Finder{finder(tg)}, WithTransport(PathHTTP, HTTPTransport{HTTP: &http.Client{Transport: tap}}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var col streamCollector
	res, err := r.CallStream(ctx, testCall(), Query{}, col.chunk)
	if err != nil {
		t.Fatalf("CallStream: %v", err)
	}
	if res.Path != PathHTTP || !res.Encrypted || res.Response.Lifecycle == nil || res.Response.Lifecycle.Event != wire.EventCompleted {
		t.Fatalf("result %+v", res)
	}
	if col.text.String() != llm.Text() {
		t.Fatalf("streamed %q, want %q", col.text.String(), llm.Text())
	}
	if done := llm.FinishedAt(); len(done) != 1 || !col.at[0].Before(done[0]) {
		t.Fatalf("first chunk at %v, backend finished at %v: not streamed", col.at, done)
	}
	wireBytes := tap.seen()
	if !bytes.Contains(wireBytes, []byte("event: partial")) || bytes.Contains(wireBytes, []byte("tok1")) {
		t.Fatalf("the event stream is missing or carries plaintext tokens:\n%.400s", wireBytes)
	}
}

// A caller that hangs up on the HTTP event stream cancels the backend
// request on the serving node.
func TestCallStreamOverHTTPBridgeHangUpCancels(t *testing.T) {
	tg, llm := httpStreamingNode(t, 300, 10*time.Millisecond)
	r := newRouter(t, []Finder{finder(tg)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	col := streamCollector{stop: 2}
	_, err := r.CallStream(ctx, testCall(), Query{}, col.chunk)
	if !errors.Is(err, ErrStreamBroken) {
		t.Fatalf("err %v, want a broken stream", err)
	}
	testutil.WaitFor(t, 10*time.Second, "the backend request to be cancelled", func() bool { return llm.Cancelled() == 1 })
}
