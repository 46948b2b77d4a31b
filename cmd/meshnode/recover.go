package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/internal/identity"
	"github.com/meshnode/meshnode/internal/operator"
	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/wire"
)

func newOperatorRecoverCmd(e *env, g *globals) *cobra.Command {
	var f operatorFlags
	var nodeID string
	var ttl, delegTTL time.Duration
	var force bool
	cmd := &cobra.Command{
		Use:   "recover --node-id ID",
		Short: "Give a lost node's node_id to a new node key",
		Long: `When a node's machine (and its key) is lost, the operator key it was delegated to can hand
its node_id to a new key: "operator recover" creates a node key in --home, signs with the
operator key a statement binding the old node_id to it (node-key-binding.json) and a fresh
delegation for the node_id. The next "meshnode up" on that home sends both in REGISTER; a
directory that has the node_id bound to this operator accepts the new key as the same node,
records the recovery and keeps its reputation. The home must not hold another identity
(unless --force, which replaces it and drops its directory credentials).`,
		Example: `  meshnode --home /srv/node1-new operator recover --node-id 7c9e6679-7425-40de-944b-e07fc1f90ae7`,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if !wire.ValidUUIDv4(nodeID) {
				return usageErr("--node-id must be the lost node's node_id (a UUID)")
			}
			if ttl <= 0 || delegTTL <= 0 {
				return usageErr("--ttl and --delegation-ttl must be positive")
			}
			k, _, err := f.load(e)
			if err != nil {
				return err
			}
			p, err := resolvePaths(e, g)
			if err != nil {
				return err
			}
			return stoppedHome(p, func() error { return recoverNode(e, p, k, nodeID, ttl, delegTTL, force) })
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&nodeID, "node-id", "", "node_id of the lost node")
	cmd.Flags().DurationVar(&ttl, "ttl", defaultBindingTTL, "how long the directory accepts the recovery statement")
	cmd.Flags().DurationVar(&delegTTL, "delegation-ttl", operator.DefaultTTL, "lifetime of the fresh delegation")
	cmd.Flags().BoolVar(&force, "force", false, "replace an identity this home already has")
	return cmd
}

func recoverNode(e *env, p paths.Paths, k *operator.Key, nodeID string, ttl, delegTTL time.Duration, force bool) error {
	if _, err := os.Stat(p.IdentityKey); err == nil && !force {
		return withCode(exitFailure, errors.New("this home already has a node identity: recover into a new home, or use --force to replace it"))
	}
	for _, f := range []string{p.Credentials, p.Membership} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return withCode(exitFailure, err)
		}
	}
	id, err := identity.Generate()
	if err != nil {
		return withCode(exitFailure, err)
	}
	now := time.Now()
	b := k.Recover(nodeID, id.Public(), now, ttl)
	if err := id.WithBinding(b); err != nil {
		return withCode(exitFailure, err)
	}
	d, err := k.Delegate(nodeID, delegTTL, now)
	if err != nil {
		return usageErr("%v", err)
	}
	if err := identity.WriteBinding(p.NodeKeyBinding, b); err != nil {
		return withCode(exitFailure, err)
	}
	if err := id.Save(p.IdentityKey); err != nil {
		return withCode(exitFailure, err)
	}
	if err := operator.WriteDelegation(p.OperatorDelegation, d); err != nil {
		return withCode(exitFailure, err)
	}
	fmt.Fprintf(e.stdout, "recovered node %s into %s with a new key (operator %s)\nstart it with `meshnode up` before %s: the directory then accepts the new key as the same node\n",
		nodeID, p.StateDir, k.Fingerprint(), time.Unix(b.NotAfter, 0).UTC().Format(time.RFC3339))
	return nil
}
