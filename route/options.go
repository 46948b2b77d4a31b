package route

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Defaults, listed once.
const (
	// DefaultAttempts: at most this many attempts per call across every
	// path (iicp-semantics.md §6.1 "max 3 attempts", PROXY-ROUTE-03).
	DefaultAttempts = 3
	// DefaultRetryBase is the first pause before retrying a transient
	// failure on the next target (§6.1: 200 ms, ×2, ±20 % jitter).
	DefaultRetryBase = 200 * time.Millisecond
	// DefaultBreakerThreshold and DefaultBreakerOpenFor are §7.1's
	// per-node circuit breaker: 5 consecutive failures open it for 30 s.
	DefaultBreakerThreshold = 5
	DefaultBreakerOpenFor   = 30 * time.Second
)

// CredentialFunc returns the credential for one attempt on one target (a
// consumer token minted for t.NodeID, iicp-dir.md §3.12), so every attempt
// carries a token for its own target. "" sends none; an error skips the
// target for this call without spending an attempt. The token is
// LOG-FORBIDDEN.
type CredentialFunc func(ctx context.Context, t Target, intent string) (string, error)

// Option configures a Router.
type Option func(*settings) error

type settings struct {
	transports map[Path]Transport
	fallback   Transport
	local      Transport
	localValue LocalValueFunc
	credential CredentialFunc
	skip       func(Target) bool
	attempts   int
	retryBase  time.Duration
	threshold  int
	openFor    time.Duration
	logger     *slog.Logger
	now        func() time.Time
	observer   func(Observation)
}

func defaults() settings {
	return settings{transports: map[Path]Transport{}, attempts: DefaultAttempts, retryBase: DefaultRetryBase,
		threshold: DefaultBreakerThreshold, openFor: DefaultBreakerOpenFor,
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
}

// WithTransport sends the attempts on targets of path p through t.
func WithTransport(p Path, t Transport) Option {
	return func(s *settings) error {
		if t == nil || p == "" {
			return errors.New("route: WithTransport needs a path and a transport")
		}
		s.transports[p] = t
		return nil
	}
}

// WithFallback runs the call on t (a Target with Path PathLocal) when no
// candidate gave a final answer: iicp-semantics.md §8 step 4, the local
// fallback node.
func WithFallback(t Transport) Option {
	return func(s *settings) error { s.fallback = t; return nil }
}

// LocalValueFunc says whether this node itself can serve call, and its
// selection value doing so (comparable with Target.Score of mesh targets).
type LocalValueFunc func(call *wire.Call) (value float64, ok bool)

// WithLocal lets the Router serve a call on this node (t, a Target with
// Path PathLocal) before any remote target when this node serves the
// intent and its value is at least the best remote target's: no network
// is closer. Query.Remote turns it off for one call. A local answer that
// wire.RetryElsewhere would retry (capacity_exceeded…) moves on to the
// remote targets.
func WithLocal(t Transport, value LocalValueFunc) Option {
	return func(s *settings) error {
		if t == nil || value == nil {
			return errors.New("route: WithLocal needs a transport and a value function")
		}
		s.local, s.localValue = t, value
		return nil
	}
}

// WithCredential sets the per-target credential function.
func WithCredential(f CredentialFunc) Option {
	return func(s *settings) error { s.credential = f; return nil }
}

// WithSkip excludes targets (e.g. the calling node itself).
func WithSkip(f func(Target) bool) Option {
	return func(s *settings) error { s.skip = f; return nil }
}

// WithAttempts sets the attempts per call (1–10).
func WithAttempts(n int) Option {
	return func(s *settings) error {
		if n < 1 || n > 10 {
			return fmt.Errorf("route: attempts %d outside 1-10", n)
		}
		s.attempts = n
		return nil
	}
}

// WithRetryBase sets the first backoff pause (> 0).
func WithRetryBase(d time.Duration) Option {
	return func(s *settings) error {
		if d <= 0 {
			return fmt.Errorf("route: retry base %v must be positive", d)
		}
		s.retryBase = d
		return nil
	}
}

// WithBreaker sets the circuit breaker's failure threshold (≥ 1) and open
// duration (> 0).
func WithBreaker(threshold int, openFor time.Duration) Option {
	return func(s *settings) error {
		if threshold < 1 || openFor <= 0 {
			return fmt.Errorf("route: breaker threshold %d / open %v invalid", threshold, openFor)
		}
		s.threshold, s.openFor = threshold, openFor
		return nil
	}
}

// WithLogger logs attempt failures at debug level (never payloads or
// credentials). The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) error {
		if l != nil {
			s.logger = l
		}
		return nil
	}
}

// WithClock replaces time.Now for the breakers (tests).
func WithClock(now func() time.Time) Option {
	return func(s *settings) error {
		if now != nil {
			s.now = now
		}
		return nil
	}
}
