package federation

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FailoverTransport is an http.RoundTripper for directory clients (nodes,
// `meshnode call`) that know several directory URLs: the seed first, then
// replicas. A request addressed to any of them is sent to the first one
// not recently failed; a connection error or 502/503/504 moves on to the
// next. 307/308 are followed transparently with method and body (DIR-FED-05),
// at most MaxRedirects consecutive hops (DIR-FED-06), and a redirected host
// is remembered for Retry-After seconds (S.13 §6.2, default 5).
type FailoverTransport struct {
	endpoints []*url.URL
	base      http.RoundTripper
	// MaxRedirects caps consecutive redirects (S.13 §6.2: 3).
	MaxRedirects int
	// Cooldown is how long a failed endpoint is tried only as a last resort.
	Cooldown time.Duration
	// MaxReplayBody caps a request body buffered for replay on failover.
	MaxReplayBody int64
	now           func() time.Time

	mu        sync.Mutex
	downUntil map[string]time.Time
	redirects map[string]redirectEntry
}

type redirectEntry struct {
	target *url.URL
	until  time.Time
}

// ErrTooManyRedirects is DIR-FED-06: a redirect chain longer than allowed.
var ErrTooManyRedirects = errors.New("directory redirect limit exceeded")

// NewFailoverTransport builds the transport; endpoints are base URLs in
// preference order (seed first). base nil means http.DefaultTransport.
func NewFailoverTransport(endpoints []string, base http.RoundTripper) (*FailoverTransport, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("federation: failover needs at least one directory URL")
	}
	t := &FailoverTransport{base: base, MaxRedirects: 3, Cooldown: 30 * time.Second, MaxReplayBody: 4 << 20,
		now: time.Now, downUntil: map[string]time.Time{}, redirects: map[string]redirectEntry{}}
	if t.base == nil {
		t.base = http.DefaultTransport
	}
	for _, e := range endpoints {
		u, err := url.Parse(strings.TrimSuffix(e, "/"))
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("federation: directory URL %q is not an http(s) base URL", e)
		}
		t.endpoints = append(t.endpoints, u)
	}
	return t, nil
}

// NewFailoverClient returns an http.Client using the transport; the client
// itself follows no redirects (the transport does, within its limit).
func NewFailoverClient(endpoints []string, base http.RoundTripper, timeout time.Duration) (*http.Client, error) {
	t, err := NewFailoverTransport(endpoints, base)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: t, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// RoundTrip implements http.RoundTripper.
func (t *FailoverTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := t.replayableBody(req)
	if err != nil {
		return nil, err
	}
	rel, ok := t.relative(req.URL)
	if !ok {
		return t.follow(req, body) // not a directory URL: redirects only
	}
	var lastErr error
	var lastResp *http.Response
	order := t.order()
	for i, ep := range order {
		r2 := req.Clone(req.Context())
		r2.URL = joinURL(ep, rel)
		r2.Host = ""
		resp, err := t.follow(r2, body)
		retryable := err != nil || resp.StatusCode == http.StatusBadGateway ||
			resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout
		if !retryable || req.Context().Err() != nil {
			if lastResp != nil {
				lastResp.Body.Close()
			}
			return resp, err
		}
		t.markDown(ep)
		if i == len(order)-1 {
			if lastResp != nil {
				lastResp.Body.Close()
			}
			return resp, err
		}
		if resp != nil {
			if lastResp != nil {
				lastResp.Body.Close()
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			lastResp = resp
		}
		lastErr = err
	}
	return nil, lastErr
}

// replayableBody buffers a body that cannot be re-read (no GetBody).
func (t *FailoverTransport) replayableBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	b, err := io.ReadAll(io.LimitReader(req.Body, t.MaxReplayBody+1))
	if err != nil {
		return nil, fmt.Errorf("buffering request body: %w", err)
	}
	if int64(len(b)) > t.MaxReplayBody {
		return nil, fmt.Errorf("request body larger than %d bytes cannot be replayed", t.MaxReplayBody)
	}
	return b, nil
}

// relative returns u relative to the configured endpoint it addresses.
func (t *FailoverTransport) relative(u *url.URL) (*url.URL, bool) {
	for _, ep := range t.endpoints {
		if u.Scheme == ep.Scheme && strings.EqualFold(u.Host, ep.Host) && strings.HasPrefix(u.Path, ep.Path) {
			return &url.URL{Path: strings.TrimPrefix(u.Path, ep.Path), RawQuery: u.RawQuery}, true
		}
	}
	return nil, false
}

func joinURL(base, rel *url.URL) *url.URL {
	u := *base
	u.Path = base.Path + rel.Path
	u.RawPath = ""
	u.RawQuery = rel.RawQuery
	return &u
}

// order lists endpoints: healthy ones in preference order, then those in
// cooldown (a last resort beats no answer).
func (t *FailoverTransport) order() []*url.URL {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var up, down []*url.URL
	for _, ep := range t.endpoints {
		if now.Before(t.downUntil[ep.Host]) {
			down = append(down, ep)
		} else {
			up = append(up, ep)
		}
	}
	return append(up, down...)
}

func (t *FailoverTransport) markDown(ep *url.URL) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.downUntil[ep.Host] = t.now().Add(t.Cooldown)
}

