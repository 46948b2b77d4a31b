package node

import (
	"crypto/sha256"
	"crypto/subtle"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/wire"
	"github.com/meshnode/meshnode/wire/token"
)

// authorizer decides whether a CALL may run (TASK-1, iicp-core.md §3.1
// errata v1.5.1 and v1.5.2). A CALL is authorized by the first of:
//
//  1. open mode (explicit operator choice; off by default);
//  2. an allowlisted, transport-authenticated libp2p peer ID, or a peer
//     whose directory-issued membership credential the transport verified
//     (wire.Caller.Member; mesh, docs/spec-decisions.md), or a peer whose
//     operator delegation names this node's operator key
//     (wire.Caller.SameOperator; mesh, "Home mesh");
//  3. a valid X-IICP-Consumer-Token, when directory keys are configured
//     (without keys the node falls back to node_token, iicp-dir.md §3.12):
//     aud is this node, sub the transport-authenticated caller where there
//     is one (mesh), lifetime at most 300 s, jti not seen before (wire/token);
//  4. auth.node_token equal to the node's own token (constant time).
//
// An invalid consumer token does not lock out a caller that also presents
// the node's own token: both are independent credentials.
type authorizer struct {
	open      bool
	peers     atomic.Pointer[map[string]struct{}]
	tokenHash atomic.Pointer[[sha256.Size]byte] // nil: no node token yet
	nodeID    atomic.Pointer[string]
	consumer  *ConsumerTokenVerifier
}

// authResult names how a CALL was authorized, or why not, for logs and
// metrics (never the credential itself).
type authResult string

const (
	authOpen      authResult = "open"
	authPeer      authResult = "peer"
	authMember    authResult = "membership"
	authOperator  authResult = "operator"
	authConsumer  authResult = "consumer_token"
	authNodeToken authResult = "node_token"
	authDenied    authResult = "denied"
)

func (a *authorizer) setNodeToken(tok string) {
	if tok == "" {
		a.tokenHash.Store(nil)
		return
	}
	h := sha256.Sum256([]byte(tok))
	a.tokenHash.Store(&h)
}

func (a *authorizer) setPeers(ids []string) {
	m := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		if id != "" {
			m[id] = struct{}{}
		}
	}
	a.peers.Store(&m)
}

func (a *authorizer) setNodeID(id string) { a.nodeID.Store(&id) }

func (a *authorizer) getNodeID() string {
	if p := a.nodeID.Load(); p != nil {
		return *p
	}
	return ""
}

// authorize returns how call from caller is authorized, or a 401 error. The
// error message never says which credential was wrong or echoes any of it.
// The principal names who was authorized, as far as a credential proves
// it: the owner of a streamed task (tasks.go), never logged.
func (a *authorizer) authorize(call *wire.Call, caller wire.Caller, now time.Time) (authResult, string, *wire.Error, error) {
	how, sub, authErr, why := a.check(call, caller, now)
	return how, principalOf(how, caller, sub), authErr, why
}

// principalOf is the owner key of a task: the transport-authenticated peer
// where there is one (mesh), else the directory-attested requester of a
// consumer token, the node's own token, or, in open mode, anyone.
func principalOf(how authResult, caller wire.Caller, sub string) string {
	switch {
	case how == authDenied:
		return ""
	case caller.PeerID != "":
		return "peer:" + caller.PeerID
	case how == authConsumer:
		return "consumer:" + sub
	case how == authNodeToken:
		return "node-token"
	}
	return "open"
}

func (a *authorizer) check(call *wire.Call, caller wire.Caller, now time.Time) (authResult, string, *wire.Error, error) {
	if a.open {
		return authOpen, "", nil, nil
	}
	if caller.PeerID != "" {
		if m := a.peers.Load(); m != nil {
			if _, ok := (*m)[caller.PeerID]; ok {
				return authPeer, "", nil, nil
			}
		}
	}
	if caller.Member {
		return authMember, "", nil, nil
	}
	if caller.SameOperator {
		return authOperator, "", nil, nil
	}
	var tokenErr error
	if caller.ConsumerToken != "" && a.consumer.HasKeys() {
		var c *token.Consumer
		c, tokenErr = a.consumer.Verify(caller.ConsumerToken, a.getNodeID(), caller.PeerNodeID, call.Intent, now)
		if tokenErr == nil {
			return authConsumer, c.Iss + "/" + c.Sub, nil, nil
		}
	}
	if call.Auth != nil && a.tokenMatches(call.Auth.NodeToken) {
		return authNodeToken, "", nil, nil
	}
	if caller.MemberRefusal != nil {
		// The one refusal that can name its cause to the caller: the
		// credential's expiry is no secret, and it says what to fix.
		return authDenied, "", caller.MemberRefusal, tokenErr
	}
	return authDenied, "", wire.NewError(wire.CodeUnauthorized, "missing or invalid credentials"), tokenErr
}

// tokenMatches compares SHA-256 digests in constant time, so neither the
// content nor the length of the node's token leaks through timing (SEC-AUTH-02).
func (a *authorizer) tokenMatches(presented string) bool {
	want := a.tokenHash.Load()
	if want == nil || presented == "" {
		return false
	}
	// Tokens are short: hash from a stack copy instead of allocating one.
	var buf [128]byte
	var got [sha256.Size]byte
	if len(presented) <= len(buf) {
		got = sha256.Sum256(append(buf[:0], presented...))
	} else {
		got = sha256.Sum256([]byte(presented))
	}
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}
