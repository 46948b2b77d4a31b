package dirclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/meshnode/meshnode/internal/httperr"
	"github.com/meshnode/meshnode/wire"
)

// FindingDeclarationDivergence is the v1 audit finding (iicp-dir.md §3.9).
const FindingDeclarationDivergence = "declaration_divergence"

// maxHealthBody bounds a node's /iicp/health answer.
const maxHealthBody = 64 << 10

// Declaration is what a trust audit learnt about one node
// (conformance-test-suite.md §3.3f DIR-TRUST-01): the models it registered
// that its own /iicp/health does not list. Reachable false means the
// health endpoint did not answer with a health body: not a violation.
type Declaration struct {
	NodeID    string
	Reachable bool
	Missing   []string
}

// Divergent reports a reachable node whose registered models are not a
// subset of its health models.
func (d Declaration) Divergent() bool { return d.Reachable && len(d.Missing) > 0 }

// CheckDeclaration fetches n's GET /iicp/health with hc and compares the
// models n registered (its discover capabilities) with those it reports.
// Only the health body's models are read; no task is sent.
func CheckDeclaration(ctx context.Context, hc *http.Client, n wire.NodeSummary) (Declaration, error) {
	d := Declaration{NodeID: n.NodeID}
	if n.Endpoint == "" {
		return d, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(n.Endpoint, "/")+"/iicp/health", nil)
	if err != nil {
		return d, errors.New("node endpoint is not a URL")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return d, httperr.Transport("node", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody))
	if err != nil || resp.StatusCode != http.StatusOK {
		return d, nil
	}
	return compareDeclaration(n, raw), nil
}

// compareDeclaration reads a /iicp/health body (a peer's bytes: anything)
// and lists n's registered models it omits. A body that is not a health
// object with a models list makes the node unverifiable (not reachable).
func compareDeclaration(n wire.NodeSummary, raw []byte) Declaration {
	d := Declaration{NodeID: n.NodeID}
	var h wire.Health
	if json.Unmarshal(raw, &h) != nil || h.Models == nil {
		return d
	}
	d.Reachable = true
	for _, c := range n.Capabilities {
		for _, m := range c.Models {
			if !slices.Contains(h.Models, m) && !slices.Contains(d.Missing, m) {
				d.Missing = append(d.Missing, m)
			}
		}
	}
	return d
}
