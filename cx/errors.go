package cx

import (
	"net/http"

	"github.com/meshnode/meshnode/wire"
)

// failure is why an envelope could not be opened. It stays inside the
// package: callers only ever see the wire error it maps to, so the reason
// never reaches a remote caller in the Tier 1 model.
type failure int

const (
	failNone        failure = iota
	failMalformed           // iicp_conf not an object, wrong types, bad base64 or sizes
	failVersion             // iicp_conf.version != 1
	failUnknownKey          // recipient_key_id not in the ring
	failExpired             // key found but past not_after
	failDecrypt             // AAD mismatch, low-order point, GCM tag failure
	failReplay              // this (kem_ciphertext, nonce) was already opened
	failUnsupported         // this node has no CX key ring
)

// String names the failure for the node's own logs (never for the caller).
func (f failure) String() string {
	switch f {
	case failNone:
		return "none"
	case failMalformed:
		return "malformed_envelope"
	case failVersion:
		return "unsupported_version"
	case failUnknownKey:
		return "unknown_key_id"
	case failExpired:
		return "key_expired"
	case failDecrypt:
		return "decrypt_failed"
	case failReplay:
		return "replay"
	case failUnsupported:
		return "cx_unsupported"
	}
	return "unknown"
}

// ErrorModel selects how envelope failures appear on the wire (§6).
type ErrorModel int

const (
	// Tier1Collapsed is the shipped Tier 1 model, normative for current
	// conformance: every failure is IICP-E050 (422) with one fixed message.
	Tier1Collapsed ErrorModel = iota
	// Granular is the Tier 2 target model: E060 unknown key, E061 version,
	// E062 decryption, E063 expired key, E064 CX unsupported.
	Granular
)

// collapsedMessage is the single Tier 1 message: it names no reason.
const collapsedMessage = "confidential task payload could not be opened"

// wireError maps f to the caller-visible error under model m.
func (m ErrorModel) wireError(f failure) *wire.Error {
	if m != Granular {
		return errE050(collapsedMessage)
	}
	switch f {
	case failUnknownKey:
		return wire.NewError(wire.CodeE060, "recipient_key_id is not a key of this node")
	case failVersion:
		return wire.NewError(wire.CodeE061, "iicp_conf.version is not supported")
	case failExpired:
		return wire.NewError(wire.CodeE063, "the recipient CX key has expired")
	case failUnsupported:
		return wire.NewError(wire.CodeE064, "this node does not accept confidential payloads")
	default: // malformed, decrypt, replay: one code, one message, no oracle
		return wire.NewError(wire.CodeE062, "confidential task payload could not be decrypted")
	}
}

// errE050 is IICP-E050 in its CX-node meaning: 422 (§6), where the
// catalogue default is the directory's 403 (docs/spec-decisions.md, wire).
func errE050(msg string) *wire.Error {
	return wire.NewErrorStatus(wire.CodeE050, http.StatusUnprocessableEntity, msg)
}
