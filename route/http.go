package route

import (
	"context"
	"errors"
	"net/http"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/dirbridge/httpapi"
	"github.com/meshnode/meshnode/wire"
)

// discoverLimit asks for a few more candidates than attempts, so skipped
// entries (no endpoint, keyless, open circuit) still leave enough.
const discoverLimit = 8

// DirectoryFinder offers the nodes a directory lists for the intent
// (GET /v1/discover), in directory order (iicp-semantics.md §3.2).
// Unavailable nodes and nodes without an endpoint are left out, and so are
// nodes that advertise no IICP-CX key unless the query allows plaintext
// (iicp-confidentiality.md §6); when that leaves none, Find answers
// IICP-E064.
//
// C is one directory (*dirclient.Client) or a federation's read set
// (*dirclient.ReadSet: the nearest healthy replica, failing over to the seed).
type DirectoryFinder struct{ C Discoverer }

// Discoverer answers GET /v1/discover.
type Discoverer interface {
	Discover(ctx context.Context, q dirclient.Query) (*wire.NodeList, error)
}

// Find implements Finder.
func (f DirectoryFinder) Find(ctx context.Context, q Query) ([]Target, error) {
	nl, err := f.C.Discover(ctx, dirclient.Query{Intent: q.Intent, QoS: q.QoS, Region: q.Region, Limit: discoverLimit})
	if err != nil {
		return nil, err
	}
	var out []Target
	keyless := 0
	for _, n := range nl.Nodes {
		if n.Endpoint == "" || !n.Available {
			continue
		}
		if n.CXPublicKey == nil && !q.AllowPlaintext {
			keyless++
			continue
		}
		out = append(out, Target{Path: PathHTTP, NodeID: n.NodeID, Node: n, Plaintext: q.AllowPlaintext, Echo: echoOnly(n, q.Intent)})
	}
	if len(out) == 0 && keyless > 0 {
		return nil, wire.Errorf(wire.CodeE064, "%d node(s) serve %s but none advertises an IICP-CX key; refusing to send the payload in plaintext", keyless, q.Intent)
	}
	return out, nil
}

// HTTPTransport posts attempts to the target's POST /v1/task
// (client.PostTask): sealed with IICP-CX to a keyed node, plaintext to a
// keyless one only when the target allows it, answers read in every
// dialect deployed nodes speak. The credential travels in
// X-IICP-Consumer-Token.
type HTTPTransport struct {
	// HTTP posts tasks; nil uses a client with no overall timeout (the
	// context carries the task's deadline).
	HTTP *http.Client
}

// Send implements Transport.
func (tr HTTPTransport) Send(ctx context.Context, t Target, call *wire.Call, credential string) (*wire.Response, Sent, error) {
	resp, st, err := httpapi.PostTask(ctx, tr.HTTP, t.Node, call, credential, t.Plaintext)
	sent := Sent{HTTPStatus: st.HTTPStatus, Encrypted: st.Encrypted}
	var werr *wire.Error
	if err != nil && errors.As(err, &werr) {
		// An IICP-CX key this client cannot seal to: nothing was sent,
		// and there is no plaintext fallback (§6).
		return nil, sent, NotSent(err)
	}
	return resp, sent, err
}

// ForDirectory is the Router a Go program without a mesh uses: discover
// through dc (one directory, or a *dirclient.ReadSet reading from a
// federation's nearest healthy replica), POST /v1/task over hc (nil: no
// overall timeout).
func ForDirectory(dc Discoverer, hc *http.Client, opts ...Option) (*Router, error) {
	opts = append([]Option{WithTransport(PathHTTP, HTTPTransport{HTTP: hc})}, opts...)
	return New([]Finder{DirectoryFinder{C: dc}}, opts...)
}

// echoOnly reports whether a discovered node offers intent only through
// meshnode's echo backend.
func echoOnly(n wire.NodeSummary, intent string) bool {
	served := false
	for _, c := range n.Capabilities {
		if c.Intent != intent {
			continue
		}
		if !wire.EchoOnly(c.Models) {
			return false
		}
		served = true
	}
	return served
}
