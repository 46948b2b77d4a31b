package cx

import (
	"crypto/ecdh"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a settable clock shared by a ring and a provider.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// ringWithKey builds an in-memory ring whose current key is priv.
func ringWithKey(tb testing.TB, priv *ecdh.PrivateKey, clk *fakeClock, opts ...Option) *KeyRing {
	tb.Helper()
	opts = append([]Option{WithClock(clk.Now), WithLogger(quietLog)}, opts...)
	r, err := OpenKeyRing("", "node-a", opts...)
	if err != nil {
		tb.Fatalf("OpenKeyRing: %v", err)
	}
	r.mu.Lock()
	r.keys = []*ringKey{newRingKey(priv, clk.Now(), r.cfg.lifetime)}
	r.mu.Unlock()
	return r
}

func newTestProvider(tb testing.TB, ring *KeyRing, clk *fakeClock, opts ...ProviderOption) *Provider {
	tb.Helper()
	opts = append([]ProviderOption{WithProviderClock(clk.Now), WithProviderLogger(quietLog)}, opts...)
	p, err := NewProvider(ring, opts...)
	if err != nil {
		tb.Fatalf("NewProvider: %v", err)
	}
	return p
}
