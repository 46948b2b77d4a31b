package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/internal/identity"
	"github.com/meshnode/meshnode/internal/operator"
)

// Environment variables shared by the operator subcommands. The
// passphrase is never a flag value (it would show in ps and shell history).
const (
	envOperatorKey        = "MESHNODE_OPERATOR_KEY"
	envOperatorPassphrase = "MESHNODE_OPERATOR_PASSPHRASE"
)

// operatorFlags are the flags every operator subcommand shares.
type operatorFlags struct {
	key            string
	passphraseFile string
}

func (f *operatorFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.key, "key", "", "operator key file (default: $"+envOperatorKey+
		" or ~/.config/meshnode-operator/operator.key; never inside a node's home)")
	cmd.Flags().StringVar(&f.passphraseFile, "passphrase-file", "", "read the key's passphrase from this file (else $"+
		envOperatorPassphrase+", else a prompt)")
}

func (f *operatorFlags) keyPath(e *env) (string, error) {
	if f.key != "" {
		return f.key, nil
	}
	if v := e.get(envOperatorKey); v != "" {
		return v, nil
	}
	p, err := operator.DefaultKeyPath(e.get)
	return p, withCode(exitConfig, err)
}

// passphrase reads the operator key's passphrase: --passphrase-file, then
// the environment, then a terminal prompt (twice when confirm).
func (f *operatorFlags) passphrase(e *env, confirm bool) ([]byte, error) {
	return readPassphrase(e, f.passphraseFile, envOperatorPassphrase, "Operator key passphrase: ", confirm, operator.ErrNeedPassphrase)
}

// readPassphrase reads a passphrase from file, else the environment
// variable envName, else a terminal prompt (twice when confirm); without
// any of them it returns missing. Never a flag value: it would show in ps
// and shell history.
func readPassphrase(e *env, file, envName, prompt string, confirm bool, missing error) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, withCode(exitConfig, fmt.Errorf("reading --passphrase-file: %w", err))
		}
		return bytes.TrimRight(b, "\r\n"), nil
	}
	if v := e.get(envName); v != "" {
		return []byte(v), nil
	}
	in, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return nil, withCode(exitConfig, missing)
	}
	fmt.Fprint(e.stderr, prompt)
	pw, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil || !confirm {
		return pw, err
	}
	fmt.Fprint(e.stderr, "Repeat passphrase: ")
	again, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(e.stderr)
	if err == nil && !bytes.Equal(pw, again) {
		err = usageErr("the passphrases differ")
	}
	return pw, err
}

func (f *operatorFlags) load(e *env) (*operator.Key, string, error) {
	path, err := f.keyPath(e)
	if err != nil {
		return nil, "", err
	}
	k, err := operator.Load(path, func() ([]byte, error) { return f.passphrase(e, false) })
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, withCode(exitFailure, fmt.Errorf("no operator key at %s (run `meshnode operator init`)", path))
	}
	return k, path, withCode(exitFailure, err)
}

func newOperatorCmd(e *env, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Operator identity: one key that vouches for all your nodes",
		Long: `An operator key (Ed25519) identifies the person or organisation running nodes
(iicp-dir.md §3.1 operator_delegation, ADR-045 Phase A). It lives apart from node keys
(~/.config/meshnode-operator/operator.key, mode 0600, optionally passphrase-protected) and
never goes onto a node: "operator delegate" signs a short-lived delegation for one node_id
into that node's home, and the node sends it in every REGISTER. Directories verify it
offline and show the operator's display name and key fingerprint in discovery.`,
		Example: `  meshnode operator init --encrypt --name "Acme Labs"
  meshnode --home /srv/node1 operator delegate
  meshnode operator rename "Acme Labs" --directory https://dir.example`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newOperatorInitCmd(e), newOperatorShowCmd(e), newOperatorDelegateCmd(e, g), newOperatorRenameCmd(e), newOperatorRecoverCmd(e, g), newOperatorRotateCmd(e, g))
	return cmd
}

func newOperatorInitCmd(e *env) *cobra.Command {
	var f operatorFlags
	var name string
	var encrypt, force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the operator key",
		Example: `  meshnode operator init --name "Acme Labs"
  meshnode operator init --encrypt            # prompts for a passphrase
  MESHNODE_OPERATOR_PASSPHRASE=... meshnode operator init --encrypt --key /secure/operator.key`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			path, err := f.keyPath(e)
			if err != nil {
				return err
			}
			var pw []byte
			if encrypt {
				if pw, err = f.passphrase(e, true); err != nil {
					return err
				}
				if len(pw) == 0 {
					return usageErr("--encrypt needs a non-empty passphrase")
				}
			}
			k, err := operator.Create(path, name, pw, force, time.Now())
			if err != nil {
				return withCode(exitFailure, err)
			}
			fmt.Fprintf(e.stdout, "operator key  %s (0600%s)\nfingerprint   %s\npublic key    %s\n", path,
				map[bool]string{true: ", passphrase-protected", false: ""}[k.Encrypted], k.Fingerprint(), k.PublicKeyB64())
			fmt.Fprintln(e.stdout, "Keep this file off your nodes and backed up: it signs their delegations (meshnode operator delegate).")
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&name, "name", "", "public display name (set at a directory with `meshnode operator rename`)")
	cmd.Flags().BoolVar(&encrypt, "encrypt", false, "protect the key with a passphrase (scrypt + XChaCha20-Poly1305)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing key (its delegations stop being renewable)")
	return cmd
}

