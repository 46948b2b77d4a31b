package federation

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Replica tokens are compact JWS (RFC 7515) with alg EdDSA (RFC 8037),
// signed by the seed key: role "replica", scope "snapshot" (S.13 §7.1,
// v0.3.8: new tokens are scoped to snapshot bootstrap). The jti is stored
// on the replica row, so rotation and deregistration invalidate every
// earlier token of that replica even before it expires (DIR-FED-13/22/23).

// Token roles and scope.
const (
	tokenRole  = "replica"
	tokenScope = "snapshot"
	// ReplicaTokenTTL is the replica_token lifetime (S.13 §7.1: 90 days).
	ReplicaTokenTTL = 90 * 24 * time.Hour
	maxTokenLen     = 2048
)

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","typ":"JWT"}`))

// ReplicaClaims is the claim set of a replica token.
type ReplicaClaims struct {
	Iss   string `json:"iss"`
	Sub   string `json:"sub"` // replica_id
	Role  string `json:"role"`
	Scope string `json:"scope"`
	JTI   string `json:"jti"`
	IAT   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
}

// ErrToken is any token that fails to verify; the caller answers 401
// without saying which check failed.
var ErrToken = errors.New("invalid replica token")

func signReplicaToken(key ed25519.PrivateKey, c ReplicaClaims) (string, error) {
	raw, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	input := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(raw)
	return input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(input))), nil
}

// verifyReplicaToken checks signature, header, role, scope and expiry. The
// row checks (status, jti) are the caller's (CheckStanding).
func verifyReplicaToken(pub ed25519.PublicKey, tok string, now time.Time) (*ReplicaClaims, error) {
	if len(tok) > maxTokenLen {
		return nil, ErrToken
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		return nil, ErrToken
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, ErrToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, ErrToken
	}
	var c ReplicaClaims
	if err := json.Unmarshal(raw, &c); err != nil || c.Role != tokenRole || c.Scope != tokenScope || c.Sub == "" || c.JTI == "" {
		return nil, ErrToken
	}
	if now.Unix() >= c.Exp {
		return nil, ErrToken
	}
	return &c, nil
}

// bearer extracts the token of an "Authorization: Bearer" header.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}
