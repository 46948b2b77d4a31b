package backend

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
)

// This file is the OpenAI client's HTTP exchange: request building, the
// direct transport call and the Client.Do fallback (redirects, configured
// clients).

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
