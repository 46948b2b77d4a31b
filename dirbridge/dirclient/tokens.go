package dirclient

import (
	"context"
	"crypto/rand"
	"net/http"
	"strings"
	"time"

	"github.com/meshnode/meshnode/wire"
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

// ConsumerToken asks the directory for a short-lived single-use token that
// lets this node (authenticated by its own node token) call target for
// intent (iicp-dir.md §3.12). The returned token is LOG-FORBIDDEN.
func (c *Client) ConsumerToken(ctx context.Context, nodeToken, targetNodeID, intent string) (string, error) {
	tok, _, err := c.ConsumerTokenFor(ctx, nodeToken, targetNodeID, intent, true)
	return tok, err
}

// ConsumerTokenFor is ConsumerToken with a choice: singleUse asks a
// meshnode directory for a token with a jti, which nodes accept once
// (wire/token Replay), so a captured token is worth nothing; without it
// the token is reusable until its expiry (returned), for callers that cache
// one per target (the mesh, where the token is also bound to the caller's
// authenticated key). Other directories ignore the member
// (iicp-extensions.md: additive).
func (c *Client) ConsumerTokenFor(ctx context.Context, nodeToken, targetNodeID, intent string, singleUse bool) (string, time.Time, error) {
	in := struct {
		TargetNodeID string `json:"target_node_id"`
		Intent       string `json:"intent"`
		SingleUse    bool   `json:"single_use"`
	}{targetNodeID, intent, singleUse}
	var out struct {
		Token     string `json:"token"`
		ExpiresAt int64  `json:"expires_at"`
	}
	if err := c.do(ctx, "consumer-token", http.MethodPost, "/api/v1/consumer-token", nodeToken, &in, &out, maxBody, http.StatusCreated, http.StatusOK); err != nil {
		return "", time.Time{}, err
	}
	if out.Token == "" {
		return "", time.Time{}, &Error{Op: "consumer-token", Status: http.StatusOK, Message: "empty token"}
	}
	return out.Token, time.Unix(out.ExpiresAt, 0), nil
}

// Membership asks the directory for this node's mesh membership
// credential (POST /v1/membership, a meshnode addition): mesh peers that
// trust the directory's key accept calls from this node on its strength,
// with no directory round trip. The credential is LOG-FORBIDDEN.
func (c *Client) Membership(ctx context.Context, nodeToken string) (string, time.Time, error) {
	var out struct {
		Credential string `json:"credential"`
		ExpiresAt  int64  `json:"expires_at"`
	}
	if err := c.do(ctx, "membership", http.MethodPost, "/api/v1/membership", nodeToken, struct{}{}, &out, maxBody, http.StatusCreated, http.StatusOK); err != nil {
		return "", time.Time{}, err
	}
	if out.Credential == "" || out.ExpiresAt <= 0 {
		return "", time.Time{}, &Error{Op: "membership", Status: http.StatusOK, Message: "no credential in reply"}
	}
	return out.Credential, time.Unix(out.ExpiresAt, 0), nil
}

// Revoked fetches the node_ids the directory saw deregister within one
// membership lifetime, with when (Unix seconds; GET /v1/membership/revoked,
// a meshnode addition).
func (c *Client) Revoked(ctx context.Context) (map[string]int64, error) {
	var out struct {
		Revoked map[string]int64 `json:"revoked"`
	}
	if err := c.do(ctx, "membership-revoked", http.MethodGet, "/api/v1/membership/revoked", "", nil, &out, maxBody, http.StatusOK); err != nil {
		return nil, err
	}
	return out.Revoked, nil
}

// NewUUID returns a random UUID v4 (task_id, call_id).
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return wire.UUIDv4(b)
}
