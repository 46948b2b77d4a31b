package daemon

import (
	"sync"
	"time"
)

const (
	// tokenMargin: a cached consumer token is replaced this long before it
	// expires, so no call carries one that dies in flight.
	tokenMargin = 30 * time.Second
	// maxCachedTokens bounds the cache (targets × intents).
	maxCachedTokens = 1024
)

// tokenCache keeps one reusable consumer token per mesh target and intent
// until shortly before it expires, so a mesh call without a membership
// credential costs a directory round trip per target and token lifetime,
// not per call. LOG-FORBIDDEN: every token it holds.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]cachedToken
}

type cachedToken struct {
	tok string
	exp time.Time
}

func newTokenCache() *tokenCache { return &tokenCache{m: map[string]cachedToken{}} }

// get returns the cached token for target and intent, or fetches one
// (outside the lock) and caches it when it lives past the margin.
func (c *tokenCache) get(target, intent string, now time.Time, fetch func() (string, time.Time)) string {
	key := target + "\x00" + intent
	c.mu.Lock()
	ct, ok := c.m[key]
	c.mu.Unlock()
	if ok && now.Add(tokenMargin).Before(ct.exp) {
		return ct.tok
	}
	tok, exp := fetch()
	if tok == "" {
		return ""
	}
	if now.Add(tokenMargin).Before(exp) {
		c.mu.Lock()
		if len(c.m) >= maxCachedTokens {
			clear(c.m)
		}
		c.m[key] = cachedToken{tok: tok, exp: exp}
		c.mu.Unlock()
	}
	return tok
}
