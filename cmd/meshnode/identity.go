package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/internal/idbundle"
	"github.com/meshnode/meshnode/internal/identity"
	"github.com/meshnode/meshnode/internal/paths"
)

// envIdentityPassphrase is the passphrase of identity bundles when no
// --passphrase-file is given (else a terminal prompt).
const envIdentityPassphrase = "MESHNODE_IDENTITY_PASSPHRASE"

// errNeedBundlePassphrase: no passphrase source for a bundle.
var errNeedBundlePassphrase = errors.New("an identity bundle needs a passphrase: set " + envIdentityPassphrase + " or use --passphrase-file")

// defaultBindingTTL is how long a rotation or recovery statement may take
// to reach the directory (the next `meshnode up`).
const defaultBindingTTL = 7 * 24 * time.Hour

func newIdentityCmd(e *env, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Move, rotate and recover a node's identity",
		Long: `A node's identity is its Ed25519 key (node_id and peer ID), its IICP-CX keys, its directory
credentials (node tokens, metrics-batch state), its mesh membership credential and its
operator delegation, all in the node's state directory. "identity export" seals them into
one passphrase-protected file; "identity import" verifies that file and installs it in
another home, where "meshnode up" keeps the node_id and, at the directory, its reputation.
"identity rotate" replaces the node key while keeping the node_id.

The passphrase comes from --passphrase-file, else $` + envIdentityPassphrase + `, else a prompt.`,
		Example: `  meshnode --home /srv/node1 identity export --out node1.identity
  meshnode --home /srv/node1 identity import node1.identity
  meshnode --home /srv/node1 identity rotate`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newIdentityExportCmd(e, g), newIdentityImportCmd(e, g), newIdentityRotateCmd(e, g))
	return cmd
}

// stoppedHome runs fn while holding the home's node lock, so no node runs
// on it meanwhile (its credentials would change under an export or a
// rotation).
func stoppedHome(p paths.Paths, fn func() error) error {
	if err := p.EnsureDirs(); err != nil {
		return withCode(exitFailure, err)
	}
	lock, err := paths.AcquireLock(filepath.Join(p.StateDir, paths.NodeLockFile))
	var le *paths.LockedError
	if errors.As(err, &le) {
		return withCode(exitFailure, fmt.Errorf("a node runs on this home (%v): stop it first", le))
	}
	if err != nil {
		return withCode(exitFailure, err)
	}
	defer lock.Release()
	return fn()
}

