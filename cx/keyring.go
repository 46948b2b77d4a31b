package cx

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Key ring defaults (one table; see Option for the knobs).
const (
	// DefaultLifetime is how long a key is advertised (not_after - created).
	// Shorter than the 90-day ceiling so a node that sleeps through one
	// rotation still never serves a key older than MaxLifetime.
	DefaultLifetime = 30 * 24 * time.Hour
	// MaxLifetime is the spec ceiling (§3.1 not_after SHOULD ≤ 90 days, CX-NODE-01).
	MaxLifetime = 90 * 24 * time.Hour
	// DefaultRotateBefore rotates this long before not_after, so consumers
	// holding a cached discover result never see an expired key.
	DefaultRotateBefore = 7 * 24 * time.Hour
	// DefaultGrace keeps a rotated-out key decrypting this long: enough for
	// the directory to learn the new key at the next heartbeat and for
	// consumers' discover caches (§9 Q1 suggests 5 minutes) to refresh.
	DefaultGrace = 24 * time.Hour
	// MaxGrace bounds the grace period: a retired key must die.
	MaxGrace = 7 * 24 * time.Hour
	// MaxKeys bounds the ring (one current plus retired keys in grace).
	MaxKeys = 8
	// DefaultMaintainInterval is how often Serve checks rotation and expiry.
	DefaultMaintainInterval = time.Hour
)

// spkiX25519Prefix is the DER SubjectPublicKeyInfo header of an X25519 key
// (RFC 8410); key_id hashes prefix||key (§3.1 "sha256 of DER-encoded key").
var spkiX25519Prefix = []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00}

// KeyID derives the spec key_id of an X25519 public key: the first 8 bytes
// of SHA-256 over its DER SubjectPublicKeyInfo, as 16 lowercase hex chars
// (§3.1, §4.1 "8-hex-byte key_id").
func KeyID(pub *ecdh.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil { // only for non-X25519 curves; fall back to the fixed header
		der = append(slices.Clone(spkiX25519Prefix), pub.Bytes()...)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8])
}

// SDKKeyID is the key_id form the public SDKs generate: "cx-" and the first
// 16 hex chars of SHA-256 over the raw 32-byte key. The ring answers to it
// too, so a consumer holding either form reaches the key (docs/cx.md, D1).
func SDKKeyID(pub *ecdh.PublicKey) string {
	sum := sha256.Sum256(pub.Bytes())
	return "cx-" + hex.EncodeToString(sum[:8])
}

// ringKey is one key pair of the ring.
type ringKey struct {
	priv     *ecdh.PrivateKey
	id       string
	alias    string
	created  time.Time
	notAfter time.Time
	// retired is when the key stopped being current (zero while current).
	retired time.Time
}

func newRingKey(priv *ecdh.PrivateKey, created time.Time, lifetime time.Duration) *ringKey {
	pub := priv.PublicKey()
	return &ringKey{
		priv:     priv,
		id:       KeyID(pub),
		alias:    SDKKeyID(pub),
		created:  created.UTC().Truncate(time.Second),
		notAfter: created.UTC().Truncate(time.Second).Add(lifetime),
	}
}

// KeyRing holds the node's CX X25519 keys: one current key that is
// advertised, plus recently rotated keys that still decrypt for a bounded
// grace period. It is safe for concurrent use.
type KeyRing struct {
	mu     sync.RWMutex
	path   string // "" keeps the ring in memory only
	nodeID string
	keys   []*ringKey // keys[0] is current; the rest are retired, newest first
	cfg    ringConfig
}

type ringConfig struct {
	lifetime     time.Duration
	rotateBefore time.Duration
	grace        time.Duration
	features     []string
	now          func() time.Time
	onRotate     func(wire.CXPublicKey)
	interval     time.Duration
	log          *slog.Logger
}

// Option configures a KeyRing; invalid values are reported by OpenKeyRing.
type Option func(*ringConfig) error

// WithLifetime sets how long each key is advertised (0 < d ≤ MaxLifetime).
func WithLifetime(d time.Duration) Option {
	return func(c *ringConfig) error {
		if d <= 0 || d > MaxLifetime {
			return fmt.Errorf("cx: key lifetime %v outside (0, %v]", d, MaxLifetime)
		}
		c.lifetime = d
		return nil
	}
}

