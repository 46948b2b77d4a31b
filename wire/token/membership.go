package token

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// DomainMembership signs membership credentials, a meshnode addition
// (docs/spec-decisions.md, "Mesh authorisation: membership credentials").
const DomainMembership = "meshnode:membership-credential:v1\n"

const (
	// MembershipGrace is the clock-skew allowance of membership
	// credentials, the same as consumer tokens'.
	MembershipGrace = ConsumerGrace
	// MaxMembershipLifetime is the longest exp−iat a verifier accepts: a
	// credential minted with a stolen key cannot outlive a day.
	MaxMembershipLifetime = 24 * time.Hour
	// DefaultMembershipLifetime is what a directory issues unless
	// configured otherwise; nodes renew at half-life.
	DefaultMembershipLifetime = 6 * time.Hour
	maxMembershipIntents      = 64
)

// ErrPeer: the credential names another libp2p peer or node than the one
// the transport authenticated.
var ErrPeer = errors.New("membership credential issued to another peer")

// Membership is the claim set of a membership credential: the directory
// (iss) states that node sub, reachable as libp2p peer peer_id (the peer ID
// of the key sub derives from), is a registered member serving intents,
// from iat until exp. It authorises its holder to call any mesh peer that
// trusts iss's key; it names no audience.
type Membership struct {
	V       int      `json:"v"`
	Iss     string   `json:"iss"`
	Sub     string   `json:"sub"`
	PeerID  string   `json:"peer_id"`
	Intents []string `json:"intents"`
	IAT     int64    `json:"iat"`
	Exp     int64    `json:"exp"`
}

// MembershipCheck is what a verifier knows of the presenting peer, both
// proven by the transport's secure channel.
type MembershipCheck struct {
	PeerID string
	NodeID string
}

// SignMembership mints a membership credential (the directory's side).
func SignMembership(key ed25519.PrivateKey, m Membership) (string, error) {
	return Sign(key, DomainMembership, m)
}

// VerifyMembership checks a membership credential: signature by one of keys
// under DomainMembership, v=1, peer_id and sub equal to the authenticated
// peer's, lifetime at most MaxMembershipLifetime, and Live at now with
// MembershipGrace. An expired credential yields ErrExpired together with
// its claims, so the caller can name the expiry.
func VerifyMembership(keys []ed25519.PublicKey, tok string, want MembershipCheck, now time.Time) (*Membership, error) {
	var m Membership
	if err := Open(keys, DomainMembership, tok, &m); err != nil {
		return nil, err
	}
	switch {
	case m.V != 1:
		return nil, ErrVersion
	case m.Sub == "" || m.PeerID == "":
		return nil, ErrMissingClaim
	case len(m.Intents) > maxMembershipIntents:
		return nil, fmt.Errorf("intents: %w", ErrMalformed)
	case want.PeerID == "" || m.PeerID != want.PeerID || want.NodeID == "" || m.Sub != want.NodeID:
		return nil, ErrPeer
	case m.Exp > m.IAT && time.Duration(m.Exp-m.IAT)*time.Second > MaxMembershipLifetime:
		return nil, ErrLifetime
	}
	if err := Live(now, m.IAT, m.Exp, MembershipGrace); err != nil {
		return &m, err
	}
	return &m, nil
}

// PeerIDFromKey is the libp2p peer ID of an Ed25519 public key, as text:
// base58btc of the identity multihash of the key's protobuf encoding
// (libp2p peer-ids spec; keys of 42 bytes or fewer are inlined). The
// directory uses it to bind a credential to the key a node registered,
// without importing libp2p.
func PeerIDFromKey(pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", errors.New("not an Ed25519 public key")
	}
	// multihash(identity=0x00, len=36) || protobuf{1: KeyType Ed25519=1, 2: bytes(32)}
	b := make([]byte, 0, 38)
	b = append(b, 0x00, 0x24, 0x08, 0x01, 0x12, 0x20)
	b = append(b, pub...)
	return base58(b), nil
}

const b58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// base58 encodes b in the Bitcoin alphabet (leading zero bytes as '1').
func base58(b []byte) string {
	zeros := 0
	for zeros < len(b) && b[zeros] == 0 {
		zeros++
	}
	// log(256)/log(58) ≈ 1.37
	digits := make([]byte, 0, len(b)*138/100+1)
	for _, v := range b[zeros:] {
		carry := int(v)
		for i := range digits {
			carry += int(digits[i]) << 8
			digits[i] = byte(carry % 58)
			carry /= 58
		}
		for carry > 0 {
			digits = append(digits, byte(carry%58))
			carry /= 58
		}
	}
	out := make([]byte, 0, zeros+len(digits))
	for range zeros {
		out = append(out, '1')
	}
	for i := len(digits) - 1; i >= 0; i-- {
		out = append(out, b58Alphabet[digits[i]])
	}
	return string(out)
}
