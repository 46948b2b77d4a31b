package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/wire"
)

// completeTimeout bounds asking the running node for completions: a shell
// must not hang on a Tab press.
const completeTimeout = 2 * time.Second

// wellKnownIntents are offered for --intent in both spellings call accepts.
var wellKnownIntents = []string{wire.IntentChat, wire.IntentCompletion, wire.IntentEmbedding, wire.IntentSummarise}

// registerCallCompletions makes Tab after --intent, --model and --qos offer
// values instead of file names: the well-known intents (short and URN
// forms) plus those the running node's mesh peers serve, the models those
// peers advertise, and the QoS classes.
func registerCallCompletions(cmd *cobra.Command, e *env, g *globals) {
	_ = cmd.RegisterFlagCompletionFunc("qos", cobra.FixedCompletions(
		[]string{wire.QoSRealtime, wire.QoSInteractive, wire.QoSBatch}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("intent", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		var out []string
		for _, urn := range wellKnownIntents {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(urn, "urn:iicp:intent:"), ":v1"), urn)
		}
		for _, p := range nodePeers(e, g) {
			out = append(out, p.Intents...)
		}
		return dedupe(out), cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("model", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		var out []string
		for _, p := range nodePeers(e, g) {
			out = append(out, p.Models...)
		}
		return dedupe(out), cobra.ShellCompDirectiveNoFileComp
	})
}

// nodePeers asks the node running for this --home for its peer table; nil
// when none runs.
func nodePeers(e *env, g *globals) []admin.Peer {
	p, err := resolvePaths(e, g)
	if err != nil {
		return nil
	}
	c, err := admin.Dial(p)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
	defer cancel()
	peers, _ := c.Peers(ctx)
	return peers
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
