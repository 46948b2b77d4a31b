package mesh

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/wire"
)

// connectNodes dials from→to so identify has run before the first call.
func connectNodes(t *testing.T, from, to *testNode) {
	t.Helper()
	if err := from.h.Connect(context.Background(), peer.AddrInfo{ID: to.h.ID(), Addrs: to.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// callPayload makes one pinned call carrying payload and returns the answer.
func callPayload(t *testing.T, from *testNode, to peer.ID, payload string, attempts int) (*wire.Response, CallInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call := testCall()
	call.Payload = json.RawMessage(payload)
	return from.m.Call(ctx, call, CallOptions{Peer: to, MaxAttempts: attempts})
}

// TestPersistentStream_SequentialCallsOneStream: over QUIC and TCP, 40
// sequential calls to one peer travel on one reused stream, each answered
// with its own payload, by the server's proven node_id, for the caller's
// authenticated peer.
func TestPersistentStream_SequentialCallsOneStream(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		t.Run(fmt.Sprintf("tcp=%v", tcp), func(t *testing.T) {
			client := startNode(t, newTestHost(t, tcp), testConfig("client", false))
			server := startNode(t, newTestHost(t, tcp), testConfig("server", true))
			connectNodes(t, client, server)
			const n = 40
			for i := range n {
				payload := fmt.Sprintf(`{"messages":[{"role":"user","content":"call %d"}]}`, i)
				resp, info, err := callPayload(t, client, server.h.ID(), payload, 1)
				if err != nil || resp.Status != wire.StatusSuccess {
					t.Fatalf("call %d: %v %+v", i, err, resp)
				}
				if !sameJSON(t, resp.Result, []byte(payload)) || resp.NodeID != server.engine.name || info.Peer != server.h.ID() {
					t.Fatalf("call %d answered %s by %s (%s)", i, resp.Result, resp.NodeID, info.Peer)
				}
				if got := server.engine.caller().PeerID; got != client.h.ID().String() {
					t.Fatalf("call %d attributed to %s", i, got)
				}
			}
			if got := server.engine.calls.Load(); got != n {
				t.Fatalf("engine ran %d calls, want %d", got, n)
			}
			if got := client.m.Stats()["call_stream_reused"]; got != n-1 {
				t.Fatalf("client reused a stream %d times, want %d: %v", got, n-1, client.m.Stats())
			}
			if got := server.m.Stats()["task_stream_next"]; got != n-1 {
				t.Fatalf("server read %d follow-up requests, want %d: %v", got, n-1, server.m.Stats())
			}
			// The idle stream waiting for a next request is no load.
			waitFor(t, 10*time.Second, "no task counted as executing", func() bool { return server.m.active.Load() == 0 })
		})
	}
}

// TestPersistentStream_IdleCloseThenFreshStream: a server that idles a
// stream out ends it with a FIN; the caller's next call goes out on a
// fresh stream, is answered, and runs exactly once.
func TestPersistentStream_IdleCloseThenFreshStream(t *testing.T) {
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	server := startNode(t, newTestHost(t, false), testConfig("server", true))
	server.m.idleOverride.Store(int64(20 * time.Millisecond))
	connectNodes(t, client, server)
	if resp, _, err := callPayload(t, client, server.h.ID(), `{"n":1}`, 1); err != nil || resp.Status != wire.StatusSuccess {
		t.Fatalf("first call: %v %+v", err, resp)
	}
	waitFor(t, 10*time.Second, "the server to idle the stream out", func() bool {
		return server.m.Stats()["task_stream_idle_closed"] == 1
	})
	// One attempt only: the call must not need Call's retry to survive.
	resp, _, err := callPayload(t, client, server.h.ID(), `{"n":2}`, 1)
	if err != nil || resp.Status != wire.StatusSuccess || !sameJSON(t, resp.Result, []byte(`{"n":2}`)) {
		t.Fatalf("call after idle close: %v %+v", err, resp)
	}
	if got := server.engine.calls.Load(); got != 2 {
		t.Fatalf("engine ran %d calls, want 2", got)
	}
}

// TestPersistentStream_ServerResetMidIdle: the server resets the idle
// stream (its side gone, as after a crash of the handler); the next call
// is answered on a fresh stream, not lost and not run twice.
func TestPersistentStream_ServerResetMidIdle(t *testing.T) {
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	server := startNode(t, newTestHost(t, false), testConfig("server", true))
	connectNodes(t, client, server)
	if resp, _, err := callPayload(t, client, server.h.ID(), `{"n":1}`, 1); err != nil || resp.Status != wire.StatusSuccess {
		t.Fatalf("first call: %v %+v", err, resp)
	}
	reset := 0
	waitFor(t, 10*time.Second, "the server's idle stream", func() bool {
		for _, c := range server.h.Network().ConnsToPeer(client.h.ID()) {
			for _, s := range c.GetStreams() {
				if s.Protocol() == TaskProtocolPersist {
					_ = s.Reset()
					reset++
				}
			}
		}
		return reset > 0
	})
	resp, info, err := callPayload(t, client, server.h.ID(), `{"n":2}`, 0)
	if err != nil || resp.Status != wire.StatusSuccess || !sameJSON(t, resp.Result, []byte(`{"n":2}`)) {
		t.Fatalf("call after reset: %v %+v (%+v)", err, resp, info)
	}
	if got := server.engine.calls.Load(); got != 2 {
		t.Fatalf("engine ran %d calls, want 2 (none lost, none twice)", got)
	}
}

// TestPersistentStream_OldServerInterop: a node serving only
// /iicp/task/1.0.0 (an older meshnode) is called one stream per call, as
// before, with no error and no reuse.
func TestPersistentStream_OldServerInterop(t *testing.T) {
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	server := startNode(t, newTestHost(t, false), testConfig("server", true))
	server.h.RemoveStreamHandler(TaskProtocolPersist)
	connectNodes(t, client, server)
	for i := range 5 {
		resp, _, err := callPayload(t, client, server.h.ID(), fmt.Sprintf(`{"n":%d}`, i), 1)
		if err != nil || resp.Status != wire.StatusSuccess {
			t.Fatalf("call %d to a 1.0.0 server: %v %+v", i, err, resp)
		}
	}
	if got := client.m.Stats()["call_stream_reused"]; got != 0 {
		t.Fatalf("reused %d streams to a 1.0.0 server", got)
	}
	if got := server.engine.calls.Load(); got != 5 {
		t.Fatalf("engine ran %d calls, want 5", got)
	}
}

// testClock is a settable clock for a serving mesh.
type testClock struct{ off atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// TestPersistentStream_AuthorisationPerCall: on reused streams every call
// is authorised on its own, for the stream's authenticated peer: a member's
// streams never carry a stranger's call (the stranger, on its own
// connection, is refused between the member's calls), and a member whose
// credential expires while its stream idles is refused on that same stream.
func TestPersistentStream_AuthorisationPerCall(t *testing.T) {
	_, dirKey, _ := ed25519.GenerateKey(nil)
	clk := &testClock{}
	server := startEngineNodeClock(t, clk)
	server.m.SetDirectoryKeys(dirKey.Public().(ed25519.PublicKey))
	member := startNode(t, newTestHost(t, false), testConfig("member", false))
	stranger := startNode(t, newTestHost(t, false), testConfig("stranger", false))
	member.m.SetMembership(credentialFor(t, dirKey, member.h, time.Now(), time.Hour))
	connectNodes(t, member, server)
	connectNodes(t, stranger, server)
	for i := range 3 {
		if resp, _, err := callPayload(t, member, server.h.ID(), `{"messages":[{"role":"user","content":"hi"}]}`, 1); err != nil || resp.Status != wire.StatusSuccess {
			t.Fatalf("member call %d: %v %+v", i, err, resp)
		}
		resp, _, err := callPayload(t, stranger, server.h.ID(), `{"messages":[{"role":"user","content":"hi"}]}`, 1)
		if err != nil || resp.Error == nil || resp.Error.Code != wire.CodeUnauthorized {
			t.Fatalf("stranger call %d between member calls: %v %+v", i, err, resp)
		}
	}
	if got := member.m.Stats()["call_stream_reused"]; got != 2 {
		t.Fatalf("member reused %d streams, want 2", got)
	}
	clk.advance(3 * time.Hour)
	before := member.m.Stats()["call_stream_reused"]
	resp, _, err := callPayload(t, member, server.h.ID(), `{"messages":[{"role":"user","content":"hi"}]}`, 1)
	if err != nil || resp.Error == nil || resp.Error.Code != wire.CodeUnauthorized || !strings.Contains(resp.Error.Message, "expired") {
		t.Fatalf("expired member on a reused stream: %v %+v", err, resp)
	}
	if member.m.Stats()["call_stream_reused"] != before+1 {
		t.Fatalf("the expired call did not travel on a reused stream: %v", member.m.Stats())
	}
}

// TestPersistentStream_CredentialChangeOnOneStream: the server memoises a
// stream's HEADERS decoding, keyed by the exact bytes, so a credential
// that changes between two requests on the same stream is judged anew:
// valid, then forged (signed by a key the server does not trust), then
// valid again, all on one reused stream.
func TestPersistentStream_CredentialChangeOnOneStream(t *testing.T) {
	_, dirKey, _ := ed25519.GenerateKey(nil)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	server := startEngineNodeClock(t, &testClock{})
	server.m.SetDirectoryKeys(dirKey.Public().(ed25519.PublicKey))
	member := startNode(t, newTestHost(t, false), testConfig("member", false))
	connectNodes(t, member, server)
	valid := credentialFor(t, dirKey, member.h, time.Now(), time.Hour)
	forged := credentialFor(t, otherKey, member.h, time.Now(), time.Hour)
	for i, tc := range []struct {
		cred string
		ok   bool
	}{{valid, true}, {valid, true}, {forged, false}, {valid, true}} {
		member.m.SetMembership(tc.cred)
		resp, _, err := callPayload(t, member, server.h.ID(), `{"messages":[{"role":"user","content":"hi"}]}`, 1)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got := resp.Status == wire.StatusSuccess; got != tc.ok {
			t.Fatalf("call %d (valid credential %v): %+v", i, tc.ok, resp)
		}
		if !tc.ok && (resp.Error == nil || resp.Error.Code != wire.CodeUnauthorized) {
			t.Fatalf("call %d: forged credential answered %+v", i, resp)
		}
	}
	if got := member.m.Stats()["call_stream_reused"]; got != 3 {
		t.Fatalf("member reused %d streams, want 3 (one stream for all four calls)", got)
	}
	if got := server.m.Stats()["membership_forged"]; got != 1 {
		t.Fatalf("membership_forged = %d, want 1: %v", got, server.m.Stats())
	}
}

// TestHeadersMemoDecodesChangedBytes: the memo reuses a decoding only for
// the same bytes; other bytes are decoded, and undecodable ones are an
// error that leaves the memo as it was.
func TestHeadersMemoDecodesChangedBytes(t *testing.T) {
	var memo headersMemo
	a, _ := cborEnc.Marshal(headersMsg{Membership: "a"})
	b, _ := cborEnc.Marshal(headersMsg{Membership: "b", ConsumerToken: "t"})
	for i, tc := range []struct {
		in   []byte
		want headersMsg
	}{{a, headersMsg{Membership: "a"}}, {a, headersMsg{Membership: "a"}}, {b, headersMsg{Membership: "b", ConsumerToken: "t"}}, {a, headersMsg{Membership: "a"}}} {
		got, err := memo.decode(tc.in)
		if err != nil || got != tc.want {
			t.Fatalf("decode %d: %+v, %v; want %+v", i, got, err, tc.want)
		}
	}
	if _, err := memo.decode([]byte{0xff}); err == nil {
		t.Fatal("undecodable HEADERS accepted")
	}
	if got, err := memo.decode(a); err != nil || got.Membership != "a" {
		t.Fatalf("after an undecodable frame: %+v, %v", got, err)
	}
}

// TestPersistentStream_ServerShedsIdleStreamsPastItsCap: a server already
// holding its cap of idle persistent streams ends a stream right after its
// RESPONSE; callers reusing it go out on a fresh stream, every call is
// answered, and none runs twice.
func TestPersistentStream_ServerShedsIdleStreamsPastItsCap(t *testing.T) {
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	server := startNode(t, newTestHost(t, false), testConfig("server", true))
	server.m.idleServedOverride.Store(-1) // cap 0: every stream is shed
	connectNodes(t, client, server)
	const n = 6
	for i := range n {
		payload := fmt.Sprintf(`{"n":%d}`, i)
		resp, _, err := callPayload(t, client, server.h.ID(), payload, 1)
		if err != nil || resp.Status != wire.StatusSuccess || !sameJSON(t, resp.Result, []byte(payload)) {
			t.Fatalf("call %d: %v %+v", i, err, resp)
		}
	}
	if got := server.engine.calls.Load(); got != n {
		t.Fatalf("engine ran %d calls, want %d", got, n)
	}
	if got := server.m.Stats()["task_stream_shed"]; got != n {
		t.Fatalf("shed %d streams, want %d: %v", got, n, server.m.Stats())
	}
	if got := server.m.Stats()["task_stream_next"]; got != 0 {
		t.Fatalf("served %d follow-up requests on shed streams", got)
	}
}

// TestPersistentStream_CallerGoneCancelsEngine: a caller that gives up on
// a buffered call travelling on a reused stream resets that stream, and the
// serving engine's context ends at once (the call does not run on to its
// timeout); the stream is not reused afterwards.
func TestPersistentStream_CallerGoneCancelsEngine(t *testing.T) {
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	server := startNode(t, newTestHost(t, false), testConfig("server", true))
	server.engine.block = make(chan struct{}, 1)
	server.engine.block <- struct{}{} // the first call passes
	connectNodes(t, client, server)
	if resp, _, err := callPayload(t, client, server.h.ID(), `{"n":1}`, 1); err != nil || resp.Status != wire.StatusSuccess {
		t.Fatalf("first call: %v %+v", err, resp)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		call := testCall()
		call.Constraints.TimeoutMs = 60000
		_, _, err := client.m.Call(ctx, call, CallOptions{Peer: server.h.ID(), MaxAttempts: 1})
		done <- err
	}()
	waitFor(t, 10*time.Second, "the second call to execute", func() bool { return server.m.active.Load() == 1 })
	if got := client.m.Stats()["call_stream_reused"]; got != 1 {
		t.Fatalf("the second call did not reuse the stream: %v", client.m.Stats())
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned call returned %v", err)
	}
	waitFor(t, 10*time.Second, "the engine to stop", func() bool { return server.m.active.Load() == 0 })
	server.engine.block <- struct{}{}
	if resp, _, err := callPayload(t, client, server.h.ID(), `{"n":3}`, 1); err != nil || resp.Status != wire.StatusSuccess {
		t.Fatalf("call after the abandoned one: %v %+v", err, resp)
	}
	if got := client.m.Stats()["call_stream_reused"]; got != 1 {
		t.Fatalf("the reset stream was reused: %v", client.m.Stats())
	}
}

// TestPersistentStream_CallerDeadlineEndsTheWait: the caller's read of the
// answer has no stream deadline; the context's deadline ends it (the
// stream is reset), on a reused stream whose server never answers.
func TestPersistentStream_CallerDeadlineEndsTheWait(t *testing.T) {
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	server := startNode(t, newTestHost(t, false), testConfig("server", true))
	server.engine.block = make(chan struct{}, 1)
	server.engine.block <- struct{}{} // the first call passes
	connectNodes(t, client, server)
	if resp, _, err := callPayload(t, client, server.h.ID(), `{"n":1}`, 1); err != nil || resp.Status != wire.StatusSuccess {
		t.Fatalf("first call: %v %+v", err, resp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	call := testCall()
	call.Constraints.TimeoutMs = 60000
	done := make(chan error, 1)
	go func() {
		_, _, err := client.m.Call(ctx, call, CallOptions{Peer: server.h.ID(), MaxAttempts: 1})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call past its deadline returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the caller's deadline did not end the wait for the answer")
	}
	if got := client.m.Stats()["call_stream_reused"]; got != 1 {
		t.Fatalf("the second call did not reuse the stream: %v", client.m.Stats())
	}
	waitFor(t, 10*time.Second, "the engine to stop", func() bool { return server.m.active.Load() == 0 })
}
