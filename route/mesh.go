package route

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/wire"
)

// MeshFinder offers the mesh peers that serve a call's intent: the peer
// table (signed gossip adverts; DHT provider lookups widen it in the
// background), ranked by mesh's local selection value
// (docs/spec-decisions.md ## mesh). Peers with no node_id are left out: a
// consumer token names the node it is for.
type MeshFinder struct{ M *mesh.Mesh }

// Find implements Finder.
func (f MeshFinder) Find(_ context.Context, q Query) ([]Target, error) {
	call := &wire.Call{Intent: q.Intent, Model: q.Model, Constraints: wire.Constraints{Region: q.Region}}
	var out []Target
	for _, p := range f.M.Candidates(call) {
		if p.NodeID == "" {
			continue
		}
		out = append(out, Target{Path: PathMesh, NodeID: p.NodeID, PeerID: p.PeerID.String(), Peer: p,
			Echo: p.EchoOnly(q.Intent), Score: f.M.Value(p, call)})
	}
	if len(out) == 0 && q.Model != "" {
		return nil, unknownModel(f.M, q)
	}
	return out, nil
}

// unknownModel is IICP-E029 when mesh peers serve the intent but none the
// pinned model, naming the models they do offer; nil otherwise.
func unknownModel(m *mesh.Mesh, q Query) error {
	var models []string
	for _, p := range m.Candidates(&wire.Call{Intent: q.Intent, Constraints: wire.Constraints{Region: q.Region}}) {
		for _, c := range p.Caps {
			for _, mo := range c.Models {
				if c.Intent == q.Intent && !slices.Contains(models, mo) {
					models = append(models, mo)
				}
			}
		}
	}
	if len(models) == 0 {
		return nil
	}
	slices.Sort(models)
	return wire.Errorf(wire.CodeE029, "no mesh peer serves model %q for %s; models offered: %s (pin one of them, or omit --model)",
		q.Model, q.Intent, strings.Join(models, ", "))
}

// MeshTransport sends attempts over a libp2p task stream to the target's
// peer (mesh.Call pinned to that peer, one attempt; the mesh's own peer
// breakers still guard it). The libp2p secure channel ends at the serving
// node, so the payload carries no IICP-CX envelope.
type MeshTransport struct{ M *mesh.Mesh }

// Send implements Transport.
func (tr MeshTransport) Send(ctx context.Context, t Target, call *wire.Call, credential string) (*wire.Response, Sent, error) {
	if t.Peer.PeerID == "" {
		return nil, Sent{}, NotSent(errors.New("mesh target without a peer"))
	}
	opts := mesh.CallOptions{Peer: t.Peer.PeerID, MaxAttempts: 1, Credential: mesh.FixedCredential(credential)}
	resp, _, err := tr.M.Call(ctx, call, opts)
	switch {
	case err == nil:
		return resp, Sent{}, nil
	case errors.Is(err, mesh.ErrNoCandidate), errors.Is(err, mesh.ErrClosed):
		return nil, Sent{}, NotSent(err)
	}
	return resp, Sent{}, err
}