func newIdentityExportCmd(e *env, g *globals) *cobra.Command {
	var out, pwFile string
	cmd := &cobra.Command{
		Use:   "export --out FILE",
		Short: "Seal this node's identity into a passphrase-protected file",
		Long: `Write the node's identity (key, CX keys, directory credentials, membership credential,
operator delegation) to FILE, encrypted with a passphrase (scrypt + XChaCha20-Poly1305).
The node must be stopped. Keep the file as secret as the home itself; stop using the
old home after importing the file elsewhere: two nodes with one identity fight over it.`,
		Example: `  meshnode --home /srv/node1 identity export --out node1.identity
  MESHNODE_IDENTITY_PASSPHRASE=... meshnode identity export --out /backup/node.identity`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if out == "" {
				return usageErr("--out is required")
			}
			p, err := resolvePaths(e, g)
			if err != nil {
				return err
			}
			pw, err := readPassphrase(e, pwFile, envIdentityPassphrase, "Bundle passphrase: ", true, errNeedBundlePassphrase)
			if err != nil {
				return err
			}
			if len(pw) == 0 {
				return usageErr("the bundle needs a non-empty passphrase")
			}
			return stoppedHome(p, func() error {
				raw, nodeID, err := idbundle.Export(p, pw, time.Now())
				if err != nil {
					return withCode(exitFailure, err)
				}
				if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
					return withCode(exitFailure, err)
				}
				if err := paths.WriteFileAtomic(out, raw, 0o600); err != nil {
					return withCode(exitFailure, fmt.Errorf("writing %s: %w", out, err))
				}
				fmt.Fprintf(e.stdout, "exported node %s to %s (0600, passphrase-protected)\n", nodeID, out)
				fmt.Fprintln(e.stdout, "Import it with `meshnode identity import` on the new machine, then stop using this home.")
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "bundle file to write")
	cmd.Flags().StringVar(&pwFile, "passphrase-file", "", "read the passphrase from this file (else $"+envIdentityPassphrase+", else a prompt)")
	return cmd
}

func newIdentityImportCmd(e *env, g *globals) *cobra.Command {
	var pwFile string
	var force bool
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Install an exported identity into this home",
		Long: `Decrypt and verify FILE (written by "identity export") and install the identity in this
home: the node key must go by the node_id the file records and the operator delegation, if
any, must verify for it. A home that already has an identity is refused unless --force, and
a home a running node holds is refused always. "meshnode up" on this home then keeps the
node_id, and the directory keeps its registration and reputation.`,
		Example: `  meshnode --home /srv/node1 identity import node1.identity
  meshnode --home /srv/node1 identity import --force --passphrase-file pw node1.identity`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			p, err := resolvePaths(e, g)
			if err != nil {
				return err
			}
			raw, err := readBundle(args[0])
			if err != nil {
				return withCode(exitFailure, err)
			}
			pw, err := readPassphrase(e, pwFile, envIdentityPassphrase, "Bundle passphrase: ", false, errNeedBundlePassphrase)
			if err != nil {
				return err
			}
			b, err := idbundle.Decode(raw, pw, time.Now())
			if err != nil {
				return withCode(exitFailure, fmt.Errorf("%s: %w", filepath.Base(args[0]), err))
			}
			if err := b.Install(p, force); err != nil {
				return withCode(exitFailure, err)
			}
			for _, w := range b.Warnings {
				fmt.Fprintln(e.stderr, "warning:", w)
			}
			fmt.Fprintf(e.stdout, "imported node %s into %s\nStart it with `meshnode up`: it keeps its node_id and directory registrations.\n", b.NodeID, p.StateDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&pwFile, "passphrase-file", "", "read the passphrase from this file (else $"+envIdentityPassphrase+", else a prompt)")
	cmd.Flags().BoolVar(&force, "force", false, "replace the identity this home already has")
	return cmd
}

// readBundle reads a bundle file, bounded.
func readBundle(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > idbundle.MaxBundle {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), idbundle.ErrMalformed)
	}
	return os.ReadFile(path)
}

func newIdentityRotateCmd(e *env, g *globals) *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the node key, keeping the node_id",
		Long: `Generate a new node key and sign, with the current key, a statement binding the node's
node_id to it (node-key-binding.json). The next "meshnode up" sends the statement in
REGISTER; the directory checks it against the key it has on record for the node_id,
records the rotation and keeps the node's history. The previous key stays beside the new
one as identity.key.previous until you delete it. The node must be stopped. The statement
must reach the directory within --ttl.`,
		Example: `  meshnode --home /srv/node1 identity rotate`,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			p, err := resolvePaths(e, g)
			if err != nil {
				return err
			}
			return stoppedHome(p, func() error { return rotateNodeKey(e, p, ttl) })
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", defaultBindingTTL, "how long the directory accepts the rotation statement")
	return cmd
}

func rotateNodeKey(e *env, p paths.Paths, ttl time.Duration) error {
	if ttl <= 0 {
		return usageErr("--ttl must be positive")
	}
	if _, err := os.Stat(p.IdentityKey); errors.Is(err, fs.ErrNotExist) {
		return withCode(exitFailure, fmt.Errorf("no identity at %s (run meshnode up once)", p.IdentityKey))
	}
	cur, _, err := identity.LoadNode(p)
	if err != nil {
		return withCode(exitFailure, err)
	}
	next, err := cur.Rotate(time.Now(), ttl)
	if err != nil {
		return withCode(exitFailure, err)
	}
	b, _ := next.Binding()
	if err := cur.Save(p.IdentityKey + ".previous"); err != nil {
		return withCode(exitFailure, err)
	}
	if err := identity.WriteBinding(p.NodeKeyBinding, b); err != nil {
		return withCode(exitFailure, err)
	}
	if err := next.Save(p.IdentityKey); err != nil {
		return withCode(exitFailure, err)
	}
	pid, _ := next.PeerID()
	fmt.Fprintf(e.stdout, "rotated the key of node %s\nnew peer ID  %s\nthe directory records the rotation at the next `meshnode up` (statement valid until %s)\n",
		next.NodeID(), pid, time.Unix(b.NotAfter, 0).UTC().Format(time.RFC3339))
	return nil
}
