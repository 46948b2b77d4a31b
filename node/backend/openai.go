package backend

import (
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
	"sync"
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
	if !p.stream || !isEventStream(resp) {
		// A server that ignores stream: true answers with plain JSON.
		return c.plainGeneration(ctx, op, resp, p, chat, req.Model)
	}
	g, err := readStream(op, resp.Body, c.maxBody, chat, sink)
	if err != nil {
		if ctx.Err() != nil {
			err = opError(ctx, op, ctx.Err())
		}
		return Result{}, err
	}
	return encodeGeneration(p, g, req.Model)
}

// plainGeneration reads and decodes a non-streamed chat or completion
// answer. The body goes into a pooled buffer: the result copies what it
// keeps (decoded strings, message bytes appended to the output), so the
// buffer is free once encodeGeneration returns.
func (c *OpenAI) plainGeneration(ctx context.Context, op string, resp *http.Response, p prepared, chat bool, model string) (Result, error) {
	buf := answerBufs.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooledAnswer {
			answerBufs.Put(buf)
		}
	}()
	raw, err := readBodyInto(ctx, op, resp, c.maxBody, (*buf)[:0])
	if err != nil {
		return Result{}, err
	}
	*buf = raw[:0] // keep a grown buffer for the next answer
	g, ok := decodeGenerationFast(raw, chat)
	if !ok {
		if g, err = decodeGeneration(op, raw, chat); err != nil {
			return Result{}, err
		}
	}
	return encodeGeneration(p, g, model)
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
	return readBodyInto(ctx, op, resp, limit, nil)
}

// readBodyInto is readBody reusing dst's capacity for a declared length.
func readBodyInto(ctx context.Context, op string, resp *http.Response, limit int64, dst []byte) ([]byte, error) {
	n := resp.ContentLength
	if n <= 0 || n > limit {
		return readCapped(ctx, op, resp.Body, limit)
	}
	var raw []byte
	if int64(cap(dst)) >= n {
		raw = dst[:n]
	} else {
		raw = make([]byte, n)
	}
	if _, err := io.ReadFull(resp.Body, raw); err != nil {
		return nil, opError(ctx, op, err)
	}
	return raw, nil
}

// answerBufs recycles answer buffers (plainGeneration); one grown past
// maxPooledAnswer is dropped, so a huge answer pins no memory.
var answerBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledAnswer = 64 << 10

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
	// An answer read to its declared end (the usual case) needs no copy:
	// one empty read sees EOF, which is what returns the connection.
	if _, err := rc.Read(nil); err != io.EOF {
		_, _ = io.Copy(io.Discard, io.LimitReader(rc, maxErrorDrain))
	}
	_ = rc.Close()
}

func isEventStream(resp *http.Response) bool {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return err == nil && mt == "text/event-stream"
}
