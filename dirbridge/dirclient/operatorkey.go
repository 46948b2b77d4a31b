package dirclient

import (
	"context"
	"net/http"

	"github.com/meshnode/meshnode/wire"
)

// OperatorChallenge asks the directory for a single-use self-service nonce
// for the operator key operatorPub (iicp-dir.md §3.16).
func (c *Client) OperatorChallenge(ctx context.Context, operatorPub string) (wire.OperatorChallenge, error) {
	var out wire.OperatorChallenge
	in := map[string]string{"operator_pub": operatorPub}
	if err := c.do(ctx, "operator challenge", http.MethodPost, "/v1/operator/challenge", "", in, &out, maxBody, http.StatusOK); err != nil {
		return out, err
	}
	if out.Nonce == "" {
		return out, &Error{Op: "operator challenge", Status: http.StatusOK, Message: "no nonce in reply"}
	}
	return out, nil
}

// OperatorKeyRotate sends a signed operator key rotation (POST
// /v1/operator/key/rotate) and returns how many nodes the directory moved
// to the successor key.
func (c *Client) OperatorKeyRotate(ctx context.Context, r *wire.OperatorKeyRotate) (int, error) {
	var out struct {
		NodesMoved int `json:"nodes_moved"`
	}
	err := c.do(ctx, "operator key rotate", http.MethodPost, "/v1/operator/key/rotate", "", r, &out, maxBody, http.StatusOK)
	return out.NodesMoved, err
}
