package main

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/internal/identity"
)

func newIDCmd(e *env, g *globals) *cobra.Command {
	var asJSON bool
	return withJSON(&cobra.Command{
		Use:   "id",
		Short: "Print this node's IDs (node ID and libp2p peer ID)",
		Long: `Print the node ID (the IICP node_id, derived from the identity key) and the libp2p
peer ID (the same key on the mesh). Reads the identity key; does not create it.`,
		Example: `  meshnode id
  meshnode id --json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			p, err := resolvePaths(e, g)
			if err != nil {
				return err
			}
			id, err := identity.Load(p.IdentityKey)
			if errors.Is(err, fs.ErrNotExist) {
				return withCode(exitFailure, fmt.Errorf("no identity yet at %s (run `meshnode up` once)", p.IdentityKey))
			}
			if err != nil {
				return withCode(exitFailure, err)
			}
			if b, ok, err := identity.ReadBinding(p.NodeKeyBinding); err == nil && ok {
				_ = id.WithBinding(b) // a node_id carried over by rotation or recovery
			}
			pid, err := id.PeerID()
			if err != nil {
				return withCode(exitFailure, err)
			}
			if asJSON {
				return printJSON(e.stdout, map[string]string{"node_id": id.NodeID(), "peer_id": pid.String()})
			}
			fmt.Fprintf(e.stdout, "node ID  %s\npeer ID  %s\n", id.NodeID(), pid)
			return nil
		},
	}, &asJSON)
}

func newPathsCmd(e *env, g *globals) *cobra.Command {
	var asJSON bool
	return withJSON(&cobra.Command{
		Use:   "paths",
		Short: "Print where meshnode keeps its config and state",
		Example: `  meshnode paths
  meshnode --home /tmp/n2 paths --json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			p, err := resolvePaths(e, g)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(e.stdout, p)
			}
			rows := [][2]string{
				{"config dir", p.ConfigDir}, {"state dir", p.StateDir}, {"config file", p.ConfigFile},
				{"identity key", p.IdentityKey}, {"credentials", p.Credentials}, {"operator token", p.OperatorToken},
				{"operator deleg.", p.OperatorDelegation},
				{"runtime file", p.Runtime}, {"admin token", p.AdminToken}, {"directory db", p.DirectoryDB},
			}
			for _, r := range rows {
				fmt.Fprintf(e.stdout, "%-15s %s\n", r[0], r[1])
			}
			return nil
		},
	}, &asJSON)
}

func newVersionCmd(e *env) *cobra.Command {
	var asJSON bool
	return withJSON(&cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: `  meshnode version --json`,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if asJSON {
				return printJSON(e.stdout, map[string]string{"version": version(), "go": runtime.Version(),
					"os": runtime.GOOS, "arch": runtime.GOARCH})
			}
			fmt.Fprintf(e.stdout, "meshnode %s (%s %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}, &asJSON)
}

func withJSON(cmd *cobra.Command, v *bool) *cobra.Command {
	cmd.Flags().BoolVar(v, "json", false, "print JSON")
	return cmd
}
