package dirclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/httperr"
	"github.com/meshnode/meshnode/wire"
)

// Response size caps: directory answers are small; a larger body is a
// misbehaving or hostile server and is cut off rather than buffered.
const (
	maxBody         = 64 << 10
	maxDiscoverBody = 4 << 20
	// maxRedirects follows iicp-federated-directory.md §6.2 (DIR-FED-06).
	maxRedirects = 3
	// maxMessageLen bounds the server message copied into *Error.
	maxMessageLen = 200
)

// Client talks to one directory.
type Client struct {
	base      *url.URL
	hc        *http.Client
	userAgent string
	// verifyRead, when set, checks every discover answer before it is
	// decoded (a replica's DIR-FED-20 signature, readsig.go).
	verifyRead func(req *http.Request, h http.Header, body []byte) error
}

// Option configures a Client.
type Option func(*Client) error

// WithHTTPClient replaces the HTTP client (TLS roots, transport). Its
// CheckRedirect is replaced by the IICP redirect policy.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("client: nil http client")
		}
		cp := *hc
		c.hc = &cp
		return nil
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) error { c.userAgent = ua; return nil }
}

// New returns a client for the directory at baseURL (scheme and host, with
// an optional path prefix).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("client: directory URL %q must be absolute http(s)", baseURL)
	}
	c := &Client{base: u, hc: &http.Client{Timeout: 30 * time.Second}, userAgent: "meshnode"}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	c.hc.CheckRedirect = checkRedirect
	return c, nil
}

// checkRedirect follows 307/308 (federated redirection, DIR-FED-05) at most
// maxRedirects times and never from https to plaintext. net/http already
// drops the Authorization header when the host changes, so a redirect can
// never hand a node token to another host.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return errors.New("refusing redirect from https to plaintext")
	}
	return nil
}

// URL returns the directory base URL.
func (c *Client) URL() string { return c.base.String() }

// Register sends REGISTER (iicp-core.md §2, iicp-dir.md §3.1). Set
// req.CurrentNodeToken to rotate an existing registration.
func (c *Client) Register(ctx context.Context, req *wire.RegisterRequest) (*wire.RegisterAck, error) {
	r := *req
	r.MessageType = "REGISTER"
	var ack wire.RegisterAck
	if err := c.do(ctx, "register", http.MethodPost, "/v1/register", "", &r, &ack, maxBody, http.StatusCreated, http.StatusOK); err != nil {
		return nil, err
	}
	if ack.NodeID == "" || ack.NodeToken == "" {
		return nil, &Error{Op: "register", Status: http.StatusOK, Message: "ACK without node_id or node_token"}
	}
	return &ack, nil
}

// Heartbeat sends HEARTBEAT with the node token (iicp-dir.md §3.2).
func (c *Client) Heartbeat(ctx context.Context, token string, hb *wire.Heartbeat) (*wire.Pong, error) {
	var pong wire.Pong
	if err := c.do(ctx, "heartbeat", http.MethodPost, "/v1/heartbeat", token, hb, &pong, maxBody, http.StatusOK); err != nil {
		return nil, err
	}
	return &pong, nil
}

// Deregister removes the registration; the token stops working.
func (c *Client) Deregister(ctx context.Context, token, nodeID string) error {
	body := struct {
		NodeID string `json:"node_id"`
	}{nodeID}
	var out struct {
		Deregistered bool `json:"deregistered"`
	}
	return c.do(ctx, "deregister", http.MethodPost, "/v1/deregister", token, &body, &out, maxBody, http.StatusOK, http.StatusNoContent)
}

// OperatorRename sets the operator's public display_name at the directory
// (POST /v1/operator/rename, iicp-recognition.md §7); r is signed by the
// operator key (internal/operator).
func (c *Client) OperatorRename(ctx context.Context, r *wire.OperatorRename) error {
	var out struct {
		OK bool `json:"ok"`
	}
	return c.do(ctx, "operator rename", http.MethodPost, "/v1/operator/rename", "", r, &out, maxBody, http.StatusOK)
}

