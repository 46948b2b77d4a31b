package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/internal/httperr"
)

// Defaults for the OpenAI-compatible client, listed once.
const (
	// DefaultMaxResponseBytes caps a backend body. Chat answers are KBs; a
	// batch of 1024-dim embeddings is a few MB. The cap stops a broken or
	// hostile backend from exhausting node memory.
	DefaultMaxResponseBytes = 32 << 20
	// defaultMaxIdlePerHost keeps this many warm connections to the backend:
	// Go's default of 2 would open and close a connection per request once
	// more than two tasks run at once.
	defaultMaxIdlePerHost = 64
	defaultIdleTimeout    = 90 * time.Second
	// defaultDialTimeout bounds connecting only; generation time is bounded
	// by the task deadline carried in ctx.
	defaultDialTimeout = 5 * time.Second
	defaultTLSTimeout  = 10 * time.Second
	// maxErrorDrain is how much of an error/leftover body is read so the
	// connection can be reused; larger bodies just close the connection.
	maxErrorDrain = 64 << 10
)

// OpenAI is a client for an OpenAI-compatible inference API: Ollama's /v1,
// vLLM, llama.cpp server, LM Studio and hosted APIs. It is safe for
// concurrent use.
type OpenAI struct {
	base     *url.URL // ends in the API root, e.g. http://127.0.0.1:11434/v1
	baseURL  string   // base.String(), once
	apiKey   string   // LOG-FORBIDDEN
	client   *http.Client
	maxBody  int64
	stream   bool
	engine   string
	userAgnt string
	authHdr  []string // "Bearer "+apiKey, built once; LOG-FORBIDDEN
	uaHdr    []string
	// endpoints is base+path for each API path, built once (endpoint).
	endpoints map[string]*url.URL
	// redirected: the backend answered a redirect; requests go through
	// Client.Do from then on (send).
	redirected atomic.Bool
}

// Option configures an OpenAI client.
type Option func(*OpenAI) error

// WithAPIKey sends "Authorization: Bearer key". The key is never logged.
func WithAPIKey(key string) Option {
	return func(c *OpenAI) error {
		if strings.ContainsAny(key, "\r\n") {
			return errors.New("backend: API key contains a line break")
		}
		c.apiKey = key
		return nil
	}
}

// WithHTTPClient replaces the pooled default client (tests, proxies).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *OpenAI) error {
		if hc == nil {
			return errors.New("backend: nil http client")
		}
		c.client = hc
		return nil
	}
}

// WithMaxResponseBytes caps a backend response body (default DefaultMaxResponseBytes).
func WithMaxResponseBytes(n int64) Option {
	return func(c *OpenAI) error {
		if n < 1024 {
			return fmt.Errorf("backend: max response bytes %d below 1024", n)
		}
		c.maxBody = n
		return nil
	}
}

// WithStreaming makes every chat/completion request use stream: true (SSE),
// assembled into one buffered result. Useful with gateways that cut long
// silent requests; payloads can also ask with "stream": true.
func WithStreaming(on bool) Option {
	return func(c *OpenAI) error { c.stream = on; return nil }
}

// WithInferenceEngine names the engine for capabilities[].inference_engine
// (iicp-core.md §2.1, advisory: "ollama", "vllm", "llama.cpp", …).
func WithInferenceEngine(name string) Option {
	return func(c *OpenAI) error { c.engine = name; return nil }
}

// WithUserAgent sets the User-Agent header sent to the backend.
func WithUserAgent(ua string) Option {
	return func(c *OpenAI) error { c.userAgnt = ua; return nil }
}

// NewOpenAI builds a client for the API rooted at baseURL. A base with no
// path gets "/v1" appended (http://127.0.0.1:11434 → …:11434/v1); any other
// path is used as given (https://api.example.com/openai/v1).
func NewOpenAI(baseURL string, opts ...Option) (*OpenAI, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("backend: base URL must be an absolute http(s) URL")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, errors.New("backend: base URL must not carry a query, fragment or credentials (use WithAPIKey)")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if u.Path == "" {
		u.Path = "/v1"
	}
	u.RawPath = ""
	c := &OpenAI{base: u, baseURL: u.String(), maxBody: DefaultMaxResponseBytes, userAgnt: "meshnode"}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.client == nil {
		c.client = &http.Client{Transport: pooledTransport()}
	}
	if c.apiKey != "" {
		c.authHdr = []string{"Bearer " + c.apiKey}
	}
	if c.userAgnt != "" {
		c.uaHdr = []string{c.userAgnt}
	}
	c.endpoints = make(map[string]*url.URL, len(apiPaths))
	for _, p := range apiPaths {
		u := *c.base
		u.Path += p
		c.endpoints[p] = &u
	}
	return c, nil
}

