package federation

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/meshnode/meshnode/internal/jcs"
	"github.com/meshnode/meshnode/wire"
)

// EventType is a federated event type (iicp-federated-directory.md §5.1).
type EventType string

// The closed federated event set (S.13 §5.1, DIR-FED-16). Heartbeats, score
// and reputation updates are state, not state change: they stay ephemeral on
// the seed (ADR-033) and reach replicas only through snapshots.
const (
	EventRegister            EventType = "REGISTER"
	EventDeregister          EventType = "DEREGISTER"
	EventCreditAward         EventType = "CREDIT_AWARD"
	EventReplicaRegistered   EventType = "REPLICA_REGISTERED"
	EventReplicaDeregistered EventType = "REPLICA_DEREGISTERED"
	EventReputationDecay     EventType = "REPUTATION_DECAY"
	EventOperatorObserved    EventType = "OPERATOR_OBSERVED"
)

var federatedTypes = map[EventType]bool{
	EventRegister: true, EventDeregister: true, EventCreditAward: true,
	EventReplicaRegistered: true, EventReplicaDeregistered: true,
	EventReputationDecay: true, EventOperatorObserved: true,
}

// Federated reports whether t belongs to the closed federated set.
func (t EventType) Federated() bool { return federatedTypes[t] }

// GenesisRoot is prev_hash for the first signed event of a chain:
// SHA256_hex("iicp:dir:event-log:genesis:v1") (S.13 §5.1, #458).
const GenesisRoot = "c44802bedf3e63b5a3f1634c5d19263634f92f26dd15401b09b06dd53a80cf9d"

// Wire limits for one event.
const (
	// MaxPayloadBytes caps an event payload. A REGISTER with 64
	// capabilities is a few KiB; 64 KiB matches wire.MaxControlBytes.
	MaxPayloadBytes = 64 << 10
	maxIDLen        = 128
)

// Event is one signed entry of the federated log, as served by
// GET /v1/events. Payload holds the RFC 8785 form of the payload so the
// same bytes are served every time (DIR-FED-EVENTCHAIN-01).
type Event struct {
	EventID   string          `json:"event_id"`
	EventType EventType       `json:"event_type"`
	Seq       int64           `json:"seq"`
	TsMs      int64           `json:"ts_ms"`
	Payload   json.RawMessage `json:"payload"`
	PrevHash  string          `json:"prev_hash"`
	Sig       string          `json:"sig"`
	SignerDID string          `json:"signer_did"`
}

// SigningDigest is SHA256(event_id:event_type:seq:ts_ms:SHA256_hex(jcs(payload)):prev_hash),
// the 32 bytes that Ed25519 signs (S.13 §5.1; the fixture
// federation-chain-v0.json signs the binary digest).
func SigningDigest(ev *Event) ([32]byte, error) {
	canon, err := jcs.Canonicalize(ev.Payload)
	if err != nil {
		return [32]byte{}, fmt.Errorf("canonicalizing payload: %w", err)
	}
	ph := sha256.Sum256(canon)
	msg := ev.EventID + ":" + string(ev.EventType) + ":" + strconv.FormatInt(ev.Seq, 10) + ":" +
		strconv.FormatInt(ev.TsMs, 10) + ":" + hex.EncodeToString(ph[:]) + ":" + ev.PrevHash
	return sha256.Sum256([]byte(msg)), nil
}

// Sign sets ev.Sig (128 lowercase hex characters, RFC 8032 deterministic).
// ev.PrevHash must already be set.
func Sign(key ed25519.PrivateKey, ev *Event) error {
	d, err := SigningDigest(ev)
	if err != nil {
		return err
	}
	ev.Sig = hex.EncodeToString(ed25519.Sign(key, d[:]))
	return nil
}

// ChainHash is the prev_hash that the successor of an event with signature
// sig carries: SHA256_hex over the signature's 128 hex ASCII bytes.
func ChainHash(sig string) string {
	h := sha256.Sum256([]byte(sig))
	return hex.EncodeToString(h[:])
}

// Rejection reasons; they match the fixture's expected outcomes.
var (
	ErrSequence      = errors.New("non-monotonic seq")
	ErrChainLink     = errors.New("prev_hash does not link to the preceding event")
	ErrSignature     = errors.New("signature invalid")
	ErrSigner        = errors.New("signer_did is not the genesis seed")
	ErrEventType     = errors.New("event type outside the federated set")
	ErrMalformed     = errors.New("malformed event")
	ErrUntrustedRoot = errors.New("untrusted root key")
)

// VerifyError says why an event was refused and which IICP code reports it:
// IICP-E014 for ordering (S.13 §5.3 "seq gap"), IICP-E013 for everything
// that breaks integrity or provenance.
type VerifyError struct {
	Seq    int64
	Reason error
}

func (e *VerifyError) Error() string {
	return "event seq " + strconv.FormatInt(e.Seq, 10) + ": " + e.Reason.Error()
}

func (e *VerifyError) Unwrap() error { return e.Reason }

// Code is the IICP error code for the rejection.
func (e *VerifyError) Code() wire.Code {
	if errors.Is(e.Reason, ErrSequence) {
		return wire.CodeE014
	}
	return wire.CodeE013
}