// WithRotateBefore rotates when the current key is within d of not_after.
func WithRotateBefore(d time.Duration) Option {
	return func(c *ringConfig) error {
		if d < 0 {
			return fmt.Errorf("cx: rotate-before %v is negative", d)
		}
		c.rotateBefore = d
		return nil
	}
}

// WithGrace sets how long a rotated-out key still decrypts (0 ≤ d ≤ MaxGrace).
func WithGrace(d time.Duration) Option {
	return func(c *ringConfig) error {
		if d < 0 || d > MaxGrace {
			return fmt.Errorf("cx: grace %v outside [0, %v]", d, MaxGrace)
		}
		c.grace = d
		return nil
	}
}

// WithFeatures replaces the advertised cx_public_key.features (default:
// response_encryption_v1, which Provider implements).
func WithFeatures(f ...string) Option {
	return func(c *ringConfig) error { c.features = slices.Clone(f); return nil }
}

// WithClock injects the clock (tests).
func WithClock(now func() time.Time) Option {
	return func(c *ringConfig) error {
		if now == nil {
			return errors.New("cx: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithOnRotate is called (outside the ring's lock) with the new public key
// after every rotation, so the directory client can re-register it.
func WithOnRotate(f func(wire.CXPublicKey)) Option {
	return func(c *ringConfig) error { c.onRotate = f; return nil }
}

// WithMaintainInterval sets how often Serve runs Maintain (> 0).
func WithMaintainInterval(d time.Duration) Option {
	return func(c *ringConfig) error {
		if d <= 0 {
			return fmt.Errorf("cx: maintain interval %v must be positive", d)
		}
		c.interval = d
		return nil
	}
}

// WithLogger sets the ring's logger (key ids only; never key material).
func WithLogger(l *slog.Logger) Option {
	return func(c *ringConfig) error {
		if l == nil {
			return errors.New("cx: nil logger")
		}
		c.log = l
		return nil
	}
}

// OpenKeyRing loads the ring stored at path, or creates one with a fresh key
// (file mode 0600, written atomically). path "" keeps the ring in memory.
// nodeID binds the ring to one node_id: a ring stored for another node_id
// is discarded and replaced, never reused (CX-NODE-02). Keys due for
// rotation or past their grace are handled before OpenKeyRing returns.
func OpenKeyRing(path, nodeID string, opts ...Option) (*KeyRing, error) {
	cfg := ringConfig{
		lifetime:     DefaultLifetime,
		rotateBefore: DefaultRotateBefore,
		grace:        DefaultGrace,
		features:     []string{FeatureResponseEncryption},
		now:          time.Now,
		interval:     DefaultMaintainInterval,
		log:          slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.rotateBefore >= cfg.lifetime {
		return nil, fmt.Errorf("cx: rotate-before %v must be shorter than the key lifetime %v", cfg.rotateBefore, cfg.lifetime)
	}
	r := &KeyRing{path: path, nodeID: nodeID, cfg: cfg}
	if path != "" {
		keys, storedNode, err := loadRing(path)
		switch {
		case errors.Is(err, errNoRing):
		case err != nil:
			return nil, err
		case storedNode == nodeID || storedNode == "":
			r.keys = keys
		case nodeID == "":
			r.keys, r.nodeID = keys, storedNode
		default:
			cfg.log.Info("cx: stored key ring belongs to another node_id; generating a new one (CX-NODE-02)")
		}
	}
	if _, err := r.Maintain(); err != nil {
		return nil, err
	}
	return r, nil
}

// PublicKey is the current key as advertised in REGISTER, HEARTBEAT and
// discover (§3.1, CX-01): algorithm X25519, base64url key, the spec key_id,
// not_after in RFC 3339 UTC, hybrid_pq null, and the feature list.
func (r *KeyRing) PublicKey() wire.CXPublicKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.publicLocked(r.keys[0])
}

func (r *KeyRing) publicLocked(k *ringKey) wire.CXPublicKey {
	return wire.CXPublicKey{
		Algorithm: Algorithm,
		Encoding:  Encoding,
		Key:       encode(k.priv.PublicKey().Bytes()),
		KeyID:     k.id,
		NotAfter:  k.notAfter.Format(time.RFC3339),
		HybridPQ:  json.RawMessage("null"),
		Features:  slices.Clone(r.cfg.features),
	}
}

// Rotate makes a fresh key current now; the previous key keeps decrypting
// for the grace period.
func (r *KeyRing) Rotate() error {
	r.mu.Lock()
	pub, err := r.rotateLocked(r.cfg.now())
	r.mu.Unlock()
	if err == nil && r.cfg.onRotate != nil {
		r.cfg.onRotate(pub)
	}
	return err
}

// Maintain rotates the current key when it is within the rotate-before
// window of not_after (or missing), and drops retired keys past their
// grace. It reports whether it rotated.
func (r *KeyRing) Maintain() (rotated bool, err error) {
	r.mu.Lock()
	now := r.cfg.now()
	pruned := r.pruneLocked(now)
	var pub wire.CXPublicKey
	if len(r.keys) == 0 || !r.keys[0].retired.IsZero() || !now.Before(r.keys[0].notAfter.Add(-r.cfg.rotateBefore)) {
		pub, err = r.rotateLocked(now)
		rotated = err == nil
	} else if pruned {
		err = r.saveLocked(r.keys)
	}
	r.mu.Unlock()
	if rotated && r.cfg.onRotate != nil {
		r.cfg.onRotate(pub)
	}
	return rotated, err
}

// rotateLocked generates a key, persists the new ring, then swaps it in, so
// a failed write leaves the ring as it was.
func (r *KeyRing) rotateLocked(now time.Time) (wire.CXPublicKey, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return wire.CXPublicKey{}, fmt.Errorf("cx: generating X25519 key: %w", err)
	}
	fresh := newRingKey(priv, now, r.cfg.lifetime)
	next := make([]*ringKey, 0, len(r.keys)+1)
	next = append(next, fresh)
	for i, k := range r.keys {
		c := *k
		if i == 0 && c.retired.IsZero() {
			c.retired = now.UTC().Truncate(time.Second)
		}
		next = append(next, &c)
	}
	if len(next) > MaxKeys {
		next = next[:MaxKeys]
	}
	if err := r.saveLocked(next); err != nil {
		return wire.CXPublicKey{}, err
	}
	r.keys = next
	return r.publicLocked(fresh), nil
}

// pruneLocked drops retired keys whose grace ended; it reports a change.
func (r *KeyRing) pruneLocked(now time.Time) bool {
	n := len(r.keys)
	r.keys = slices.DeleteFunc(r.keys, func(k *ringKey) bool {
		return !k.retired.IsZero() && !now.Before(k.retired.Add(r.cfg.grace))
	})
	return len(r.keys) != n
}

func (r *KeyRing) saveLocked(keys []*ringKey) error {
	if r.path == "" {
		return nil
	}
	return saveRing(r.path, r.nodeID, keys)
}

// lookup finds the private key for a recipient_key_id (spec or SDK form).
// A retired key past its grace, or any key past not_after, does not decrypt.
func (r *KeyRing) lookup(keyID string) (*ecdh.PrivateKey, failure) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	now := r.cfg.now()
	for _, k := range r.keys {
		if k.id != keyID && k.alias != keyID {
			continue
		}
		if !k.retired.IsZero() && !now.Before(k.retired.Add(r.cfg.grace)) {
			return nil, failUnknownKey
		}
		if !now.Before(k.notAfter) {
			return nil, failExpired
		}
		return k.priv, failNone
	}
	return nil, failUnknownKey
}

// KeyIDs lists the key ids that currently decrypt, current first (for
// status output; key ids are public).
func (r *KeyRing) KeyIDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.keys))
	for _, k := range r.keys {
		out = append(out, k.id)
	}
	return out
}

// CurrentAge is how long ago the current key was created (the
// meshnode_cx_key_age_seconds gauge: an operator alerts when rotation
// stalls).
func (r *KeyRing) CurrentAge() time.Duration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cfg.now().Sub(r.keys[0].created)
}

// Serve runs Maintain every maintain interval until ctx ends, so keys rotate
// on schedule in a long-running node (CX-NODE-01, CX-07). A failed rotation
// is logged and retried at the next tick; the current key keeps working.
func (r *KeyRing) Serve(ctx context.Context) error {
	t := time.NewTicker(r.cfg.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			rotated, err := r.Maintain()
			if err != nil {
				r.cfg.log.Warn("cx: key ring maintenance failed", "error", err)
				continue
			}
			if rotated {
				r.cfg.log.Info("cx: rotated CX key", "key_id", r.PublicKey().KeyID)
			}
		}
	}
}
