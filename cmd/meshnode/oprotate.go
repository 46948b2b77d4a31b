package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/internal/identity"
	"github.com/meshnode/meshnode/internal/operator"
)

func newOperatorRotateCmd(e *env, g *globals) *cobra.Command {
	var f operatorFlags
	var dirs, homes []string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "rotate --directory URL [--node-home HOME ...]",
		Short: "Replace the operator key, moving its nodes to the successor",
		Long: `Generate a successor operator key and hand the operator identity over to it at each
--directory (iicp-dir.md §3.16): the directory issues a single-use challenge, both keys sign
the rotation, and every node bound to the old key moves to the new one with its display
name. The old key's delegations keep their nodes bound (to the successor) for a 7-day
overlap; "operator rotate" re-delegates every --node-home with the new key at once (a
running node re-registers). The successor is kept at <key>.next until every directory
accepted it (run the command again to resume); then the key file holds the successor and
the old key stays at <key>.previous.`,
		Example: `  meshnode operator rotate --directory https://dir.example --node-home /srv/node1 --node-home /srv/node2`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(dirs) == 0 {
				return usageErr("--directory is required (the directories that know your nodes)")
			}
			path, err := f.keyPath(e)
			if err != nil {
				return err
			}
			var pw []byte
			ask := func() ([]byte, error) {
				if pw == nil {
					p, err := f.passphrase(e, false)
					pw = p
					return p, err
				}
				return pw, nil
			}
			cur, err := operator.Load(path, ask)
			if err != nil {
				return withCode(exitFailure, err)
			}
			next, err := successorKey(path+".next", cur, ask, pw)
			if err != nil {
				return withCode(exitFailure, err)
			}
			if err := rotateAt(cmd.Context(), e, dirs, cur, next); err != nil {
				return err
			}
			if err := os.Rename(path, path+".previous"); err != nil {
				return withCode(exitFailure, err)
			}
			if err := os.Rename(path+".next", path); err != nil {
				return withCode(exitFailure, err)
			}
			fmt.Fprintf(e.stdout, "operator key is now %s (the old key is at %s.previous)\n", next.Fingerprint(), path)
			return redelegate(e, homes, next, ttl)
		},
	}
	f.register(cmd)
	cmd.Flags().StringArrayVar(&dirs, "directory", nil, "directory base URL (repeatable)")
	cmd.Flags().StringArrayVar(&homes, "node-home", nil, "node home to re-delegate with the new key (repeatable)")
	cmd.Flags().DurationVar(&ttl, "ttl", operator.DefaultTTL, "lifetime of the new delegations")
	return cmd
}

// successorKey loads the successor a previous run left at path, or makes
// and stores one there (sealed like the current key).
func successorKey(path string, cur *operator.Key, ask func() ([]byte, error), pw []byte) (*operator.Key, error) {
	if next, err := operator.Load(path, ask); err == nil {
		return next, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	next, err := operator.Generate(cur.DisplayName, time.Now())
	if err != nil {
		return nil, err
	}
	if !cur.Encrypted {
		pw = nil
	}
	return next, next.Save(path, pw, false)
}

// rotateAt rotates cur to next at every directory; it reports each and
// fails when any refused.
func rotateAt(ctx context.Context, e *env, dirs []string, cur, next *operator.Key) error {
	failed := 0
	for _, dir := range dirs {
		c, err := dirclient.New(dir, dirclient.WithUserAgent("meshnode/"+version()))
		if err != nil {
			return usageErr("--directory %s: %v", dir, err)
		}
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		n, err := rotateOne(rctx, c, cur, next)
		cancel()
		if err != nil {
			failed++
			fmt.Fprintf(e.stderr, "%s: %v\n", dir, err)
			continue
		}
		fmt.Fprintf(e.stdout, "%s: operator %s rotated to %s, %d nodes moved\n", dir, cur.Fingerprint(), next.Fingerprint(), n)
	}
	if failed > 0 {
		return withCode(exitFailure, fmt.Errorf("%d of %d directories did not accept the rotation; the successor key waits beside the key (.next): run the command again", failed, len(dirs)))
	}
	return nil
}

func rotateOne(ctx context.Context, c *dirclient.Client, cur, next *operator.Key) (int, error) {
	ch, err := c.OperatorChallenge(ctx, cur.PublicKeyB64())
	if err != nil {
		return 0, err
	}
	req := cur.SignRotate(next, ch.Nonce, time.Now())
	return c.OperatorKeyRotate(ctx, &req)
}

// redelegate signs a delegation with k for the node in each home and asks
// a running node to send it.
func redelegate(e *env, homes []string, k *operator.Key, ttl time.Duration) error {
	for _, h := range homes {
		hg := &globals{home: h}
		p, err := resolvePaths(e, hg)
		if err != nil {
			return err
		}
		id, err := identity.Load(p.IdentityKey)
		if err != nil {
			return withCode(exitFailure, fmt.Errorf("--node-home %s: %w", h, err))
		}
		if b, ok, err := identity.ReadBinding(p.NodeKeyBinding); err == nil && ok {
			_ = id.WithBinding(b)
		}
		d, err := k.Delegate(id.NodeID(), ttl, time.Now())
		if err != nil {
			return usageErr("%v", err)
		}
		if err := operator.WriteDelegation(p.OperatorDelegation, d); err != nil {
			return withCode(exitFailure, err)
		}
		fmt.Fprintf(e.stdout, "re-delegated node %s (%s)\n", d.NodeID, h)
		tellRunningNode(e, hg)
	}
	return nil
}