// pooledTransport is tuned for many concurrent tasks to one backend host.
func pooledTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: defaultDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * defaultMaxIdlePerHost,
		MaxIdleConnsPerHost:   defaultMaxIdlePerHost,
		IdleConnTimeout:       defaultIdleTimeout,
		TLSHandshakeTimeout:   defaultTLSTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// Name implements Backend.
func (c *OpenAI) Name() string { return "openai" }

// InferenceEngine is the advisory engine name for capabilities ("" if unknown).
func (c *OpenAI) InferenceEngine() string { return c.engine }

// StreamsOutput is true: chat and completion answers can be delivered as
// they are generated (capabilities[].supports_streaming).
func (c *OpenAI) StreamsOutput() bool { return true }

// GeneratedByAI is true: answers come from a model (iicp-core.md §3.2).
func (c *OpenAI) GeneratedByAI() bool { return true }

// ReturnsOnCancel reports whether Do returns promptly once its ctx ends,
// which lets the engine run it without a guard goroutine. net/http's own
// transport aborts the exchange (dial, write, read) on cancellation; a
// custom RoundTripper given through WithHTTPClient promises nothing.
func (c *OpenAI) ReturnsOnCancel() bool {
	switch c.client.Transport.(type) {
	case nil, *http.Transport:
		return true
	}
	return false
}

// String describes the backend without secrets (for health output and logs).
func (c *OpenAI) String() string { return "openai " + c.base.String() }

// LogValue keeps the API key out of any log line that includes the client.
func (c *OpenAI) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", "openai"), slog.String("base", c.base.String()))
}

// Do implements Backend: one chat, completion, embedding or summarise request.
func (c *OpenAI) Do(ctx context.Context, req Request) (Result, error) {
	sink := SinkFrom(ctx)
	if !Streams(req.Mode) {
		sink = nil
	}
	p, err := prepare(req, c.stream || sink != nil)
	if err != nil {
		return Result{}, err
	}
	op := string(p.mode)
	body, err := encodeBody(p.body)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %s: encoding request: %v", ErrBackend, op, err)
	}
	resp, err := c.send(ctx, http.MethodPost, p.path, body, p.stream, req.TraceID)
	if err != nil {
		return Result{}, opError(ctx, op, err)
	}
	defer drainClose(resp.Body)
	if err := checkStatus(op, resp); err != nil {
		return Result{}, err
	}
	if p.mode == ModeEmbedding {
		raw, err := readBody(ctx, op, resp, c.maxBody)
		if err != nil {
			return Result{}, err
		}
		return decodeEmbedding(raw, req.Model)
	}
	chat := p.mode != ModeCompletion
	var g generation
	if p.stream && isEventStream(resp) {
		g, err = readStream(op, resp.Body, c.maxBody, chat, sink)
		if err != nil && ctx.Err() != nil {
			err = opError(ctx, op, ctx.Err())
		}
	} else {
		// A server that ignores stream: true answers with plain JSON.
		var raw []byte
		if raw, err = readBody(ctx, op, resp, c.maxBody); err == nil {
			var ok bool
			if g, ok = decodeGenerationFast(raw, chat); !ok {
				g, err = decodeGeneration(op, raw, chat)
			}
		}
	}
	if err != nil {
		return Result{}, err
	}
	return encodeGeneration(p, g, req.Model)
}

// send issues one request to base+path. A non-empty traceID travels as
// X-IICP-Trace-Id (iicp-semantics.md §10.1: adapters include trace_id in
// backend HTTP calls).
func (c *OpenAI) send(ctx context.Context, method, path string, body []byte, stream bool, traceID string) (*http.Response, error) {
	h := c.requestHeader(body != nil, stream, traceID)
	rt, direct := c.roundTripper()
	if !direct {
		return c.sendClient(ctx, method, path, body, h)
	}
	resp, err := rt.RoundTrip(c.request(ctx, method, path, body, h))
	if err != nil || !isRedirect(resp) {
		return resp, err
	}
	// Redirects are rare (an API behind a moved path): net/http's client
	// follows them with its own rules (method rewriting, hop limit,
	// sensitive headers dropped off-host), so the request goes again
	// through it, and so does every later one to this backend. The
	// redirect answer ran no inference; the resend costs one exchange.
	drainClose(resp.Body)
	c.redirected.Store(true)
	return c.sendClient(ctx, method, path, body, h)
}

