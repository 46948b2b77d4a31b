package route

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meshnode/meshnode/cx"
	"github.com/meshnode/meshnode/wire"
)

// cxNode is a node with a real IICP-CX key ring behind the provider hook.
func cxNode(t *testing.T, answer func(call wire.Call) *wire.Response) (*httptest.Server, wire.CXPublicKey, *atomic.Value) {
	t.Helper()
	ring, err := cx.OpenKeyRing(filepath.Join(t.TempDir(), cx.DefaultFileName), "node-cx")
	if err != nil {
		t.Fatal(err)
	}
	prov, err := cx.NewProvider(ring)
	if err != nil {
		t.Fatal(err)
	}
	hook := prov.Hook()
	var raw atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw.Store(body)
		plain, respond, werr := hook(body)
		if werr != nil {
			writeJSON(w, werr.Status(), werr.Envelope())
			return
		}
		var c wire.Call
		_ = json.Unmarshal(plain, &c)
		out, _ := respond(answer(c))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv, ring.PublicKey(), &raw
}

func echo(c wire.Call) *wire.Response {
	return &wire.Response{TaskID: c.TaskID, Status: wire.StatusSuccess, Result: c.Payload}
}

// CX-01/CX-05 (consumer side) through discover: the payload is sealed to a
// keyed node, the sealed response opened, and the plaintext never crosses
// the wire; the CALL carries constraints.qos and its qos_class mirror.
func TestCX_RouterEncryptsToKeyedNode(t *testing.T) {
	srv, key, raw := cxNode(t, echo)
	n := wire.NodeSummary{NodeID: "k", Endpoint: srv.URL, Available: true, CXPublicKey: &key}
	r, err := ForDirectory(directoryWith(t, n), nil)
	if err != nil {
		t.Fatal(err)
	}
	call := testCall()
	call.Payload = json.RawMessage(`{"messages":[{"role":"user","content":"secret prompt text"}]}`)
	res, err := r.Call(context.Background(), call, Query{})
	if err != nil || res.Response.Status != wire.StatusSuccess || !res.Encrypted || !res.Tried[0].Encrypted || res.NodeID != "k" {
		t.Fatalf("res %+v err %v", res, err)
	}
	var got, want any
	_ = json.Unmarshal(res.Response.Result, &got)
	_ = json.Unmarshal(call.Payload, &want)
	if g, _ := json.Marshal(got); string(g) != mustJSON(want) {
		t.Fatalf("result %s, want the echoed payload", res.Response.Result)
	}
	body := string(raw.Load().([]byte))
	if !strings.Contains(body, `"iicp_conf"`) || strings.Contains(body, `"payload"`) || strings.Contains(body, "secret prompt") {
		t.Fatalf("request body not sealed: %s", body)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// §6: keyless nodes are refused by default (IICP-E064, nothing sent) and
// reached in plaintext only when the query allows it.
func TestCX_RouterRefusesKeylessNodeByDefault(t *testing.T) {
	plain := newTaskNode(t, ok)
	r, err := ForDirectory(directoryWith(t, plain.target("plain").Node), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Call(context.Background(), testCall(), Query{})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeE064 || plain.count() != 0 {
		t.Fatalf("err %v, node called %d times", err, plain.count())
	}
	res, err := r.Call(context.Background(), testCall(), Query{AllowPlaintext: true})
	if err != nil || res.Response.Status != wire.StatusSuccess || res.Encrypted || plain.count() != 1 {
		t.Fatalf("plaintext override: res %+v err %v", res, err)
	}
}

// A key that is present but malformed fails closed on that node (nothing
// sent, no attempt spent, no plaintext fallback) and the next keyed node
// serves.
func TestCX_RouterSkipsUnusableKey(t *testing.T) {
	bad := newTaskNode(t, ok)
	srv, key, _ := cxNode(t, echo)
	broken := key
	broken.Key, broken.PublicKey = "AAAA", ""
	b := bad.target("bad").Node
	b.CXPublicKey = &broken
	good := wire.NodeSummary{NodeID: "good", Endpoint: srv.URL, Available: true, CXPublicKey: &key}
	r, err := ForDirectory(directoryWith(t, b, good), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Call(context.Background(), testCall(), Query{AllowPlaintext: true})
	if err != nil || res.NodeID != "good" || bad.count() != 0 || res.Tried[0].Code != wire.CodeE064 || !res.Tried[0].NotSent || res.Attempts != 1 {
		t.Fatalf("res %+v err %v bad called %d", res, err, bad.count())
	}
}

// Deployed SDK dialects (internal/interop) come back as spec RESPONSEs
// through the router: "status":"completed" is a success, and the CALL
// carries constraints.qos with the qos_class mirror SDK nodes read.
func TestRouterReadsSDKDialect(t *testing.T) {
	sdk := newTaskNode(t, func(w http.ResponseWriter, _ wire.Call) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"task_id":"x","status":"completed","result":{"ok":1}}`)
	})
	r := newRouter(t, []Finder{DirectoryFinder{C: directoryWith(t, sdk.target("sdk").Node)}})
	call := testCall()
	call.Constraints.QoS = wire.QoSInteractive
	res, err := r.Call(context.Background(), call, Query{AllowPlaintext: true})
	if err != nil || res.Response.Status != wire.StatusSuccess {
		t.Fatalf("res %+v err %v", res, err)
	}
	var got struct {
		Constraints map[string]any `json:"constraints"`
	}
	sdk.mu.Lock()
	defer sdk.mu.Unlock()
	if err := json.Unmarshal(sdk.raw[0], &got); err != nil {
		t.Fatal(err)
	}
	if got.Constraints["qos"] != wire.QoSInteractive || got.Constraints["qos_class"] != wire.QoSInteractive {
		t.Fatalf("constraints %v", got.Constraints)
	}
}

// Unavailable nodes and nodes without an endpoint are not candidates.
func TestDirectoryFinderFilters(t *testing.T) {
	n := newTaskNode(t, ok)
	off := n.target("off").Node
	off.Available = false
	noEP := n.target("noep").Node
	noEP.Endpoint = ""
	ts, err := DirectoryFinder{C: directoryWith(t, off, noEP, n.target("on").Node)}.Find(context.Background(), Query{Intent: wire.IntentChat, AllowPlaintext: true})
	if err != nil || len(ts) != 1 || ts[0].NodeID != "on" || ts[0].Path != PathHTTP || !ts[0].Plaintext {
		t.Fatalf("targets %+v err %v", ts, err)
	}
}
