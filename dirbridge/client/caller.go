package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

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
}

// Attempt describes one node tried.
type Attempt struct {
	NodeID   string
	Endpoint string
	// Status is the HTTP status (0: no answer); Code the IICP code, if any.
	Status int
	Code   wire.Code
}

// CallInfo reports how a Caller.Call went.
type CallInfo struct {
	// NodeID and Endpoint identify the node whose RESPONSE was returned.
	NodeID   string
	Endpoint string
	Tried    []Attempt
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
	if q.Limit == 0 {
		q.Limit = discoverLimit
	}
	nl, err := cl.Directory.Discover(ctx, q)
	if err != nil {
		return nil, info, err
	}
	var cands []wire.NodeSummary
	for _, n := range nl.Nodes {
		if n.Endpoint == "" || !n.Available || (cl.Skip != nil && cl.Skip(n)) {
			continue
		}
		cands = append(cands, n)
	}
	if len(cands) == 0 {
		return nil, info, wire.Errorf(wire.CodeE033, "no node serves %s (directory returned no candidates)", call.Intent)
	}
	attempts := cl.Attempts
	if attempts <= 0 {
		attempts = DefaultCallAttempts
	}
	var last *wire.Response
	for i, n := range cands {
		if i >= attempts || ctx.Err() != nil {
			break
		}
		resp, a := cl.post(ctx, call, n)
		info.Tried = append(info.Tried, a)
		if resp == nil {
			continue
		}
		last = resp
		if resp.Status == wire.StatusSuccess || !retryElsewhere(resp, a.Status) {
			info.NodeID, info.Endpoint = n.NodeID, n.Endpoint
			return resp, info, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return last, info, err
	}
	return last, info, wire.Errorf(wire.CodeNoAvailableNode, "%d candidate node(s) tried, none completed the task", len(info.Tried))
}

// retryElsewhere reports whether another node might succeed where this
// one failed: capacity, timeouts, backend and server errors. Validation,
// unknown intent and authorization failures would fail everywhere.
func retryElsewhere(r *wire.Response, status int) bool {
	if r.Status == wire.StatusTimeout {
		return true
	}
	if r.Error != nil {
		switch r.Error.Code {
		case wire.CodeCapacityExceeded, wire.CodeRateLimited, wire.CodeTaskTimeout, wire.CodeBackendError,
			wire.CodeUnavailable, wire.CodeInternal, wire.CodeE029:
			return true
		}
	}
	return status >= 500
}

// post sends call to one node. A nil RESPONSE means the node gave no usable
// answer (unreachable, or a body that is not a RESPONSE).
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
	resp, status, err := PostTask(ctx, cl.HTTP, n.Endpoint, &c, consumer)
	a.Status = status
	if err != nil {
		return nil, a
	}
	if resp.Error != nil {
		a.Code = resp.Error.Code
	}
	return resp, a
}

// PostTask sends one CALL to a node's POST /v1/task (iicp-core.md §3) and
// decodes the RESPONSE, including failure bodies: a node answers errors
// either as a RESPONSE with status error or as an error envelope, and both
// come back as a *wire.Response. consumerToken, when set, goes in
// X-IICP-Consumer-Token (LOG-FORBIDDEN). err is set only when no IICP
// answer arrived.
func PostTask(ctx context.Context, hc *http.Client, endpoint string, call *wire.Call, consumerToken string) (*wire.Response, int, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	body, err := json.Marshal(call)
	if err != nil {
		return nil, 0, fmt.Errorf("encoding call: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(endpoint, "/")+"/v1/task", bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("building task request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if consumerToken != "" {
		req.Header.Set(HeaderConsumerToken, consumerToken)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, scrubURLError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTaskResponse+1))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("reading task response: %w", err)
	}
	if len(data) > maxTaskResponse {
		return nil, resp.StatusCode, errors.New("task response too large")
	}
	var r wire.Response
	if json.Unmarshal(data, &r) == nil && r.Status != "" {
		return &r, resp.StatusCode, nil
	}
	var env wire.Envelope
	if json.Unmarshal(data, &env) == nil && env.Error != nil {
		st := wire.StatusError
		if env.Error.Code == wire.CodeTaskTimeout {
			st = wire.StatusTimeout
		}
		return &wire.Response{TaskID: call.TaskID, Status: st, Error: env.Error, Code: env.Error.Code}, resp.StatusCode, nil
	}
	return nil, resp.StatusCode, fmt.Errorf("node answered HTTP %d without an IICP body", resp.StatusCode)
}

// NewUUID returns a random UUID v4 (task_id, call_id).
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
