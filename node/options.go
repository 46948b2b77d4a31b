package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/wire"
)

// Config is what the engine must know about the node it runs in. Zero values
// take the defaults in defaults.go.
type Config struct {
	// NodeID is the directory-assigned node_id: RESPONSE node_id and the `aud`
	// a consumer token must carry. Settable later with SetNodeID.
	NodeID string
	// NodeToken is the node's own node_token (iicp-core.md §3.1 errata
	// v1.5.1). Empty means no node-token caller is accepted until
	// SetNodeToken. LOG-FORBIDDEN.
	NodeToken string
	// MaxConcurrent is max_concurrent (TASK-3); 0 means DefaultMaxConcurrent.
	MaxConcurrent int
	// Version is reported by Health.
	Version string
}

// Option changes one engine default. Options return an error for values
// that would make the engine unsafe or meaningless.
type Option func(*settings) error

// settings is everything New assembles from Config, defaults and options.
type settings struct {
	logger     *slog.Logger
	registerer prometheus.Registerer
	now        func() time.Time
	qosWait    map[string]time.Duration
	idemTTL    time.Duration
	idemCap    int
	dirKeys    []ed25519.PublicKey
	allowPeers []string
	openMode   bool
	healthTTL  time.Duration
	resume     ResumeWindow
}

func defaultSettings() settings {
	return settings{
		logger: slog.New(slog.DiscardHandler),
		now:    time.Now,
		qosWait: map[string]time.Duration{
			wire.QoSRealtime:    DefaultRealtimeWait,
			wire.QoSInteractive: DefaultInteractiveWait,
			wire.QoSBatch:       DefaultBatchWait,
			wire.QoSBestEffort:  DefaultBestEffortWait,
		},
		idemTTL:   DefaultIdempotencyTTL,
		idemCap:   DefaultIdempotencyCap,
		healthTTL: DefaultHealthCacheTTL,
		resume:    DefaultResumeWindow,
	}
}

// WithLogger sets the engine's logger (the engine adds "component"="engine").
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) error {
		if l == nil {
			return errors.New("nil logger")
		}
		s.logger = l
		return nil
	}
}

// WithRegisterer registers the engine's metrics in r (never the global
// default registry, so several engines can live in one test binary).
func WithRegisterer(r prometheus.Registerer) Option {
	return func(s *settings) error { s.registerer = r; return nil }
}

// WithClock replaces time.Now (tests of token expiry and latency).
func WithClock(now func() time.Time) Option {
	return func(s *settings) error {
		if now == nil {
			return errors.New("nil clock")
		}
		s.now = now
		return nil
	}
}

// WithQoSWait sets how long a CALL of qos class may wait for a slot before
// capacity_exceeded. 0 refuses immediately (iicp-semantics.md §2.2).
func WithQoSWait(class string, d time.Duration) Option {
	return func(s *settings) error {
		if _, ok := s.qosWait[class]; !ok {
			return fmt.Errorf("unknown qos class %q", class)
		}
		if d < 0 || d > 5*time.Second {
			return fmt.Errorf("qos wait %v out of range [0, 5s]", d)
		}
		s.qosWait[class] = d
		return nil
	}
}

// WithIdempotency sets how long and how many task_ids are remembered (TASK-2).
func WithIdempotency(ttl time.Duration, capacity int) Option {
	return func(s *settings) error {
		if ttl < time.Second || capacity < 1 {
			return fmt.Errorf("idempotency ttl %v / cap %d too small", ttl, capacity)
		}
		s.idemTTL, s.idemCap = ttl, capacity
		return nil
	}
}

// WithDirectoryKeys sets the directory Ed25519 public keys that sign
// consumer tokens (iicp-dir.md §3.12). Replaceable later with SetDirectoryKeys.
func WithDirectoryKeys(keys ...ed25519.PublicKey) Option {
	return func(s *settings) error {
		for _, k := range keys {
			if len(k) != ed25519.PublicKeySize {
				return fmt.Errorf("directory key has %d bytes, want %d", len(k), ed25519.PublicKeySize)
			}
		}
		s.dirKeys = keys
		return nil
	}
}

// WithPeerAllowlist authorizes mesh callers by their authenticated libp2p
// peer ID (wire.Caller.PeerID) without a token. Off (empty) by default.
func WithPeerAllowlist(peerIDs ...string) Option {
	return func(s *settings) error {
		for _, p := range peerIDs {
			if p == "" {
				return errors.New("empty peer ID in allowlist")
			}
		}
		s.allowPeers = peerIDs
		return nil
	}
}

// WithOpenMode accepts every CALL without credentials. Off by default; an
// operator must ask for it explicitly (iicp-core.md §3.1 errata v1.5.1:
// node_token is an operator capability credential).
func WithOpenMode() Option {
	return func(s *settings) error { s.openMode = true; return nil }
}

// WithHealthCacheTTL sets how long a backend probe result is reused.
func WithHealthCacheTTL(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return errors.New("negative health cache ttl")
		}
		s.healthTTL = d
		return nil
	}
}

// WithResumeWindow bounds what the engine keeps of streamed tasks for
// resumption, repeated CALLs and late cancels (tasks.go).
func WithResumeWindow(w ResumeWindow) Option {
	return func(s *settings) error {
		if w.Tasks < 1 || w.Events < 1 || w.Bytes < 1 || w.TTL <= 0 || w.Grace <= 0 {
			return fmt.Errorf("resume window %+v: every bound must be positive", w)
		}
		s.resume = w
		return nil
	}
}
