package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/wire"
)

// ErrNotRunning: no node answers for this state directory.
var ErrNotRunning = errors.New("no running node found (start one with `meshnode up`)")

// maxReply bounds admin replies (a call result carries a task RESPONSE,
// at most a few MiB).
const maxReply = 16 << 20

// WriteRuntime writes runtime.json (0600, atomically).
func WriteRuntime(path string, rt Runtime) error {
	b, err := json.MarshalIndent(rt, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding runtime file: %w", err)
	}
	return paths.WriteFileAtomic(path, append(b, '\n'), 0o600)
}

// ReadRuntime reads runtime.json; ErrNotRunning when absent.
func ReadRuntime(path string) (Runtime, error) {
	var rt Runtime
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return rt, ErrNotRunning
	}
	if err != nil {
		return rt, fmt.Errorf("reading runtime file: %w", err)
	}
	if err := json.Unmarshal(b, &rt); err != nil {
		return rt, fmt.Errorf("runtime file is corrupt: %w", err)
	}
	return rt, nil
}

// Client talks to a running node's admin endpoint.
type Client struct {
	Runtime Runtime
	token   string
	hc      *http.Client
}

// Dial finds the node running with the given paths. It does not contact
// the node; the first call reports ErrNotRunning if it is gone.
func Dial(p paths.Paths) (*Client, error) {
	rt, err := ReadRuntime(p.Runtime)
	if err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(p.AdminToken)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotRunning
	}
	if err != nil {
		return nil, fmt.Errorf("reading admin token: %w", err)
	}
	return &Client{Runtime: rt, token: strings.TrimSpace(string(tok)), hc: &http.Client{}}, nil
}

// Status fetches the node's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	return &s, c.do(ctx, http.MethodGet, "/admin/v1/status", nil, &s)
}

// Peers fetches the mesh peer table.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var p []Peer
	return p, c.do(ctx, http.MethodGet, "/admin/v1/peers", nil, &p)
}

// NodeToken fetches the token the node accepts.
func (c *Client) NodeToken(ctx context.Context) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	err := c.do(ctx, http.MethodGet, "/admin/v1/token", nil, &out)
	return out.Token, err
}

// Call runs a task through the node. A failure the node reports comes back
// as *wire.Error.
func (c *Client) Call(ctx context.Context, req CallRequest) (*CallResult, error) {
	var res CallResult
	return &res, c.do(ctx, http.MethodPost, "/admin/v1/call", req, &res)
}

// Reregister asks the node to register again with every directory now
// (it re-reads its operator delegation); it returns how many directories.
func (c *Client) Reregister(ctx context.Context) (int, error) {
	var out struct {
		Directories int `json:"directories"`
	}
	err := c.do(ctx, http.MethodPost, "/admin/v1/reregister", nil, &out)
	return out.Directories, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Runtime.AdminURL+path, body)
	if err != nil {
		return fmt.Errorf("admin request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w (admin endpoint %s unreachable)", ErrNotRunning, c.Runtime.AdminURL)
	}
	defer resp.Body.Close()
	return decodeReply(resp, out)
}

// decodeReply reads an admin reply into out, or its error envelope.
func decodeReply(resp *http.Response, out any) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return fmt.Errorf("reading admin reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var env wire.Envelope
		if json.Unmarshal(data, &env) == nil && env.Error != nil {
			return env.Error
		}
		return fmt.Errorf("admin endpoint: HTTP %d", resp.StatusCode)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding admin reply: %w", err)
	}
	return nil
}

// Timeout for quick admin reads (status, peers, token).
const QuickTimeout = 5 * time.Second
