package dirclient

import (
	"context"
	"crypto/rand"
	"net/http"
	"strings"

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

// ConsumerToken asks the directory for a short-lived token that lets this
// node (authenticated by its own node token) call target for intent
// (iicp-dir.md §3.12). The returned token is LOG-FORBIDDEN.
func (c *Client) ConsumerToken(ctx context.Context, nodeToken, targetNodeID, intent string) (string, error) {
	// single_use asks a meshnode directory for a token with a jti, which
	// nodes accept once (wire/token Replay): meshnode fetches one token per
	// attempt, so a captured token is worth nothing. Other directories
	// ignore the member (iicp-extensions.md: additive).
	in := struct {
		TargetNodeID string `json:"target_node_id"`
		Intent       string `json:"intent"`
		SingleUse    bool   `json:"single_use"`
	}{targetNodeID, intent, true}
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

// NewUUID returns a random UUID v4 (task_id, call_id).
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return wire.UUIDv4(b)
}
