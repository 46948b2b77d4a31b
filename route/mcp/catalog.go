package mcp

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/wire"
)

// DefaultProbe are the intents a Catalog asks directories about: the
// registered LLM intents (registry/intents.json). A directory has no
// "list every intent" query, so intents outside this list become tools
// only when this node or a mesh peer serves them.
var DefaultProbe = []string{wire.IntentChat, wire.IntentCompletion, wire.IntentEmbedding, wire.IntentSummarise}

// probeBudget bounds one round of directory probes.
const probeBudget = 3 * time.Second

// DefaultCatalogTTL is how long a Catalog reuses its directory answers.
const DefaultCatalogTTL = 30 * time.Second

// Catalog lists the intents the mesh is known to serve, from three
// sources: this node (Local), the mesh peer table (signed adverts; a
// peer's claim only adds a tool name, and the call still goes through the
// router, which trusts nothing it did not prove), and each directory's
// discover answer for the Probe intents. Directory answers are cached for
// TTL; an unreachable directory adds nothing. Safe for concurrent use.
type Catalog struct {
	Local       func() []string
	Mesh        *mesh.Mesh
	Directories []*dirclient.Client
	// Probe: nil uses DefaultProbe. TTL: 0 uses DefaultCatalogTTL.
	Probe []string
	TTL   time.Duration

	mu      sync.Mutex
	fetched time.Time
	cached  []string
}

// Intents implements Config.Intents.
func (c *Catalog) Intents(ctx context.Context) []string {
	var out []string
	if c.Local != nil {
		out = append(out, c.Local()...)
	}
	if c.Mesh != nil {
		for _, p := range c.Mesh.Peers() {
			if p.NodeID == "" || !p.Available {
				continue
			}
			for _, cp := range p.Caps {
				out = append(out, cp.Intent)
			}
		}
	}
	out = append(out, c.fromDirectories(ctx)...)
	slices.Sort(out)
	return slices.Compact(out)
}

// fromDirectories returns the probe intents some directory lists an
// available node for, cached for TTL.
func (c *Catalog) fromDirectories(ctx context.Context) []string {
	if len(c.Directories) == 0 {
		return nil
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = DefaultCatalogTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.fetched.IsZero() && time.Since(c.fetched) < ttl {
		return c.cached
	}
	probe := c.Probe
	if probe == nil {
		probe = DefaultProbe
	}
	// One budget for the whole probe: an unreachable directory delays a
	// tools/list at most this long, once per TTL.
	qctx, cancel := context.WithTimeout(ctx, probeBudget)
	defer cancel()
	var found []string
	for _, in := range probe {
		for _, d := range c.Directories {
			nl, err := d.Discover(qctx, dirclient.Query{Intent: in, Limit: 1})
			if err == nil && len(nl.Nodes) > 0 {
				found = append(found, in)
				break
			}
		}
	}
	c.cached, c.fetched = found, time.Now()
	return found
}