// roundTripper is the transport send may call directly: net/http's own,
// behind a client with nothing Client.Do would add on a non-redirect
// exchange (no Timeout, no cookie Jar). Calling it directly saves
// Client.Do's per-request header copy and redirect bookkeeping; a custom
// RoundTripper always goes through the client, and so does a backend that
// answered with a redirect once.
func (c *OpenAI) roundTripper() (http.RoundTripper, bool) {
	if c.client.Timeout != 0 || c.client.Jar != nil || c.redirected.Load() {
		return nil, false
	}
	switch t := c.client.Transport.(type) {
	case nil:
		return http.DefaultTransport, true
	case *http.Transport:
		return t, true
	}
	return nil, false
}

// request builds the request without parsing a URL: base+path was parsed
// once (endpoint). The body reader is a *bytes.Reader behind io.NopCloser,
// which net/http recognises as in memory (headers and body go out in one
// write) and GetBody lets the transport resend on a stale pooled connection.
func (c *OpenAI) request(ctx context.Context, method, path string, body []byte, h http.Header) *http.Request {
	u := c.endpoint(path)
	r := &http.Request{Method: method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, Host: u.Host}
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return r.WithContext(ctx)
}

// sendClient is send through http.Client.Do (custom clients, redirects).
func (c *OpenAI) sendClient(ctx context.Context, method, path string, body []byte, h http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, rd)
	if err != nil {
		return nil, err
	}
	hr.Header = h
	return c.client.Do(hr)
}

// requestHeader is a request's header map. Canonical names and shared,
// never-mutated value slices: no canonicalisation or allocation per header
// (RoundTrippers must not modify the request, so sharing is safe).
func (c *OpenAI) requestHeader(hasBody, stream bool, traceID string) http.Header {
	h := make(http.Header, 6)
	if hasBody {
		h["Content-Type"] = jsonMedia
	}
	if stream {
		h["Accept"] = eventStreamMedia
	} else {
		h["Accept"] = jsonMedia
	}
	if c.authHdr != nil {
		h["Authorization"] = c.authHdr
	}
	if c.uaHdr != nil {
		h["User-Agent"] = c.uaHdr
	}
	if safeTraceID(traceID) {
		h[canonicalTraceHeader] = []string{traceID}
	}
	return h
}

// endpoint is base+path as a URL: parsed once for the API paths prepare
// uses (NewOpenAI) and shared read-only (net/http never writes to a
// request's URL).
func (c *OpenAI) endpoint(path string) *url.URL {
	if u, ok := c.endpoints[path]; ok {
		return u
	}
	u := *c.base
	u.Path += path
	return &u
}

// isRedirect reports a redirect Client.Do would follow.
func isRedirect(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return resp.Header.Get("Location") != ""
	}
	return false
}

// Shared request header values (read-only).
var (
	jsonMedia            = []string{"application/json"}
	eventStreamMedia     = []string{"text/event-stream"}
	canonicalTraceHeader = http.CanonicalHeaderKey(HeaderTraceID)
)

// safeTraceID admits the trace ID forms wire accepts (32 hex digits or a
// UUID); anything else is not forwarded rather than failing the request.
func safeTraceID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '-') {
			return false
		}
	}
	return true
}

// Check implements Backend: GET {base}/models must answer 2xx. Servers that
// lack the listing (some llama.cpp builds) are probed at Ollama's /api/tags
// too, then at the server root.
func (c *OpenAI) Check(ctx context.Context) error {
	_, err := c.Models(ctx)
	return err
}

// Models lists the served model IDs (GET {base}/models, then Ollama's
// /api/tags at the host root), sorted.
func (c *OpenAI) Models(ctx context.Context) ([]string, error) {
	ids, err := c.listModels(ctx, c.base.String()+"/models", parseOpenAIModels)
	var se *StatusError
	if err == nil || !errors.As(err, &se) || se.StatusCode != http.StatusNotFound {
		return ids, err
	}
	root := *c.base
	root.Path = ""
	if ids, terr := c.listModels(ctx, root.String()+"/api/tags", parseOllamaTags); terr == nil {
		return ids, nil
	}
	return nil, err
}

