package route

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/dirbridge/httpapi"
	"github.com/meshnode/meshnode/internal/identity"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/wire"
)

// Resumption (LIFECYCLE-09 on the transports): a stream that breaks after
// output is resumed on the same node from the last sequence the caller
// saw; the caller gets every token exactly once from one execution.

// TestLIFECYCLE_09_ResumeOverMesh: the caller's libp2p connection to the
// serving node is closed mid-answer (no cancel: a lost stream); the
// router opens a new stream with resume_after and gets the rest.
func TestLIFECYCLE_09_ResumeOverMesh(t *testing.T) {
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	eng, llm := slowEngine(t, id.NodeID(), 40, 10*time.Millisecond)
	server := startMeshAs(t, id, eng, []wire.Capability{{Intent: wire.IntentChat}})
	caller := startMesh(t, nil)
	caller.m.AddBootstrapPeers([]peer.AddrInfo{server.peer})
	testutil.WaitFor(t, 15*time.Second, "the caller to learn the server's advert", func() bool { return len(meshTargets(t, caller.m)) > 0 })
	r := newRouter(t, []Finder{MeshFinder{M: caller.m}}, WithTransport(PathMesh, MeshTransport{M: caller.m}))

	var col streamCollector
	var cut atomic.Bool
	chunk := func(b json.RawMessage) error {
		if err := col.chunk(b); err != nil {
			return err
		}
		if col.count() == 5 && cut.CompareAndSwap(false, true) {
			// Drop the connection under the stream, as a network failure would.
			go func() { _ = caller.m.Host().Network().ClosePeer(server.peer.ID) }()
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := r.CallStream(ctx, testCall(), Query{}, chunk)
	if err != nil {
		t.Fatalf("CallStream: %v", err)
	}
	if res.Resumes < 1 || res.Response.Lifecycle == nil || res.Response.Lifecycle.Event != wire.EventCompleted {
		t.Fatalf("resumes %d, terminal %+v", res.Resumes, res.Response.Lifecycle)
	}
	if col.text.String() != llm.Text() || llm.Started() != 1 || llm.Cancelled() != 0 {
		t.Fatalf("text %q (want %q), backend started %d cancelled %d", col.text.String(), llm.Text(), llm.Started(), llm.Cancelled())
	}
}

// cutTransport cuts the first event stream it carries after `after`
// events: the body read fails and the connection closes, as when a proxy
// or the network drops it.
type cutTransport struct {
	after int
	done  atomic.Bool
}

func (ct *cutTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && resp.Header.Get("Content-Type") == httpapi.MediaEventStream && ct.done.CompareAndSwap(false, true) {
		resp.Body = &cutBody{rc: resp.Body, left: ct.after}
	}
	return resp, err
}

var errCut = errors.New("connection cut")

type cutBody struct {
	mu   sync.Mutex
	rc   io.ReadCloser
	left int // events still let through
}

// Read passes whole events (one per read is enough for this server, which
// flushes each) until left is spent.
func (b *cutBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left <= 0 {
		_ = b.rc.Close()
		return 0, errCut
	}
	n, err := b.rc.Read(p)
	for _, c := range p[:n] {
		if c == '\n' {
			b.left-- // counts lines; an event is 4 lines (id, event, data, blank)
		}
	}
	return n, err
}
func (b *cutBody) Close() error { return b.rc.Close() }

// TestLIFECYCLE_09_ResumeOverHTTPBridge: the HTTP event stream breaks
// mid-answer; the router sends the same CALL with Last-Event-ID and gets
// the rest, sealed with IICP-CX like the first part.
func TestLIFECYCLE_09_ResumeOverHTTPBridge(t *testing.T) {
	tg, llm := httpStreamingNode(t, 40, 10*time.Millisecond)
	r := newRouter(t, []Finder{finder(tg)}, WithTransport(PathHTTP, HTTPTransport{HTTP: &http.Client{Transport: &cutTransport{after: 4 * 6}}}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var col streamCollector
	res, err := r.CallStream(ctx, testCall(), Query{}, col.chunk)
	if err != nil {
		t.Fatalf("CallStream: %v", err)
	}
	if res.Resumes < 1 || !res.Encrypted || res.Response.Lifecycle.Event != wire.EventCompleted {
		t.Fatalf("resumes %d, encrypted %v, terminal %+v", res.Resumes, res.Encrypted, res.Response.Lifecycle)
	}
	if col.text.String() != llm.Text() || llm.Started() != 1 || llm.Cancelled() != 0 {
		t.Fatalf("text %q (want %q), backend started %d cancelled %d", col.text.String(), llm.Text(), llm.Started(), llm.Cancelled())
	}
}

// TestCancelControlOverMesh: Mesh.Cancel on its own stream cancels a
// running task of the same caller (its stream ends `cancelled`), a
// second cancel (late) answers the terminal event unchanged, and another
// peer's cancel gets not_found.
func TestCancelControlOverMesh(t *testing.T) {
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	eng, llm := slowEngine(t, id.NodeID(), 500, 10*time.Millisecond)
	server := startMeshAs(t, id, eng, []wire.Capability{{Intent: wire.IntentChat}})
	caller, other := startMesh(t, nil), startMesh(t, nil)
	for _, n := range []meshNode{caller, other} {
		if err := n.m.Host().Connect(context.Background(), server.peer); err != nil {
			t.Fatal(err)
		}
	}
	call := testCall()
	call.Constraints.RequiredProfiles = []string{wire.ProfileServiceLifecycle}
	started := make(chan struct{})
	var once sync.Once
	done := make(chan *wire.Response, 1)
	go func() {
		resp, _, _ := caller.m.Call(context.Background(), call, mesh.CallOptions{Peer: server.peer.ID,
			OnEvent: func(l wire.Lifecycle, _ json.RawMessage) error {
				if l.Event == wire.EventPartial { // the backend is generating: its request is in flight
					once.Do(func() { close(started) })
				}
				return nil
			}})
		done <- resp
	}()
	<-started
	ctx := context.Background()
	if resp, err := other.m.Cancel(ctx, server.peer.ID, call.TaskID, "", ""); err != nil || resp.Error == nil || resp.Error.Code != wire.CodeNotFound {
		t.Fatalf("another peer's cancel: %+v %v", resp, err)
	}
	resp, err := caller.m.Cancel(ctx, server.peer.ID, call.TaskID, "user pressed stop", "")
	if err != nil || resp.Lifecycle == nil || resp.Lifecycle.Event != wire.EventCancelled {
		t.Fatalf("cancel: %+v %v", resp, err)
	}
	if r := <-done; r == nil || r.Lifecycle == nil || r.Lifecycle.Event != wire.EventCancelled {
		t.Fatalf("the task's own stream ended %+v", r)
	}
	testutil.WaitFor(t, 10*time.Second, "the backend request to be cancelled", func() bool { return llm.Cancelled() == 1 })
	late, err := caller.m.Cancel(ctx, server.peer.ID, call.TaskID, "", "")
	if err != nil || late.Lifecycle == nil || *late.Lifecycle != *resp.Lifecycle {
		t.Fatalf("late cancel: %+v %v, want the terminal %+v again", late, err, resp.Lifecycle)
	}
}

func (c *streamCollector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.at)
}

// TestCancelControlOverHTTPBridge: POST /v1/control cancels a running
// streamed task (its event stream ends `cancelled`, the backend request
// stops); a late cancel answers the same terminal event; an unknown task
// is not_found and a malformed body a structured 422.
func TestCancelControlOverHTTPBridge(t *testing.T) {
	tg, llm := httpStreamingNode(t, 500, 10*time.Millisecond)
	call := testCall()
	call.Constraints.RequiredProfiles = []string{wire.ProfileServiceLifecycle}
	started := make(chan struct{})
	var once sync.Once
	done := make(chan *wire.Response, 1)
	go func() {
		resp, _, _ := httpapi.PostTaskStream(context.Background(), nil, tg.Node, call, "", false,
			func(l wire.Lifecycle, _ json.RawMessage) error {
				if l.Event == wire.EventPartial { // the backend is generating: its request is in flight
					once.Do(func() { close(started) })
				}
				return nil
			})
		done <- resp
	}()
	<-started
	ctx := context.Background()
	resp, err := httpapi.CancelTask(ctx, nil, tg.Node, call.TaskID, "user pressed stop", "")
	if err != nil || resp.Lifecycle == nil || resp.Lifecycle.Event != wire.EventCancelled {
		t.Fatalf("cancel: %+v %v", resp, err)
	}
	if r := <-done; r == nil || r.Lifecycle == nil || r.Lifecycle.Event != wire.EventCancelled {
		t.Fatalf("the event stream ended %+v", r)
	}
	testutil.WaitFor(t, 10*time.Second, "the backend request to be cancelled", func() bool { return llm.Cancelled() == 1 })
	late, err := httpapi.CancelTask(ctx, nil, tg.Node, call.TaskID, "", "")
	if err != nil || *late.Lifecycle != *resp.Lifecycle {
		t.Fatalf("late cancel: %+v %v", late, err)
	}
	var werr *wire.Error
	if _, err := httpapi.CancelTask(ctx, nil, tg.Node, newUUID(), "", ""); !errors.As(err, &werr) || werr.Code != wire.CodeNotFound {
		t.Fatalf("unknown task: %v", err)
	}
	hr, err := http.Post(tg.Node.Endpoint+"/v1/control", "application/json", strings.NewReader(`{"action":"pause","task_id":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(hr.Body)
	hr.Body.Close()
	if hr.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"code":"validation_error"`) {
		t.Fatalf("malformed cancel: %d %s", hr.StatusCode, body)
	}
}

// TestForAgentBootstrapConfig: a bootstrap agent needs the node's token
// and a multiaddr naming the peer; Directory and Bootstrap exclude each
// other. Each refusal is one line saying what to fix.
func TestForAgentBootstrapConfig(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cfg  AgentConfig
		want string
	}{
		{AgentConfig{}, "needs a Directory"},
		{AgentConfig{Directory: "http://127.0.0.1:1", Bootstrap: "/ip4/127.0.0.1/udp/1/quic-v1"}, "not both"},
		{AgentConfig{Bootstrap: "/ip4/127.0.0.1/udp/1/quic-v1/p2p/12D3KooWNttHiUj2Gq41xq85AYUpQjmvnD66FM5ZJiU8eVM66RSy"}, "needs NodeToken"},
		{AgentConfig{Bootstrap: "not-a-multiaddr", NodeToken: "t"}, "is not a multiaddr"},
		{AgentConfig{Bootstrap: "/ip4/127.0.0.1/udp/1/quic-v1", NodeToken: "t"}, "must end in /p2p/"},
	} {
		r, err := ForAgent(ctx, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			if r != nil {
				_ = r.Close()
			}
			t.Fatalf("%+v: err %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestLIFECYCLE_10_ResumeUnavailableOnTransports: resuming a task whose
// events the node no longer has (here: never had) is resume_unavailable
// on both transports — 410 on the HTTP bridge — and executes nothing.
func TestLIFECYCLE_10_ResumeUnavailableOnTransports(t *testing.T) {
	tg, llm := httpStreamingNode(t, 5, time.Millisecond)
	call := testCall()
	call.Constraints.RequiredProfiles = []string{wire.ProfileServiceLifecycle}
	none := func(wire.Lifecycle, json.RawMessage) error { t.Error("an event was replayed"); return nil }
	resp, st, err := httpapi.ResumeTaskStream(context.Background(), nil, tg.Node, call, "", false, 3, none)
	if st.HTTPStatus != http.StatusGone || resp == nil || resp.Error == nil || resp.Error.Code != wire.CodeResumeUnavailable {
		t.Fatalf("http: status %d, %+v, %v", st.HTTPStatus, resp, err)
	}

	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	eng, mllm := slowEngine(t, id.NodeID(), 5, time.Millisecond)
	server := startMeshAs(t, id, eng, []wire.Capability{{Intent: wire.IntentChat}})
	caller := startMesh(t, nil)
	if err := caller.m.Host().Connect(context.Background(), server.peer); err != nil {
		t.Fatal(err)
	}
	after := uint64(3)
	mresp, _, err := caller.m.Call(context.Background(), call, mesh.CallOptions{Peer: server.peer.ID, OnEvent: none, ResumeAfter: &after})
	if err != nil || mresp.Error == nil || mresp.Error.Code != wire.CodeResumeUnavailable {
		t.Fatalf("mesh: %+v %v", mresp, err)
	}
	if llm.Started()+mllm.Started() != 0 {
		t.Fatal("a resume request executed the task")
	}
	// Another peer resuming a task it does not own: conflict, nothing replayed.
	if resp := eng.ExecuteStream(context.Background(), call, wire.Caller{Transport: "quic", PeerID: "12D3KooWowner"},
		func(wire.Lifecycle, json.RawMessage) error { return nil }); resp.Error != nil {
		t.Fatalf("owner's task: %+v", resp.Error)
	}
	mresp, _, err = caller.m.Call(context.Background(), call, mesh.CallOptions{Peer: server.peer.ID, OnEvent: none, ResumeAfter: &after})
	if err != nil || mresp.Error == nil || mresp.Error.Code != wire.CodeConflict {
		t.Fatalf("mesh resume by another peer: %+v %v", mresp, err)
	}
}