func newOperatorShowCmd(e *env) *cobra.Command {
	var f operatorFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "show",
		Short:   "Print the operator's public key and fingerprint",
		Example: "  meshnode operator show --json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			k, path, err := f.load(e)
			if err != nil {
				return err
			}
			out := map[string]any{"key_file": path, "public_key": k.PublicKeyB64(), "fingerprint": k.Fingerprint(),
				"display_name": k.DisplayName, "encrypted": k.Encrypted}
			if asJSON {
				return printJSON(e.stdout, out)
			}
			fmt.Fprintf(e.stdout, "key file      %s\nfingerprint   %s\npublic key    %s\ndisplay name  %s\n", path, k.Fingerprint(), k.PublicKeyB64(), k.DisplayName)
			return nil
		},
	}
	f.register(cmd)
	return withJSON(cmd, &asJSON)
}

func newOperatorDelegateCmd(e *env, g *globals) *cobra.Command {
	var f operatorFlags
	var nodeID, out string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "delegate",
		Short: "Sign a node's operator delegation",
		Long: `Sign an operator_delegation {node_id, operator_pub, not_after, sig} for one node.
Without --node-id the node is the one in --home (or the XDG paths): its node_id is read from
its identity key (created when the home is new, as "meshnode up" would) and the delegation is written into its state directory, where "meshnode up"
sends it in REGISTER (a running node for that home is asked to re-register now). With --node-id
the delegation is printed (or written to --out) for a node on another machine. Delegations
expire (--ttl); sign a fresh one before then.`,
		Example: `  meshnode --home /srv/node1 operator delegate
  meshnode operator delegate --node-id 7c9e6679-7425-40de-944b-e07fc1f90ae7 --ttl 168h > delegation.json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			k, _, err := f.load(e)
			if err != nil {
				return err
			}
			target := out
			if nodeID == "" {
				p, err := resolvePaths(e, g)
				if err != nil {
					return err
				}
				if err := p.EnsureDirs(); err != nil {
					return withCode(exitFailure, err)
				}
				// The node's own key, created here on a fresh home exactly
				// as `meshnode up` would, so the first start already sends
				// the delegation.
				id, created, err := identity.LoadNode(p)
				if err != nil {
					return withCode(exitFailure, fmt.Errorf("node identity at %s: %w", p.IdentityKey, err))
				}
				if created {
					fmt.Fprintf(e.stdout, "created the node identity at %s\n", p.IdentityKey)
				}
				nodeID = id.NodeID()
				if target == "" {
					target = operator.DelegationPath(p)
				}
			}
			d, err := k.Delegate(nodeID, ttl, time.Now())
			if err != nil {
				return usageErr("%v", err)
			}
			if target == "" {
				return printJSON(e.stdout, d)
			}
			if err := operator.WriteDelegation(target, d); err != nil {
				return withCode(exitFailure, err)
			}
			fmt.Fprintf(e.stdout, "delegated node %s to operator %s until %s\nwritten to %s\n", d.NodeID, k.Fingerprint(),
				time.Unix(d.NotAfter, 0).UTC().Format(time.RFC3339), target)
			if out == "" {
				tellRunningNode(e, g)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&nodeID, "node-id", "", "node_id to delegate (default: the node in --home)")
	cmd.Flags().StringVar(&out, "out", "", "write the delegation here instead of the node's home / stdout")
	cmd.Flags().DurationVar(&ttl, "ttl", operator.DefaultTTL, "how long the delegation is valid")
	return cmd
}

// tellRunningNode asks a node running for this home to register again,
// so it sends the new delegation now; a node not running sends it when it
// starts.
func tellRunningNode(e *env, g *globals) {
	p, err := resolvePaths(e, g)
	if err != nil {
		return
	}
	c, err := admin.Dial(p)
	if err != nil {
		fmt.Fprintln(e.stdout, "meshnode up sends it in REGISTER when the node starts")
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	if n, err := c.Reregister(ctx); err != nil {
		fmt.Fprintln(e.stdout, "meshnode up sends it in REGISTER when the node starts")
	} else if n == 0 {
		fmt.Fprintln(e.stdout, "the running node presents it on the mesh now (no directory to re-register with)")
	} else {
		fmt.Fprintf(e.stdout, "the running node sends it now (re-registering with %d directories)\n", n)
	}
}

func newOperatorRenameCmd(e *env) *cobra.Command {
	var f operatorFlags
	var dir string
	cmd := &cobra.Command{
		Use:   "rename NAME",
		Short: "Set the operator's public display name at a directory",
		Long: `Send a rename signed by the operator key to a directory (POST /v1/operator/rename): the
directory then shows NAME and the key's fingerprint on every node delegated to this operator.
The directory needs at least one such node registered.`,
		Example: `  meshnode operator rename "Acme Labs" --directory https://dir.example`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return usageErr("--directory is required")
			}
			k, _, err := f.load(e)
			if err != nil {
				return err
			}
			r, err := k.Rename(args[0], time.Now())
			if err != nil {
				return usageErr("%v", err)
			}
			c, err := dirclient.New(dir, dirclient.WithUserAgent("meshnode/"+version()))
			if err != nil {
				return usageErr("--directory: %v", err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			if err := c.OperatorRename(ctx, &r); err != nil {
				return withCode(exitFailure, err)
			}
			fmt.Fprintf(e.stdout, "operator %s is now %q at %s\n", k.Fingerprint(), args[0], dir)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&dir, "directory", "", "directory base URL")
	return cmd
}