// Query is a discover request (iicp-dir.md §3.3).
type Query struct {
	Intent   string
	QoS      string
	Region   string
	Limit    int
	Modality string
}

// Discover returns nodes serving q.Intent, best first.
func (c *Client) Discover(ctx context.Context, q Query) (*wire.NodeList, error) {
	v := url.Values{}
	v.Set("intent", q.Intent)
	if q.QoS != "" {
		v.Set("qos", q.QoS)
	}
	if q.Region != "" {
		v.Set("region", q.Region)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Modality != "" {
		v.Set("modality", q.Modality)
	}
	var nl wire.NodeList
	if err := c.doVerified(ctx, "discover", http.MethodGet, "/v1/discover?"+v.Encode(), "", nil, &nl, maxDiscoverBody, c.verifyRead, http.StatusOK); err != nil {
		return nil, err
	}
	return &nl, nil
}

// Me is the DIR-ADDR-04 answer.
type Me struct {
	NodeID           string `json:"node_id"`
	ObservedSourceIP string `json:"observed_source_ip"`
	Endpoint         string `json:"endpoint"`
}

// Me asks the directory what it observes about this node.
func (c *Client) Me(ctx context.Context, token string) (*Me, error) {
	var me Me
	if err := c.do(ctx, "me", http.MethodGet, "/v1/me", token, nil, &me, maxBody, http.StatusOK); err != nil {
		return nil, err
	}
	return &me, nil
}

// BootstrapPeer is one entry of GET /v1/bootstrap (iicp-dir.md §3.5).
type BootstrapPeer struct {
	NodeID   string `json:"node_id"`
	Endpoint string `json:"endpoint"`
	Region   string `json:"region"`
	LastSeen string `json:"last_seen"`
}

// Bootstrap returns recently seen peers for mesh bootstrapping.
func (c *Client) Bootstrap(ctx context.Context, limit int) ([]BootstrapPeer, error) {
	var out struct {
		Peers []BootstrapPeer `json:"peers"`
	}
	path := "/v1/bootstrap"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	if err := c.do(ctx, "bootstrap", http.MethodGet, path, "", nil, &out, maxDiscoverBody, http.StatusOK); err != nil {
		return nil, err
	}
	return out.Peers, nil
}

// do performs one JSON request. token, when set, goes in the Authorization
// header only. in may be nil (no body); out receives a success body.
func (c *Client) do(ctx context.Context, op, method, path, token string, in, out any, limit int64, okStatus ...int) error {
	return c.doVerified(ctx, op, method, path, token, in, out, limit, nil, okStatus...)
}

// doVerified is do with verify, when non-nil, run on a success answer
// before it is decoded; its error fails the call.
func (c *Client) doVerified(ctx context.Context, op, method, path, token string, in, out any, limit int64,
	verify func(*http.Request, http.Header, []byte) error, okStatus ...int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return &Error{Op: op, Err: fmt.Errorf("encoding request: %w", err)}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return &Error{Op: op, Err: fmt.Errorf("building request: %w", err)}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &Error{Op: op, Err: httperr.Transport("directory", err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return &Error{Op: op, Status: resp.StatusCode, Err: fmt.Errorf("reading response: %w", httperr.Transport("directory", err))}
	}
	if int64(len(data)) > limit {
		return &Error{Op: op, Status: resp.StatusCode, Message: fmt.Sprintf("response larger than %d bytes", limit)}
	}
	for _, s := range okStatus {
		if resp.StatusCode == s {
			if verify != nil {
				if err := verify(req, resp.Header, data); err != nil {
					return &Error{Op: op, Status: resp.StatusCode, Err: err}
				}
			}
			if out == nil || len(bytes.TrimSpace(data)) == 0 {
				return nil
			}
			if err := json.Unmarshal(data, out); err != nil {
				return &Error{Op: op, Status: resp.StatusCode, Err: httperr.Wrap("response body is not the expected JSON", err)}
			}
			return nil
		}
	}
	return statusError(op, resp, data)
}
