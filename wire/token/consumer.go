package token

import (
	"crypto/ed25519"
	"fmt"
	"sync"
	"time"
)

const (
	// ConsumerGrace is the clock-skew allowance past exp (and before iat)
	// for consumer tokens: the 10 s errata v1.5.2 permits.
	ConsumerGrace = 10 * time.Second
	// MaxConsumerLifetime is the longest exp−iat a verifier accepts: the
	// spec's consumer-token TTL (iicp-dir.md §3.12, "iat + 300"), so a
	// token minted with a stolen key and a 100-year expiry is refused.
	MaxConsumerLifetime = 300 * time.Second
	// JTIMinLen is the shortest jti this package mints and accepts: 128
	// bits as 32 hex characters (the bind-ticket rule, iicp-dir.md §7.4).
	JTIMinLen = 32
	maxJTILen = 128
)

// Consumer is the consumer-token claim set (iicp-dir.md §3.12). JTI is a
// meshnode addition (docs/spec-decisions.md): our directory mints one when
// the caller asks for a single-use token, and a verifier accepts each jti
// once within its lifetime; tokens without one stay reusable until exp
// (bound by aud, sub and the lifetime cap only), as §3.12 and the deployed
// SDKs expect.
type Consumer struct {
	V      int    `json:"v"`
	Iss    string `json:"iss"`
	Sub    string `json:"sub"`
	Aud    string `json:"aud"`
	Intent string `json:"intent"`
	IAT    int64  `json:"iat"`
	Exp    int64  `json:"exp"`
	JTI    string `json:"jti,omitempty"`
}

// ConsumerCheck is what a verifier expects of a consumer token.
type ConsumerCheck struct {
	// Audience is the verifying node's own node_id (required).
	Audience string
	// Intent is the CALL's intent; the token's must equal it or be "*".
	Intent string
	// Subject is the caller's authenticated node_id (on the mesh: derived
	// from the stream's peer key). Empty where no caller identity is
	// authenticated (HTTP), and then sub is not checked.
	Subject string
}

// SignConsumer mints a consumer token (the directory's side).
func SignConsumer(key ed25519.PrivateKey, c Consumer) (string, error) {
	return Sign(key, DomainConsumerToken, c)
}

// VerifyConsumer checks a consumer token as a provider must (iicp-dir.md
// §3.12, errata v1.5.2): signature by one of keys, v=1, aud = own node,
// sub = the authenticated caller when there is one, intent equal or "*",
// lifetime at most MaxConsumerLifetime, and Live at now with
// ConsumerGrace. It does not consume the jti; see Replay.
func VerifyConsumer(keys []ed25519.PublicKey, tok string, want ConsumerCheck, now time.Time) (*Consumer, error) {
	var c Consumer
	if err := Open(keys, DomainConsumerToken, tok, &c); err != nil {
		return nil, err
	}
	switch {
	case c.V != 1:
		return nil, ErrVersion
	case want.Audience == "" || c.Aud != want.Audience:
		return nil, ErrAudience
	case want.Subject != "" && c.Sub != want.Subject:
		return nil, ErrSubject
	case c.Intent != "*" && c.Intent != want.Intent:
		return nil, ErrIntent
	case c.JTI != "" && (len(c.JTI) < JTIMinLen || len(c.JTI) > maxJTILen):
		return nil, fmt.Errorf("jti length: %w", ErrMalformed)
	case c.Exp > c.IAT && time.Duration(c.Exp-c.IAT)*time.Second > MaxConsumerLifetime:
		return nil, ErrLifetime
	}
	if err := Live(now, c.IAT, c.Exp, ConsumerGrace); err != nil {
		return nil, err
	}
	return &c, nil
}

// Replay remembers the jti of every accepted token until it expires, so a
// captured token is refused the second time (the bind-ticket rule of
// iicp-dir.md §7.4 applied to consumer tokens). It holds at most max
// entries; when full of live entries it refuses new tokens (ErrReplayFull)
// rather than forget one that could then be replayed. Safe for concurrent use.
type Replay struct {
	max int

	mu   sync.Mutex
	seen map[string]int64 // jti → exp + grace (Unix seconds)
}

// NewReplay returns a guard holding at most max live jtis (minimum 1).
func NewReplay(limit int) *Replay {
	return &Replay{max: max(1, limit), seen: make(map[string]int64)}
}

// Use consumes c's jti at now: nil the first time, ErrReplay after. A
// token without a jti passes (nothing to consume).
func (r *Replay) Use(c *Consumer, now time.Time) error {
	if c.JTI == "" {
		return nil
	}
	key := c.Aud + "\x00" + c.JTI
	until := time.Unix(c.Exp, 0).Add(ConsumerGrace).Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seen[key]; ok {
		return ErrReplay
	}
	if len(r.seen) >= r.max {
		r.pruneLocked(now.Unix())
		if len(r.seen) >= r.max {
			return ErrReplayFull
		}
	}
	r.seen[key] = until
	return nil
}

// Len is the number of jtis held.
func (r *Replay) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// Prune forgets the jtis of tokens no longer live at now.
func (r *Replay) Prune(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(now.Unix())
}

func (r *Replay) pruneLocked(now int64) {
	for k, until := range r.seen {
		if until <= now {
			delete(r.seen, k)
		}
	}
}
