package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/internal/paths"
)

// dialNode finds the node running for this --home.
func dialNode(e *env, g *globals) (*admin.Client, error) {
	p, err := resolvePaths(e, g)
	if err != nil {
		return nil, err
	}
	c, err := admin.Dial(p)
	if err != nil {
		return nil, notRunning(err)
	}
	return c, nil
}

func notRunning(err error) error {
	if errors.Is(err, admin.ErrNotRunning) {
		return withCode(exitNotRunning, err)
	}
	return withCode(exitFailure, err)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// queryNode runs one quick admin query against the node for this --home
// and prints its answer as JSON or with text (status and peers share it).
func queryNode[T any](ctx context.Context, e *env, g *globals, asJSON bool,
	get func(*admin.Client, context.Context) (T, error), text func(io.Writer, T)) error {
	c, err := dialNode(e, g)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, admin.QuickTimeout)
	defer cancel()
	v, err := get(c, ctx)
	if err != nil {
		return notRunning(err)
	}
	if asJSON {
		return printJSON(e.stdout, v)
	}
	text(e.stdout, v)
	return nil
}

func newStatusCmd(e *env, g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the running node's state",
		Long: `Show what the running node is doing: directory registrations and their state, the
source IP the directory observes (iicp-core.md §11.2), mesh peers, load and served tasks.
Read from the node's loopback admin endpoint, authenticated by the 0600 admin token in
the state directory.`,
		Example: `  meshnode status
  meshnode status --json | jq .directories
  meshnode --home /tmp/n2 status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return queryNode(cmd.Context(), e, g, asJSON, (*admin.Client).Status, printStatus)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printReads says which directory serves reads (discover) for each seed
// the node writes to, and the state of every candidate.
func printReads(tw io.Writer, reads []admin.DirectoryReads) {
	for _, r := range reads {
		serving := "none reachable"
		for _, d := range r.Directories {
			if d.Serving {
				serving = fmt.Sprintf("%s (%s)", d.URL, d.Role)
			}
		}
		fmt.Fprintf(tw, "reads for %s\t%s; writes go to the seed\n", r.Seed, serving)
		for _, d := range r.Directories {
			line := "not probed yet"
			if d.Probed {
				line = "down"
				if d.Healthy {
					line = fmt.Sprintf("healthy, rtt %.1f ms", d.RTTMs)
				}
			}
			line += fmt.Sprintf(", %d reads", d.Reads)
			if d.Failures > 0 {
				line += fmt.Sprintf(", %d failed", d.Failures)
			}
			if d.Signed {
				line += ", signed answers"
			}
			if !d.Healthy && d.LastError != "" {
				line += ", last error: " + d.LastError
			}
			fmt.Fprintf(tw, "  %s %s (%s)\t%s\n", d.Role, d.URL, d.Source, line)
		}
	}
}

func printStatus(w io.Writer, st *admin.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "node ID\t%s\n", st.NodeID)
	if st.PeerID != "" {
		fmt.Fprintf(tw, "peer ID\t%s\n", st.PeerID)
	}
	fmt.Fprintf(tw, "version\t%s (up %s)\n", st.Version, (time.Duration(st.UptimeS) * time.Second).String())
	fmt.Fprintf(tw, "HTTP bridge\t%s\n", st.HTTPURL)
	fmt.Fprintf(tw, "endpoint\t%s\n", st.Endpoint)
	fmt.Fprintf(tw, "directory mode\t%s\n", st.DirectoryMode)
	printDirectories(tw, st)
	printHealth(tw, st)
	printMesh(tw, st)
	tw.Flush()
}

// printDirectories is status's per-directory lines, observed IP and operator.
func printDirectories(tw io.Writer, st *admin.Status) {
	for _, d := range st.Directories {
		line := string(d.State)
		if !d.LastHeartbeat.IsZero() {
			line += fmt.Sprintf(", last heartbeat %s ago (%d sent)", time.Since(d.LastHeartbeat).Round(time.Second), d.Heartbeats)
		}
		if d.LastError != "" {
			line += ", last error: " + d.LastError
		}
		if !d.NextRetry.IsZero() {
			line += fmt.Sprintf(", next attempt in %s", max(0, time.Until(d.NextRetry)).Round(100*time.Millisecond))
		}
		fmt.Fprintf(tw, "directory %s\t%s\n", d.Directory, line)
		if r := reputationLine(d.Reputation); r != "" {
			fmt.Fprintf(tw, "\t%s\n", r)
		}
		if d.EndpointMismatch {
			fmt.Fprintf(tw, "\tobserved IP %s differs from the endpoint host (NAT or reverse proxy?)\n", d.ObservedSourceIP)
		}
	}
	printReads(tw, st.DirectoryReads)
	if st.ObservedSourceIP != "" {
		fmt.Fprintf(tw, "observed IP\t%s\n", st.ObservedSourceIP)
	}
	if o := st.Operator; o != nil {
		line := "delegation sent in REGISTER"
		if o.Problem != "" {
			line = "delegation NOT sent: " + o.Problem
		}
		if o.Fingerprint != "" {
			line = fmt.Sprintf("%s, %s until %s", o.Fingerprint, line, o.NotAfter.Format(time.RFC3339))
		}
		fmt.Fprintf(tw, "operator\t%s\n", line)
	}
}

// printHealth is status's health, load, intents, served tasks and CX lines.
func printHealth(tw io.Writer, st *admin.Status) {
	h := st.Health
	if h.Status != "ok" {
		fmt.Fprintf(tw, "health\t%s, backend %s does not answer: unavailable (not routed to) until it does\n", h.Status, h.Backend)
	} else {
		fmt.Fprintf(tw, "health\t%s, backend %s\n", h.Status, h.Backend)
	}
	fmt.Fprintf(tw, "load\t%.2f (%d of %d slots busy)\n", h.Load, h.ActiveJobs, h.MaxConcurrent)
	fmt.Fprintf(tw, "intents\t%s\n", strings.Join(h.Intents, ", "))
	fmt.Fprintf(tw, "models\t%s\n", strings.Join(h.Models, ", "))
	var served []string
	for k, v := range st.Served {
		served = append(served, fmt.Sprintf("%s=%d", k, v))
	}
	if len(served) == 0 {
		served = []string{"none yet"}
	}
	sort.Strings(served)
	fmt.Fprintf(tw, "served tasks\t%s\n", strings.Join(served, " "))
	cxLine := fmt.Sprintf("key %s, %d sealed tasks opened", st.CX.KeyID, st.CX.Opened)
	if n := sumCounts(st.CX.Failures); n > 0 {
		cxLine += fmt.Sprintf(", %d refused", n)
	}
	fmt.Fprintf(tw, "IICP-CX\t%s\n", cxLine)
}

// printMesh is status's mesh and membership lines.
func printMesh(tw io.Writer, st *admin.Status) {
	if !st.Mesh.Enabled {
		fmt.Fprintf(tw, "mesh\tdisabled\n")
		return
	}
	prov := "not yet provided to the DHT"
	if st.Mesh.Provided {
		prov = "intents provided to the DHT"
	}
	fmt.Fprintf(tw, "mesh\t%d peers known, %d connections, %s (meshnode peers lists them)\n", st.Mesh.Peers, st.Mesh.Connections, prov)
	for _, a := range st.Mesh.Addrs {
		fmt.Fprintf(tw, "\t%s\n", a)
	}
	if exp := st.Mesh.MembershipExpiresAt; exp != nil {
		fmt.Fprintf(tw, "membership\tvalid until %s (renewed at half-life from the directory)\n", exp.Format(time.RFC3339))
	} else {
		fmt.Fprintf(tw, "membership\tnone yet: mesh peers accept this node's calls once a directory issues one\n")
	}
}

func newPeersCmd(e *env, g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the mesh peers the running node knows",
		Example: `  meshnode peers
  meshnode peers --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return queryNode(cmd.Context(), e, g, asJSON, (*admin.Client).Peers, func(w io.Writer, ps []admin.Peer) {
				printPeers(w, e.stderr, ps)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// peerOperator is the OPERATOR column: the proven operator's fingerprint,
// "(yours)" when it is this node's own operator, "-" when none was proven.
func peerOperator(p admin.Peer) string {
	switch {
	case p.Operator == "":
		return "-"
	case p.SameOperator:
		return p.Operator + " (yours)"
	}
	return p.Operator
}

// printPeers writes the peer table to w; an empty table gets a note on
// stderr, so stdout stays a table for scripts.
func printPeers(w, stderr io.Writer, ps []admin.Peer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tNODE\tVIA\tLOAD\tJOBS\tRTT\tLAST SEEN\tINTENTS\tBREAKER\tOPERATOR")
	for _, p := range ps {
		id := p.PeerID
		if len(id) > 16 {
			id = "…" + id[len(id)-12:]
		}
		node := p.NodeID
		if len(node) > 8 {
			node = node[:8]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\n", id, node, via(p.Conns), p.Load, jobs(p), rtt(p.RTTMs),
			ago(p.LastSeen), shortIntents(p.Intents), p.Breaker, peerOperator(p))
	}
	tw.Flush()
	if len(ps) == 0 {
		fmt.Fprintln(stderr, "no peers yet")
	}
}

// via names the transports of the open connections to a peer ("tcp",
// "quic", "tcp+quic"; "-" when none is open).
func via(conns []string) string {
	var tcp, quic bool
	for _, c := range conns {
		switch {
		case strings.Contains(c, "/quic"):
			quic = true
		case strings.Contains(c, "/tcp/"):
			tcp = true
		}
	}
	switch {
	case tcp && quic:
		return "tcp+quic"
	case tcp:
		return "tcp"
	case quic:
		return "quic"
	}
	return "-"
}

func newTokenCmd(e *env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: "Print the token the node accepts in auth.node_token",
		Long: `Print, alone on one line, the token the node currently accepts in auth.node_token:
the one its (first) directory issued, or with --no-directory the locally generated
operator token (0600 in the state directory). Give it only to callers you trust: it is
an operator capability credential (iicp-core.md §3.1 errata v1.5.1).`,
		Example: `  meshnode token
  # only this node accepts it: use it when the directory lists this node alone
  meshnode call --directory http://127.0.0.1:8010 --token "$(meshnode token)" "hi"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := resolvePaths(e, g)
			if err != nil {
				return err
			}
			tok, err := currentToken(cmd.Context(), p)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, tok)
			return nil
		},
	}
}

// currentToken asks the running node; without one, a directory-less node's
// operator token file still answers.
func currentToken(ctx context.Context, p paths.Paths) (string, error) {
	if c, err := admin.Dial(p); err == nil {
		ctx, cancel := context.WithTimeout(ctx, admin.QuickTimeout)
		defer cancel()
		tok, err := c.NodeToken(ctx)
		if err == nil {
			return tok, nil
		}
		if !errors.Is(err, admin.ErrNotRunning) {
			return "", withCode(exitFailure, err)
		}
	}
	if b, err := os.ReadFile(p.OperatorToken); err == nil {
		if err := paths.CheckPrivate(p.OperatorToken); err != nil {
			return "", withCode(exitFailure, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", withCode(exitNotRunning, admin.ErrNotRunning)
}

func sumCounts(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

func jobs(p admin.Peer) string {
	if p.FromDHT {
		return "?" // known from a DHT provider record only: no advert yet
	}
	return fmt.Sprintf("%d/%d", p.ActiveJobs, p.MaxConcurrent)
}

func rtt(ms float64) string {
	if ms == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", ms)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

// shortIntents drops the common URN prefix: "llm:chat:v1" reads better in
// a table than the full urn:iicp:intent:llm:chat:v1.
func shortIntents(in []string) string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.TrimPrefix(s, "urn:iicp:intent:")
	}
	return strings.Join(out, ",")
}

// reputationLine is what the directory's last PONG said about this node
// and how much of its outcome history the directory has acknowledged.
func reputationLine(r dirclient.Reputation) string {
	if r.Score == nil {
		return ""
	}
	line := fmt.Sprintf("reputation %.2f", *r.Score)
	if r.Model != "" {
		line += " (" + r.Model + ")"
	}
	line += fmt.Sprintf(", tasks reported %d ok / %d failed", r.ReportedSuccess, r.ReportedFailed)
	if r.BatchAccepted != "" {
		line += ", last batch accepted " + r.BatchAccepted
	}
	if r.PendingBatch != "" {
		line += ", batch " + r.PendingBatch + " awaiting acknowledgement"
	}
	return line
}
