package client

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/retry"
	"github.com/meshnode/meshnode/wire"
)

// HTTP task path limits.
const (
	// maxTaskResponse bounds a RESPONSE read from a node (the mesh uses the
	// same 8 MiB bound for RESPONSE frames).
	maxTaskResponse = 8 << 20
	// DefaultCallAttempts: try at most this many discovered nodes
	// (PROXY-ROUTE-03, iicp-semantics.md §6.1: ≤ 3 attempts).
	DefaultCallAttempts = 3
	// discoverLimit asks for a few more candidates than attempts, so
	// skipped entries (no endpoint, ourselves) still leave enough.
	discoverLimit = 8
	// HeaderConsumerToken carries a directory-issued consumer token
	// (iicp-core.md §3.1 errata v1.5.2).
	HeaderConsumerToken = "X-IICP-Consumer-Token"
	// DefaultRetryBase is the first retry pause (iicp-semantics.md §6.1).
	DefaultRetryBase = 200 * time.Millisecond
)

// DirectoryKey fetches the directory's Ed25519 public key (hex) that signs
// consumer tokens (iicp-dir.md §3.12).
func (c *Client) DirectoryKey(ctx context.Context) (string, error) {
	var out struct {
		PublicKey string `json:"public_key"`
		Algorithm string `json:"algorithm"`
	}
	if err := c.do(ctx, "directory-key", http.MethodGet, "/api/v1/directory-key", "", nil, &out, maxBody, http.StatusOK); err != nil {
		return "", err
	}
	if out.PublicKey == "" || (out.Algorithm != "" && !strings.EqualFold(out.Algorithm, "ed25519")) {
		return "", &Error{Op: "directory-key", Status: http.StatusOK, Message: "no Ed25519 public key in reply"}
	}
	return out.PublicKey, nil
}

// ConsumerToken asks the directory for a short-lived token that lets this
// node (authenticated by its own node token) call target for intent
// (iicp-dir.md §3.12). The returned token is LOG-FORBIDDEN.
func (c *Client) ConsumerToken(ctx context.Context, nodeToken, targetNodeID, intent string) (string, error) {
	in := struct {
		TargetNodeID string `json:"target_node_id"`
		Intent       string `json:"intent"`
	}{targetNodeID, intent}
	var out struct {
		Token string `json:"token"`
	}
	if err := c.do(ctx, "consumer-token", http.MethodPost, "/api/v1/consumer-token", nodeToken, &in, &out, maxBody, http.StatusCreated, http.StatusOK); err != nil {
		return "", err
	}
	if out.Token == "" {
		return "", &Error{Op: "consumer-token", Status: http.StatusOK, Message: "empty token"}
	}
	return out.Token, nil
}

// Caller runs a task over HTTP: discover nodes for the intent, then POST
// /v1/task to the best ones in directory order (PROXY-ROUTE-01/02), at most
// Attempts of them (PROXY-ROUTE-03).
//
// Payloads are sealed with IICP-CX to every node that advertises a
// cx_public_key (iicp-confidentiality.md §1: a consumer MUST encrypt to a
// key-advertising node). Keyless nodes are skipped unless AllowPlaintext
// is set (§6: refuse keyless nodes by default, plaintext only by explicit
// opt-in such as IICP_CX_ALLOW_PLAINTEXT=1). Answers are read in every dialect deployed nodes speak
// (interop.DecodeTaskAnswer).
type Caller struct {
	Directory *Client
	// HTTP posts tasks; nil uses a client with no overall timeout (the
	// context carries the task's deadline).
	HTTP *http.Client
	// Attempts defaults to DefaultCallAttempts.
	Attempts int
	// Skip excludes candidates (e.g. the calling node itself).
	Skip func(wire.NodeSummary) bool
	// Credential returns the X-IICP-Consumer-Token for a target node; nil
	// or "" sends none (the CALL's auth.node_token, if any, applies).
	Credential func(ctx context.Context, nodeID, intent string) (string, error)
	// AllowPlaintext sends the CALL unencrypted to nodes that advertise no
	// IICP-CX key; the default skips them. Keyed nodes are always sealed to.
	AllowPlaintext bool
	// RetryBase is the first pause before retrying a transient failure on
	// the next node (iicp-semantics.md §6.1: 200 ms, doubling, ±20 %
	// jitter). capacity_exceeded switches at once (§2.2).
	RetryBase time.Duration
}

// Attempt describes one node tried.
type Attempt struct {
	NodeID   string
	Endpoint string
	// Status is the HTTP status (0: no answer); Code the IICP code, if any.
	Status int
	Code   wire.Code
	// QoSClass is the saturated class a capacity_exceeded answer named.
	QoSClass string
	// Encrypted reports that the payload went out sealed with IICP-CX.
	Encrypted bool
}

// CallInfo reports how a Caller.Call went.
type CallInfo struct {
	// NodeID and Endpoint identify the node whose RESPONSE was returned.
	NodeID   string
	Endpoint string
	// Encrypted reports that the returned RESPONSE answers a sealed CALL.
	Encrypted bool
	Tried     []Attempt
	// SkippedKeyless counts candidates skipped for advertising no CX key.
	SkippedKeyless int
}