// listModels GETs one listing URL and parses it.
func (c *OpenAI) listModels(ctx context.Context, target string, parse func([]byte) ([]string, bool)) ([]string, error) {
	const op = "list models"
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBackend, op, err)
	}
	hr.Header.Set("Accept", "application/json")
	if c.apiKey != "" {
		hr.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.client.Do(hr)
	if err != nil {
		return nil, opError(ctx, op, err)
	}
	defer drainClose(resp.Body)
	if err := checkStatus(op, resp); err != nil {
		return nil, err
	}
	// A model listing is small; 4 MiB covers thousands of entries.
	raw, err := readCapped(ctx, op, resp.Body, min(c.maxBody, 4<<20))
	if err != nil {
		return nil, err
	}
	ids, ok := parse(raw)
	if !ok {
		return nil, malformed(op, "not a model listing")
	}
	sort.Strings(ids)
	return ids, nil
}

// parseOpenAIModels reads {"data":[{"id":…}]}.
func parseOpenAIModels(raw []byte) ([]string, bool) {
	var w struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if json.Unmarshal(raw, &w) != nil || w.Data == nil {
		return nil, false
	}
	ids := make([]string, 0, len(w.Data))
	for _, d := range w.Data {
		if d.ID != "" {
			ids = append(ids, d.ID)
		}
	}
	return ids, true
}

// parseOllamaTags reads Ollama's {"models":[{"name":…}]}.
func parseOllamaTags(raw []byte) ([]string, bool) {
	var w struct {
		Models []struct {
			Name  string `json:"name"`
			Model string `json:"model"`
		} `json:"models"`
	}
	if json.Unmarshal(raw, &w) != nil || w.Models == nil {
		return nil, false
	}
	ids := make([]string, 0, len(w.Models))
	for _, m := range w.Models {
		if n := firstNonEmpty(m.Name, m.Model); n != "" {
			ids = append(ids, n)
		}
	}
	return ids, true
}

// StatusError is a backend answer with a non-2xx HTTP status. It wraps
// ErrBackend; the engine may use StatusCode (429, 503) to pick a code. The
// response body is deliberately not kept: it may echo the payload.
type StatusError struct {
	Op         string
	StatusCode int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%v: %s: HTTP %d", ErrBackend, e.Op, e.StatusCode)
}

// Unwrap makes errors.Is(err, ErrBackend) hold.
func (e *StatusError) Unwrap() error { return ErrBackend }

func checkStatus(op string, resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &StatusError{Op: op, StatusCode: resp.StatusCode}
}

// opError wraps a transport failure. A cancelled or expired ctx stays
// visible to errors.Is (context.DeadlineExceeded → task_timeout). Other
// transport errors are reduced to a fixed description: net/http quotes raw
// response bytes in some messages ("malformed HTTP response …"), and a
// backend's bytes may echo the payload.
func opError(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w: %s: %w", ErrBackend, op, cerr)
	}
	return fmt.Errorf("%w: %s: %w", ErrBackend, op, httperr.Transport("backend", err))
}

// readBody reads a response body of at most limit bytes; a declared
// Content-Length within the limit is read into one exact allocation
// (net/http itself stops a body at its declared length). Zero is not
// trusted: a hand-built response (a custom RoundTripper) may leave it unset.
func readBody(ctx context.Context, op string, resp *http.Response, limit int64) ([]byte, error) {
	n := resp.ContentLength
	if n <= 0 || n > limit {
		return readCapped(ctx, op, resp.Body, limit)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, raw); err != nil {
		return nil, opError(ctx, op, err)
	}
	return raw, nil
}

// readCapped reads a whole body of at most limit bytes.
func readCapped(ctx context.Context, op string, body io.Reader, limit int64) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, opError(ctx, op, err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%w: %s: response exceeds %d bytes", ErrBackend, op, limit)
	}
	return raw, nil
}

// drainClose reads a little of what is left so the connection returns to
// the pool, then closes.
func drainClose(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, maxErrorDrain))
	_ = rc.Close()
}

func isEventStream(resp *http.Response) bool {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return err == nil && mt == "text/event-stream"
}
