package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/wire"
)

// auditLine is one node's verdict in `meshnode audit --json`.
type auditLine struct {
	NodeID    string                 `json:"node_id"`
	Reachable bool                   `json:"reachable"`
	Missing   []string               `json:"missing_models,omitempty"`
	Report    *dirclient.AuditResult `json:"report,omitempty"`
	Error     string                 `json:"error,omitempty"`
}

func newAuditCmd(e *env, g *globals) *cobra.Command {
	var asJSON bool
	var intent string
	cmd := &cobra.Command{
		Use:   "audit [NODE_ID...]",
		Short: "Check other nodes' declared models and report divergent ones to the directory",
		Long: `Run one trust audit (conformance-test-suite.md §3.3f DIR-TRUST-01) as the running node:
list the nodes the node's first directory discovers for --intent (or only NODE_IDs), fetch
each one's GET /iicp/health, and compare the models it registered with those it reports.
A reachable node whose health omits a registered model is reported to the directory
(POST /v1/audit-report, finding declaration_divergence, with this node's token). An
unreachable node is not a violation. No task is sent; reports carry no payload.

The directory counts a report as integrity evidence only from a node registered >= 3 days
with reputation >= 0.55, at most one report per reporter and target a day and two
reporters per target a day (iicp-semantics.md §11.5/§11.8); reports never change the
target's outcome-v2 reputation.`,
		Example: `  meshnode audit
  meshnode audit 7c9e6679-7425-40de-944b-e07fc1f90ae7 --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			lines, err := runAudit(cmd.Context(), e, g, intent, args)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(e.stdout, lines)
			}
			printAudit(e, lines)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the verdicts as JSON")
	cmd.Flags().StringVar(&intent, "intent", wire.IntentChat, "intent whose nodes are audited")
	return cmd
}

// runAudit asks the running node for its directory, node_id and token,
// then checks and reports.
func runAudit(ctx context.Context, e *env, g *globals, intent string, only []string) ([]auditLine, error) {
	c, err := dialNode(e, g)
	if err != nil {
		return nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, admin.QuickTimeout)
	st, err := c.Status(qctx)
	var tok string
	if err == nil {
		tok, err = c.NodeToken(qctx)
	}
	cancel()
	if err != nil {
		return nil, notRunning(err)
	}
	if len(st.Directories) == 0 || st.Directories[0].NodeID == "" || tok == "" {
		return nil, withCode(exitFailure, errors.New("the node is not registered with a directory; start it with --directory and retry"))
	}
	dir, self := st.Directories[0].Directory, st.Directories[0].NodeID
	dc, err := dirclient.New(dir, dirclient.WithUserAgent("meshnode/"+version()))
	if err != nil {
		return nil, withCode(exitFailure, err)
	}
	ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	nl, err := dc.Discover(ctx, dirclient.Query{Intent: intent, Limit: 50})
	if err != nil {
		return nil, withCode(exitFailure, err)
	}
	hc := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var lines []auditLine
	for _, n := range nl.Nodes {
		if n.NodeID == self || (len(only) > 0 && !slices.Contains(only, n.NodeID)) {
			continue
		}
		lines = append(lines, auditOne(ctx, hc, dc, tok, n))
	}
	return lines, nil
}

func auditOne(ctx context.Context, hc *http.Client, dc *dirclient.Client, tok string, n wire.NodeSummary) auditLine {
	d, err := dirclient.CheckDeclaration(ctx, hc, n)
	l := auditLine{NodeID: n.NodeID, Reachable: d.Reachable, Missing: d.Missing}
	if err != nil {
		l.Error = err.Error()
	}
	if d.Divergent() {
		if l.Report, err = dc.AuditReport(ctx, tok, n.NodeID, dirclient.FindingDeclarationDivergence); err != nil {
			l.Error = err.Error()
		}
	}
	return l
}

func printAudit(e *env, lines []auditLine) {
	if len(lines) == 0 {
		fmt.Fprintln(e.stdout, "no other node to audit")
	}
	for _, l := range lines {
		id := l.NodeID
		if len(id) > 8 {
			id = id[:8]
		}
		switch {
		case !l.Reachable:
			fmt.Fprintf(e.stdout, "%s  unreachable (not a violation)\n", id)
		case len(l.Missing) == 0:
			fmt.Fprintf(e.stdout, "%s  declaration consistent\n", id)
		case l.Report == nil:
			fmt.Fprintf(e.stdout, "%s  divergent (missing %s); report failed: %s\n", id, strings.Join(l.Missing, ", "), l.Error)
		case l.Report.IntegrityEvidenceAccepted:
			fmt.Fprintf(e.stdout, "%s  divergent (missing %s); reported: integrity evidence accepted\n", id, strings.Join(l.Missing, ", "))
		default:
			fmt.Fprintf(e.stdout, "%s  divergent (missing %s); reported: acknowledged, suppressed (%s)\n", id,
				strings.Join(l.Missing, ", "), l.Report.SuppressedReason)
		}
	}
}
