package node

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"time"
)

// Consumer tokens (iicp-dir.md §3.12, iicp-core.md §3.1 errata v1.5.2):
//
//	token   = b64url(payload) "." hex(signature)
//	signed  = "iicp:consumer-token:v1\n" || b64url(payload)   (the ASCII text, not the decoded bytes)
//	payload = {"v":1,"iss","sub","aud","intent","iat","exp"}
//
// The node verifies offline against the directory's published Ed25519 key(s)
// and accepts when aud is its own node_id, intent matches or is "*", and exp
// has not passed by more than ConsumerTokenGrace.

// consumerTokenDomain separates consumer-token signatures from every other
// Ed25519 signature made with the directory key.
const consumerTokenDomain = "iicp:consumer-token:v1\n"

// MaxConsumerTokenLen bounds the header we parse; a real token is ~400 bytes.
const MaxConsumerTokenLen = 4096

// Consumer-token rejection reasons. They are safe to log: none carries any
// part of the token.
var (
	ErrTokenMalformed = errors.New("consumer token malformed")
	ErrTokenSignature = errors.New("consumer token signature invalid")
	ErrTokenVersion   = errors.New("consumer token version unsupported")
	ErrTokenAudience  = errors.New("consumer token audience is another node")
	ErrTokenIntent    = errors.New("consumer token not valid for this intent")
	ErrTokenExpired   = errors.New("consumer token expired")
	ErrTokenNoKey     = errors.New("no directory key configured")
)

// ConsumerClaims are the verified payload fields of a consumer token.
type ConsumerClaims struct {
	V      int    `json:"v"`
	Iss    string `json:"iss"`
	Sub    string `json:"sub"`
	Aud    string `json:"aud"`
	Intent string `json:"intent"`
	Iat    int64  `json:"iat"`
	Exp    int64  `json:"exp"`
}

// ConsumerTokenVerifier checks consumer tokens against the directory keys it
// currently holds. Keys are replaced atomically (the directory may rotate
// its key; the node refetches GET /api/v1/directory-key).
type ConsumerTokenVerifier struct {
	keys atomic.Pointer[[]ed25519.PublicKey]
}

// NewConsumerTokenVerifier returns a verifier holding keys (may be none).
func NewConsumerTokenVerifier(keys ...ed25519.PublicKey) *ConsumerTokenVerifier {
	v := &ConsumerTokenVerifier{}
	v.SetKeys(keys...)
	return v
}

// SetKeys replaces the trusted directory keys. Keys of the wrong size are dropped.
func (v *ConsumerTokenVerifier) SetKeys(keys ...ed25519.PublicKey) {
	ks := make([]ed25519.PublicKey, 0, len(keys))
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize {
			ks = append(ks, bytes.Clone(k))
		}
	}
	v.keys.Store(&ks)
}

// HasKeys reports whether any directory key is configured. Without one the
// node MUST fall back to node_token validation (iicp-dir.md §3.12).
func (v *ConsumerTokenVerifier) HasKeys() bool {
	ks := v.keys.Load()
	return ks != nil && len(*ks) > 0
}

// Verify checks token for a CALL to nodeID with intent at time now.
func (v *ConsumerTokenVerifier) Verify(token, nodeID, intent string, now time.Time) (*ConsumerClaims, error) {
	ks := v.keys.Load()
	if ks == nil || len(*ks) == 0 {
		return nil, ErrTokenNoKey
	}
	if len(token) > MaxConsumerTokenLen {
		return nil, ErrTokenMalformed
	}
	b64, sigHex, ok := strings.Cut(token, ".")
	if !ok || b64 == "" || len(sigHex) != 2*ed25519.SignatureSize {
		return nil, ErrTokenMalformed
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil {
		return nil, ErrTokenMalformed
	}
	msg := make([]byte, 0, len(consumerTokenDomain)+len(b64))
	msg = append(append(msg, consumerTokenDomain...), b64...)
	if !verifyAny(*ks, msg, sig) {
		return nil, ErrTokenSignature
	}
	// Issuers emit unpadded base64url (RFC 7515 style); tolerate padding,
	// which the signature already covers.
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(b64, "="))
	if err != nil {
		return nil, ErrTokenMalformed
	}
	var c ConsumerClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, ErrTokenMalformed
	}
	return &c, c.check(nodeID, intent, now)
}

func (c *ConsumerClaims) check(nodeID, intent string, now time.Time) error {
	switch {
	case c.V != 1:
		return ErrTokenVersion
	case nodeID == "" || c.Aud != nodeID:
		return ErrTokenAudience
	case c.Intent != "*" && c.Intent != intent:
		return ErrTokenIntent
	case c.Exp == 0 || now.After(time.Unix(c.Exp, 0).Add(ConsumerTokenGrace)):
		return ErrTokenExpired
	}
	return nil
}

func verifyAny(keys []ed25519.PublicKey, msg, sig []byte) bool {
	for _, k := range keys {
		if ed25519.Verify(k, msg, sig) {
			return true
		}
	}
	return false
}
