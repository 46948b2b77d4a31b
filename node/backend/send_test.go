package backend

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"sync"
	"testing"
	"time"
)

// The client calls net/http's transport directly (no Client.Do), so what
// Client.Do did on the way must still happen: redirects followed with the
// body resent, headers and trace ID sent, and a client the operator
// configured (Timeout) still used.

func TestOpenAIFollowsRedirects(t *testing.T) {
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		f := newFakeOpenAI(t)
		f.handle("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/moved/v1/chat/completions", code)
		})
		f.handle("/moved/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
			f.chat(w, map[string]any{"model": "llama3.2"})
		})
		c := newClient(t, f, WithAPIKey("sk-test-key"))
		req := chatReq(`{"messages":[{"role":"user","content":"hi"}]}`)
		req.TraceID = "0af7651916cd43dd8448eb211c80319c"
		res, err := c.Do(context.Background(), req)
		if err != nil {
			t.Fatalf("%d: Do: %v", code, err)
		}
		if got := firstMessageContent(t, decodeOut(t, res)); got != "Hello from fake" {
			t.Fatalf("%d: content %q", code, got)
		}
		// The direct exchange met the redirect; the request went again
		// through Client.Do, which followed it with the body.
		f.mu.Lock()
		n := len(f.bodies)
		first, last := f.bodies[0], f.bodies[n-1]
		hdr := f.headers[n-1]
		f.mu.Unlock()
		if n != 3 || first["messages"] == nil || last["messages"] == nil {
			t.Fatalf("%d: %d requests, bodies %v / %v: want 3, the body sent each time", code, n, first, last)
		}
		// From then on the client goes through Client.Do: one redirect, one answer.
		if _, direct := c.roundTripper(); direct {
			t.Fatalf("%d: still direct after a redirect", code)
		}
		if _, err := c.Do(context.Background(), req); err != nil {
			t.Fatalf("%d: second Do: %v", code, err)
		}
		f.mu.Lock()
		n = len(f.bodies)
		f.mu.Unlock()
		if n != 5 {
			t.Fatalf("%d: second task made %d requests, want 2", code, n-3)
		}
		// Same host: Client.Do keeps Authorization across the redirect.
		if hdr.Get("Authorization") != "Bearer sk-test-key" || hdr.Get(HeaderTraceID) != req.TraceID {
			t.Fatalf("%d: redirected request headers %v", code, hdr)
		}
	}
}

func TestOpenAIDirectTransportSendsHeaders(t *testing.T) {
	f := newFakeOpenAI(t)
	c := newClient(t, f, WithAPIKey("sk-test-key"), WithUserAgent("meshnode-test"))
	if _, direct := c.roundTripper(); !direct {
		t.Fatal("the default client should use its transport directly")
	}
	req := chatReq(`{"messages":[{"role":"user","content":"hi"}]}`)
	req.TraceID = "0af7651916cd43dd8448eb211c80319c"
	for range 3 { // the second and third reuse the pooled connection
		if _, err := c.Do(context.Background(), req); err != nil {
			t.Fatalf("Do: %v", err)
		}
	}
	body, hdr := f.last(t)
	for k, want := range map[string]string{"Authorization": "Bearer sk-test-key", "User-Agent": "meshnode-test",
		"Content-Type": "application/json", "Accept": "application/json", HeaderTraceID: req.TraceID} {
		if got := hdr.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if body["model"] != "llama3.2" {
		t.Fatalf("body %v", body)
	}
}

func TestOpenAIConfiguredClientStillUsed(t *testing.T) {
	f := newFakeOpenAI(t)
	block := make(chan struct{})
	defer close(block)
	f.handle("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	tr := pooledTransport()
	defer tr.CloseIdleConnections()
	c := newClient(t, f, WithHTTPClient(&http.Client{Transport: tr, Timeout: 50 * time.Millisecond}))
	if _, direct := c.roundTripper(); direct {
		t.Fatal("a client with a Timeout must go through Client.Do")
	}
	if _, err := c.Do(context.Background(), chatReq(`{"messages":[{"role":"user","content":"hi"}]}`)); err == nil {
		t.Fatal("the client's Timeout did not apply")
	}
}

// TestOpenAIReusesConnections: the direct transport path reads each answer
// to its end and closes it, so the connection goes back to the pool and
// sequential tasks share connections.
func TestOpenAIReusesConnections(t *testing.T) {
	f := newFakeOpenAI(t)
	c := newClient(t, f)
	var mu sync.Mutex
	reused := 0
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		mu.Lock()
		defer mu.Unlock()
		if i.Reused {
			reused++
		}
	}})
	const n = 10
	for range n {
		if _, err := c.Do(ctx, chatReq(`{"messages":[{"role":"user","content":"hi"}]}`)); err != nil {
			t.Fatalf("Do: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// The pool hand-back races the next request a little; most must reuse.
	if reused < n/2 {
		t.Fatalf("%d of %d requests reused a connection", reused, n)
	}
}
