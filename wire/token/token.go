package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Signing domains (iicp-dir.md §3.12 and §3.4).
const (
	DomainConsumerToken = "iicp:consumer-token:v1\n"
	DomainRouteTicket   = "iicp:dispatch-route-ticket:v1\n"
)

// MaxLen bounds what Open will even look at; a real token is < 1 KiB.
const MaxLen = 4096

// Why a token is refused. They name the failing check and carry no part of
// the token, so they are safe to log.
var (
	ErrMalformed    = errors.New("token malformed")
	ErrSignature    = errors.New("token signature invalid")
	ErrNoKey        = errors.New("no directory key configured")
	ErrVersion      = errors.New("token version unsupported")
	ErrClaims       = errors.New("token claims do not match")
	ErrAudience     = errors.New("token audience is another node")
	ErrSubject      = errors.New("token subject is not the authenticated caller")
	ErrIntent       = errors.New("token not valid for this intent")
	ErrExpired      = errors.New("token expired")
	ErrNotYetValid  = errors.New("token issued in the future")
	ErrLifetime     = errors.New("token lifetime exceeds the maximum")
	ErrReplay       = errors.New("token already used")
	ErrReplayFull   = errors.New("too many live tokens to track; retry with a fresh token")
	ErrMissingClaim = errors.New("token lacks a required claim")
)

// Sign encodes claims as JSON and returns `b64url.sighex` signed under domain.
func Sign(key ed25519.PrivateKey, domain string, claims any) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", errors.New("signing key is not an Ed25519 private key")
	}
	raw, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding claims: %w", err)
	}
	payload := base64.RawURLEncoding.EncodeToString(raw)
	sig := ed25519.Sign(key, signingBytes(domain, payload))
	return payload + "." + hex.EncodeToString(sig), nil
}

// Open checks token's signature under domain against any of keys and only
// then decodes its claims into out. It checks no claim; the Verify
// functions do. Issuers emit unpadded base64url (RFC 7515 style); trailing
// padding is tolerated when it was signed that way.
func Open(keys []ed25519.PublicKey, domain, token string, out any) error {
	if len(keys) == 0 {
		return ErrNoKey
	}
	if token == "" || len(token) > MaxLen {
		return fmt.Errorf("checking length: %w", ErrMalformed)
	}
	payload, sigHex, ok := strings.Cut(token, ".")
	if !ok || payload == "" || len(sigHex) != 2*ed25519.SignatureSize {
		return fmt.Errorf("splitting token: %w", ErrMalformed)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil {
		return fmt.Errorf("decoding signature: %w", ErrMalformed)
	}
	if !verifyAny(keys, signingBytes(domain, payload), sig) {
		return ErrSignature
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return fmt.Errorf("decoding payload: %w", ErrMalformed)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decoding claims: %w", ErrMalformed)
	}
	return nil
}

// Live is the one validity rule of every token kind: valid from iat−grace
// until exp+grace, the end excluded. grace absorbs clock skew between the
// directory that minted the token and the verifier; a token with exp not
// after iat was never valid.
func Live(now time.Time, iat, exp int64, grace time.Duration) error {
	switch {
	case exp <= iat || !now.Before(time.Unix(exp, 0).Add(grace)):
		return ErrExpired
	case time.Unix(iat, 0).After(now.Add(grace)):
		return ErrNotYetValid
	}
	return nil
}

// Prefix returns a log-safe truncation of an identifier (a jti, a node_id),
// never of a token.
func Prefix(id string, n int) string {
	if len(id) <= n {
		return id
	}
	return id[:n]
}

func verifyAny(keys []ed25519.PublicKey, msg, sig []byte) bool {
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, sig) {
			return true
		}
	}
	return false
}

func signingBytes(domain, payload string) []byte {
	b := make([]byte, 0, len(domain)+len(payload))
	b = append(b, domain...)
	return append(b, payload...)
}