// Call discovers candidates for call.Intent and runs call on the first one
// that answers with a final RESPONSE. Per PROXY-ERR-01/02: no candidates is
// IICP-E033; candidates that all fail is no_available_node (with the last
// node's RESPONSE, if one answered). A node's own failure RESPONSE that is
// not worth retrying elsewhere (validation, unknown intent, auth) is
// returned as is with a nil error.
func (cl *Caller) Call(ctx context.Context, call *wire.Call, q Query) (*wire.Response, CallInfo, error) {
	var info CallInfo
	if q.Intent == "" {
		q.Intent = call.Intent
	}
	if q.QoS == "" {
		q.QoS = call.Constraints.QoS
	}
	if q.Limit == 0 {
		q.Limit = discoverLimit
	}
	nl, err := cl.Directory.Discover(ctx, q)
	if err != nil {
		return nil, info, err
	}
	cands := cl.candidates(nl.Nodes, &info)
	if len(cands) == 0 && info.SkippedKeyless > 0 {
		return nil, info, wire.Errorf(wire.CodeE064, "%d node(s) serve %s but none advertises an IICP-CX key; refusing to send the payload in plaintext", info.SkippedKeyless, call.Intent)
	}
	if len(cands) == 0 {
		return nil, info, wire.Errorf(wire.CodeE033, "no node serves %s (directory returned no candidates)", call.Intent)
	}
	attempts := cl.Attempts
	if attempts <= 0 {
		attempts = DefaultCallAttempts
	}
	var last *wire.Response
	wait := false
	for i, n := range cands {
		if i >= attempts || ctx.Err() != nil {
			break
		}
		if wait && retry.Sleep(ctx, retryPause(cl.RetryBase, i)) != nil {
			break
		}
		resp, a := cl.post(ctx, call, n)
		info.Tried = append(info.Tried, a)
		// §2.2: a full node is a switch signal, never a reason to wait; a
		// key we could not seal to sent nothing, so there is nothing to pace.
		wait = a.Code != wire.CodeCapacityExceeded && (a.Status != 0 || a.Code == "")
		if resp == nil {
			continue
		}
		last = resp
		if resp.Status == wire.StatusSuccess || !retryElsewhere(resp, a.Status) {
			info.NodeID, info.Endpoint, info.Encrypted = n.NodeID, n.Endpoint, a.Encrypted
			return resp, info, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return last, info, err
	}
	return last, info, wire.Errorf(wire.CodeNoAvailableNode, "%d candidate node(s) tried, none completed the task%s", len(info.Tried), lastAnswer(last))
}

// lastAnswerMax caps the node-supplied message quoted in an error.
const lastAnswerMax = 160

// lastAnswer says what the last node answered (an unknown model, a dead
// backend), so no_available_node is not the only thing a user learns.
func lastAnswer(last *wire.Response) string {
	if last == nil || last.Error == nil {
		return ""
	}
	msg := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, last.Error.Message)
	if r := []rune(msg); len(r) > lastAnswerMax {
		msg = string(r[:lastAnswerMax])
	}
	return "; the last answered " + string(last.Error.Code) + ": " + msg
}

// candidates filters the discover answer: nodes with an endpoint that are
// available, not skipped, and (unless plaintext is allowed) keyed.
func (cl *Caller) candidates(nodes []wire.NodeSummary, info *CallInfo) []wire.NodeSummary {
	var out []wire.NodeSummary
	for _, n := range nodes {
		if n.Endpoint == "" || !n.Available || (cl.Skip != nil && cl.Skip(n)) {
			continue
		}
		if n.CXPublicKey == nil && !cl.AllowPlaintext {
			info.SkippedKeyless++
			continue
		}
		out = append(out, n)
	}
	return out
}

// retryElsewhere reports whether another node might succeed where this
// one failed: capacity, timeouts, backend and server errors. Validation,
// unknown intent, authorization and IICP-CX failures would fail everywhere
// (and a CX failure must never turn into a plaintext retry, §6).
func retryElsewhere(r *wire.Response, status int) bool {
	if r.Status == wire.StatusTimeout {
		return true
	}
	if r.Error != nil {
		switch r.Error.Code {
		case wire.CodeCapacityExceeded, wire.CodeRateLimited, wire.CodeTaskTimeout, wire.CodeBackendError,
			wire.CodeUnavailable, wire.CodeInternal, wire.CodeE029:
			return true
		case wire.CodeE050, wire.CodeE064:
			return false
		}
	}
	return status >= 500
}

// post sends call to one node. A nil RESPONSE means the node gave no usable
// answer (unreachable, a body that is not a RESPONSE, or a CX key this
// client cannot seal to).
func (cl *Caller) post(ctx context.Context, call *wire.Call, n wire.NodeSummary) (*wire.Response, Attempt) {
	a := Attempt{NodeID: n.NodeID, Endpoint: n.Endpoint}
	var consumer string
	if cl.Credential != nil {
		tok, err := cl.Credential(ctx, n.NodeID, call.Intent)
		if err == nil {
			consumer = tok
		}
	}
	c := *call
	c.CallID = NewUUID() // each attempt gets its own call_id; task_id is kept
	resp, st, err := PostTask(ctx, cl.HTTP, n, &c, consumer, cl.AllowPlaintext)
	a.Status, a.Encrypted = st.HTTPStatus, st.Encrypted
	if err != nil {
		var werr *wire.Error
		if errors.As(err, &werr) {
			a.Code = werr.Code
		}
		return nil, a
	}
	if resp.Error != nil {
		a.Code, a.QoSClass = resp.Error.Code, resp.Error.QoSClass
	}
	return resp, a
}

// retryPause is the §6.1 backoff before attempt i (i ≥ 1): base·2^(i-1)
// with ±20 % jitter.
func retryPause(base time.Duration, i int) time.Duration {
	if base <= 0 {
		base = DefaultRetryBase
	}
	return retry.Backoff(base, i)
}

// NewUUID returns a random UUID v4 (task_id, call_id).
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return wire.UUIDv4(b)
}