// WireError renders the rejection for a remote party; it names the seq and
// the reason only, never the payload.
func (e *VerifyError) WireError() *wire.Error { return wire.NewError(e.Code(), e.Error()) }

// ReasonLabel is a bounded metric label for the rejection.
func ReasonLabel(err error) string {
	switch {
	case errors.Is(err, ErrSequence):
		return "sequence"
	case errors.Is(err, ErrChainLink):
		return "chain_link"
	case errors.Is(err, ErrSignature):
		return "signature"
	case errors.Is(err, ErrSigner):
		return "signer"
	case errors.Is(err, ErrEventType):
		return "event_type"
	case errors.Is(err, ErrUntrustedRoot):
		return "untrusted_root"
	default:
		return "malformed"
	}
}

// CheckShape validates the envelope fields that do not need the chain:
// required fields present and bounded, type in the closed set (DIR-FED-10,
// DIR-FED-16), payload a JSON object.
func CheckShape(ev *Event) error {
	fail := func(r error, what string) error {
		return &VerifyError{Seq: ev.Seq, Reason: fmt.Errorf("%w: %s", r, what)}
	}
	switch {
	case ev.EventID == "" || len(ev.EventID) > maxIDLen:
		return fail(ErrMalformed, "event_id")
	case !ev.EventType.Federated():
		return fail(ErrEventType, "event_type")
	case ev.Seq <= 0:
		return fail(ErrMalformed, "seq")
	case ev.TsMs <= 0:
		return fail(ErrMalformed, "ts_ms")
	case len(ev.Payload) == 0 || len(ev.Payload) > MaxPayloadBytes || ev.Payload[0] != '{':
		return fail(ErrMalformed, "payload")
	case len(ev.PrevHash) != 64 || !isLowerHex(ev.PrevHash):
		return fail(ErrMalformed, "prev_hash")
	case len(ev.Sig) != 2*ed25519.SignatureSize || !isLowerHex(ev.Sig):
		return fail(ErrSignature, "sig is not 128 lowercase hex characters")
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// VerifySignature checks ev.Sig against pub alone (no chain context): what a
// gossip validator can decide for a single message.
func VerifySignature(pub ed25519.PublicKey, ev *Event) error {
	if len(pub) != ed25519.PublicKeySize {
		// Fail closed (DIR-FED-21): no key, no acceptance.
		return &VerifyError{Seq: ev.Seq, Reason: ErrUntrustedRoot}
	}
	sig, err := hex.DecodeString(ev.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return &VerifyError{Seq: ev.Seq, Reason: ErrSignature}
	}
	d, err := SigningDigest(ev)
	if err != nil {
		return &VerifyError{Seq: ev.Seq, Reason: fmt.Errorf("%w: payload", ErrMalformed)}
	}
	if !ed25519.Verify(pub, d[:], sig) {
		return &VerifyError{Seq: ev.Seq, Reason: ErrSignature}
	}
	return nil
}

// Chain verifies events in seq order (S.13 §5.1 hash chain, DIR-FED-01..04):
// each event's seq must exceed the last, its prev_hash must be the chain
// hash of the last accepted signature, its signer the seed DID, and its
// signature valid under the seed key. A rejected event leaves the chain
// where it was, so the verifier can resume from the last valid event.
type Chain struct {
	pub       ed25519.PublicKey
	signerDID string // empty: signer_did not checked (offline fixture vectors)
	seq       int64
	prevHash  string
}

// NewChain starts a verifier after the event (afterSeq, prevHash); a fresh
// chain is NewChain(pub, did, 0, GenesisRoot).
func NewChain(pub ed25519.PublicKey, signerDID string, afterSeq int64, prevHash string) *Chain {
	return &Chain{pub: pub, signerDID: signerDID, seq: afterSeq, prevHash: prevHash}
}

// Head returns the last accepted seq and the prev_hash its successor needs.
func (c *Chain) Head() (seq int64, nextPrevHash string) { return c.seq, c.prevHash }

// Check verifies ev as the next event without advancing the chain.
func (c *Chain) Check(ev *Event) error {
	if err := c.checkLink(ev); err != nil {
		return err
	}
	return VerifySignature(c.pub, ev)
}

// checkLink is Check without the signature: the order, link, shape and
// signer checks that need the chain. A replica verifies the signatures of
// a page in parallel (they need no chain) and links them in order.
func (c *Chain) checkLink(ev *Event) error {
	if ev.Seq <= c.seq {
		return &VerifyError{Seq: ev.Seq, Reason: ErrSequence}
	}
	if ev.PrevHash != c.prevHash {
		return &VerifyError{Seq: ev.Seq, Reason: ErrChainLink}
	}
	if err := CheckShape(ev); err != nil {
		return err
	}
	if c.signerDID != "" && ev.SignerDID != c.signerDID {
		return &VerifyError{Seq: ev.Seq, Reason: ErrSigner}
	}
	return nil
}

// Next verifies ev and, when it is valid, advances the chain past it.
func (c *Chain) Next(ev *Event) error {
	if err := c.Check(ev); err != nil {
		return err
	}
	c.advance(ev)
	return nil
}

func (c *Chain) advance(ev *Event) { c.seq, c.prevHash = ev.Seq, ChainHash(ev.Sig) }