// follow sends req, following 307/308 up to MaxRedirects hops.
func (t *FailoverTransport) follow(req *http.Request, body []byte) (*http.Response, error) {
	cur := t.cachedRedirect(req)
	for hop := 0; ; hop++ {
		if body != nil {
			cur.Body = io.NopCloser(bytes.NewReader(body))
			cur.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			cur.ContentLength = int64(len(body))
		}
		resp, err := t.base.RoundTrip(cur)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusTemporaryRedirect && resp.StatusCode != http.StatusPermanentRedirect {
			return resp, nil
		}
		loc, err := resp.Location()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err != nil || (loc.Scheme != "http" && loc.Scheme != "https") {
			return nil, fmt.Errorf("directory redirect without a usable Location")
		}
		if hop >= t.MaxRedirects {
			return nil, ErrTooManyRedirects
		}
		t.rememberRedirect(cur.URL, loc, resp.Header.Get("Retry-After"))
		next := cur.Clone(cur.Context())
		next.URL, next.Host = loc, ""
		if !t.known(loc) {
			// Credentials go only to directories we were configured with.
			next.Header.Del("Authorization")
		}
		cur = next
	}
}

func (t *FailoverTransport) known(u *url.URL) bool {
	for _, ep := range t.endpoints {
		if u.Scheme == ep.Scheme && strings.EqualFold(u.Host, ep.Host) {
			return true
		}
	}
	return false
}

// rememberRedirect caches origin → target host for Retry-After seconds
// (default 5 when absent, nothing when 0: the write-gate sends 0).
func (t *FailoverTransport) rememberRedirect(from, to *url.URL, retryAfter string) {
	secs := 5
	if retryAfter != "" {
		n, err := strconv.Atoi(retryAfter)
		if err != nil || n < 0 {
			return
		}
		secs = min(n, 300)
	}
	if secs == 0 || (from.Scheme == to.Scheme && from.Host == to.Host) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.redirects) > 1000 {
		clear(t.redirects)
	}
	t.redirects[from.Scheme+"://"+from.Host] = redirectEntry{target: &url.URL{Scheme: to.Scheme, Host: to.Host},
		until: t.now().Add(time.Duration(secs) * time.Second)}
}

// cachedRedirect sends req straight to a host it was recently redirected to.
func (t *FailoverTransport) cachedRedirect(req *http.Request) *http.Request {
	t.mu.Lock()
	e, ok := t.redirects[req.URL.Scheme+"://"+req.URL.Host]
	t.mu.Unlock()
	if !ok || !t.now().Before(e.until) {
		return req
	}
	r2 := req.Clone(req.Context())
	u := *req.URL
	u.Scheme, u.Host = e.target.Scheme, e.target.Host
	r2.URL, r2.Host = &u, ""
	return r2
}
