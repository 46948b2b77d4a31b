package signedtoken

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Signing domains (iicp-dir.md §3.12 and §3.4).
const (
	DomainConsumerToken = "iicp:consumer-token:v1\n"
	DomainRouteTicket   = "iicp:dispatch-route-ticket:v1\n"
)

// Route ticket constants (iicp-dir.md §3.4).
const (
	TicketType     = "dispatch-route-ticket"
	TicketAudience = "iicp.directory.dispatch"
)

// MaxTokenLen bounds what Verify will even look at; a real token is < 1 KiB.
const MaxTokenLen = 4096

// Sentinel errors for branching; Verify wraps them with the failing step.
var (
	ErrMalformed = errors.New("malformed token")
	ErrSignature = errors.New("bad signature")
	ErrExpired   = errors.New("token expired")
	ErrClaims    = errors.New("claims do not match")
)

// RouteTicket is the v1 dispatch route ticket claim set. Field order is the
// fixture's order, so our encoding is byte-identical to the reference.
type RouteTicket struct {
	V      int    `json:"v"`
	Typ    string `json:"typ"`
	Iss    string `json:"iss"`
	Aud    string `json:"aud"`
	JTI    string `json:"jti"`
	NodeID string `json:"node_id"`
	Intent string `json:"intent"`
	IAT    int64  `json:"iat"`
	Exp    int64  `json:"exp"`
}

// ConsumerToken is the consumer-token claim set (iicp-dir.md §3.12).
type ConsumerToken struct {
	V      int    `json:"v"`
	Iss    string `json:"iss"`
	Sub    string `json:"sub"`
	Aud    string `json:"aud"`
	Intent string `json:"intent"`
	IAT    int64  `json:"iat"`
	Exp    int64  `json:"exp"`
}

// Sign encodes claims as JSON, then returns `b64url.sighex` signed under domain.
func Sign(key ed25519.PrivateKey, domain string, claims any) (string, error) {
	raw, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding claims: %w", err)
	}
	payload := base64.RawURLEncoding.EncodeToString(raw)
	sig := ed25519.Sign(key, signingBytes(domain, payload))
	return payload + "." + hex.EncodeToString(sig), nil
}

// Open checks the signature of token under domain and decodes its claims
// into out. It does not check expiry or claim values; see VerifyRouteTicket
// and VerifyConsumerToken.
func Open(pub ed25519.PublicKey, domain, token string, out any) error {
	if len(token) == 0 || len(token) > MaxTokenLen {
		return fmt.Errorf("checking length: %w", ErrMalformed)
	}
	payload, sigHex, ok := strings.Cut(token, ".")
	if !ok || payload == "" || strings.Contains(sigHex, ".") {
		return fmt.Errorf("splitting token: %w", ErrMalformed)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("decoding signature: %w", ErrMalformed)
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return fmt.Errorf("decoding payload: %w", ErrMalformed)
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, signingBytes(domain, payload), sig) {
		return fmt.Errorf("verifying: %w", ErrSignature)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decoding claims: %w", ErrMalformed)
	}
	return nil
}

// VerifyRouteTicket checks a route ticket's signature, type, audience,
// issuer, node, intent and expiry (the fixture's validation vectors).
func VerifyRouteTicket(pub ed25519.PublicKey, token, issuer, nodeID, intent string, nowUnix int64) (*RouteTicket, error) {
	var c RouteTicket
	if err := Open(pub, DomainRouteTicket, token, &c); err != nil {
		return nil, err
	}
	switch {
	case c.V != 1 || c.Typ != TicketType:
		return nil, fmt.Errorf("checking version/type: %w", ErrClaims)
	case c.Aud != TicketAudience:
		return nil, fmt.Errorf("checking audience: %w", ErrClaims)
	case c.Iss != issuer:
		return nil, fmt.Errorf("checking issuer: %w", ErrClaims)
	case c.NodeID != nodeID:
		return nil, fmt.Errorf("checking node: %w", ErrClaims)
	case c.Intent != intent:
		return nil, fmt.Errorf("checking intent: %w", ErrClaims)
	case nowUnix >= c.Exp:
		return nil, ErrExpired
	}
	return &c, nil
}

// VerifyConsumerToken checks a consumer token as a provider must
// (iicp-dir.md §3.12): signature, v=1, aud = own node, intent equal or "*",
// exp in the future allowing graceS seconds.
func VerifyConsumerToken(pub ed25519.PublicKey, token, ownNodeID, intent string, nowUnix, graceS int64) (*ConsumerToken, error) {
	var c ConsumerToken
	if err := Open(pub, DomainConsumerToken, token, &c); err != nil {
		return nil, err
	}
	switch {
	case c.V != 1:
		return nil, fmt.Errorf("checking version: %w", ErrClaims)
	case c.Aud != ownNodeID:
		return nil, fmt.Errorf("checking audience: %w", ErrClaims)
	case c.Intent != "*" && c.Intent != intent:
		return nil, fmt.Errorf("checking intent: %w", ErrClaims)
	case nowUnix >= c.Exp+graceS:
		return nil, ErrExpired
	}
	return &c, nil
}

// Prefix returns a log-safe truncation of an identifier (never of a token).
func Prefix(id string, n int) string {
	if len(id) <= n {
		return id
	}
	return id[:n]
}

func signingBytes(domain, payload string) []byte {
	b := make([]byte, 0, len(domain)+len(payload))
	b = append(b, domain...)
	return append(b, payload...)
}
