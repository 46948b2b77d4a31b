package route

import (
	"context"
	"slices"
	"sort"

	"github.com/meshnode/meshnode/wire"
)

// LocalOffer lists this node's own capabilities for the model catalogue
// (routing to this node is WithLocal's job).
type LocalOffer struct {
	NodeID string
	Caps   func() []wire.Capability
}

// Offer is one node's capabilities as a source saw them.
type Offer struct {
	NodeID string
	Caps   []wire.Capability
}

// Offerer lists the nodes a source knows and what they serve (for the
// model catalogue, GET /v1/models).
type Offerer interface {
	Offers(ctx context.Context, intents []string) []Offer
}

// Offers implements Offerer: this node.
func (f LocalOffer) Offers(context.Context, []string) []Offer {
	if f.Caps == nil {
		return nil
	}
	return []Offer{{NodeID: f.NodeID, Caps: f.Caps()}}
}

// Offers implements Offerer: the peer table's adverts (node_id and models
// as the peers signed them; hints, never proof of service).
func (f MeshFinder) Offers(context.Context, []string) []Offer {
	var out []Offer
	for _, p := range f.M.Peers() {
		if p.NodeID == "" {
			continue
		}
		o := Offer{NodeID: p.NodeID}
		for _, c := range p.Caps {
			o.Caps = append(o.Caps, wire.Capability{Intent: c.Intent, Models: c.Models})
		}
		out = append(out, o)
	}
	return out
}

// Offers implements Offerer: a directory's discover list per intent
// (errors leave the directory out).
func (f DirectoryFinder) Offers(ctx context.Context, intents []string) []Offer {
	var out []Offer
	for _, in := range intents {
		ts, err := f.Find(ctx, Query{Intent: in, AllowPlaintext: true})
		if err != nil {
			continue
		}
		for _, t := range ts {
			out = append(out, Offer{NodeID: t.NodeID, Caps: t.Node.Capabilities})
		}
	}
	return out
}

// Model is one model the known nodes offer.
type Model struct {
	ID string
	// Intents the model is offered for; Serving counts the distinct nodes
	// offering it.
	Intents []string
	Serving int
}

// Models merges what the offerers list into one catalogue, sorted by ID:
// a node counts once per model however many sources list it.
func Models(ctx context.Context, intents []string, sources ...Offerer) []Model {
	type acc struct {
		intents []string
		nodes   map[string]bool
	}
	byID := map[string]*acc{}
	for _, src := range sources {
		for _, o := range src.Offers(ctx, intents) {
			for _, c := range o.Caps {
				if len(intents) > 0 && !slices.Contains(intents, c.Intent) {
					continue
				}
				for _, m := range c.Models {
					a := byID[m]
					if a == nil {
						a = &acc{nodes: map[string]bool{}}
						byID[m] = a
					}
					a.nodes[o.NodeID] = true
					if !slices.Contains(a.intents, c.Intent) {
						a.intents = append(a.intents, c.Intent)
					}
				}
			}
		}
	}
	out := make([]Model, 0, len(byID))
	for id, a := range byID {
		sort.Strings(a.intents)
		out = append(out, Model{ID: id, Intents: a.intents, Serving: len(a.nodes)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
