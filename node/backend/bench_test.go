package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// benchBackend is a zero-delay OpenAI chat endpoint with a fixed answer.
func benchBackend(tb testing.TB) *httptest.Server {
	tb.Helper()
	answer := []byte(`{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,` +
		`"message":{"role":"assistant","content":"Hello from the benchmark backend"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// BenchmarkOpenAIDoOverhead measures Do() (validation, body rewrite, decode,
// normalised re-encode) against a raw http.Client POST of the same payload
// that only reads the answer, on a zero-delay local backend. It reports
// both per-op times and their ratio (client/raw).
//
//	go test -run '^$' -bench OpenAIDoOverhead -benchmem ./node/backend
func BenchmarkOpenAIDoOverhead(b *testing.B) {
	srv := benchBackend(b)
	payload := json.RawMessage(`{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello"}],"max_tokens":64,"temperature":0.2}`)
	tr := pooledTransport()
	b.Cleanup(tr.CloseIdleConnections)
	raw := &http.Client{Transport: tr}
	c, err := NewOpenAI(srv.URL+"/v1", WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		b.Fatal(err)
	}
	req := Request{Intent: "urn:iicp:intent:llm:chat:v1", Model: "m", Mode: ModeChat, Payload: payload}
	ctx := context.Background()

	rawPost := func() {
		resp, err := raw.Post(srv.URL+"/v1/chat/completions", "application/json", bytes.NewReader(payload))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	// Warm the pool so neither side pays for connection setup.
	rawPost()
	if _, err := c.Do(ctx, req); err != nil {
		b.Fatal(err)
	}

	b.ReportAllocs()
	b.ResetTimer()
	// Interleave the two so machine load drifts affect both alike.
	var rawDur, clientDur time.Duration
	for range b.N {
		start := time.Now()
		rawPost()
		mid := time.Now()
		if _, err := c.Do(ctx, req); err != nil {
			b.Fatal(err)
		}
		rawDur += mid.Sub(start)
		clientDur += time.Since(mid)
	}
	b.StopTimer()
	rawNs := float64(rawDur.Nanoseconds()) / float64(b.N)
	clientNs := float64(clientDur.Nanoseconds()) / float64(b.N)
	b.ReportMetric(rawNs, "raw-ns/op")
	b.ReportMetric(clientNs, "do-ns/op")
	b.ReportMetric(clientNs/rawNs, "do/raw")
}

// BenchmarkOpenAIDoParallel measures Do() throughput with concurrent tasks
// sharing the pooled transport.
func BenchmarkOpenAIDoParallel(b *testing.B) {
	srv := benchBackend(b)
	c, err := NewOpenAI(srv.URL + "/v1")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.client.Transport.(*http.Transport).CloseIdleConnections() })
	req := Request{Model: "m", Mode: ModeChat, Payload: json.RawMessage(`{"messages":[{"role":"user","content":"hello"}]}`)}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Do(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkEchoDo is the echo backend's cost per chat request.
func BenchmarkEchoDo(b *testing.B) {
	e := NewEcho()
	req := Request{Model: EchoModel, Mode: ModeChat, Payload: json.RawMessage(`{"messages":[{"role":"user","content":"hello mesh"}]}`)}
	b.ReportAllocs()
	for range b.N {
		if _, err := e.Do(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// cannedTransport answers every request in memory, isolating the client's
// own CPU cost (validation, encoding, decoding) from the network.
type cannedTransport struct{ body []byte }

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(c.body)), Request: r}, nil
}

// BenchmarkOpenAIDoNoNetwork is Do() with an in-memory transport: the
// per-request cost meshnode adds on top of the HTTP exchange.
func BenchmarkOpenAIDoNoNetwork(b *testing.B) {
	answer := []byte(`{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,` +
		`"message":{"role":"assistant","content":"Hello from the benchmark backend"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}}`)
	c, err := NewOpenAI("http://127.0.0.1:1/v1", WithHTTPClient(&http.Client{Transport: cannedTransport{answer}}))
	if err != nil {
		b.Fatal(err)
	}
	req := Request{Model: "m", Mode: ModeChat, Payload: json.RawMessage(`{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello"}],"max_tokens":64,"temperature":0.2}`)}
	b.ReportAllocs()
	for range b.N {
		if _, err := c.Do(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
