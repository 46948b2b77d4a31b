package idbundle

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/meshnode/meshnode/internal/identity"
	"github.com/meshnode/meshnode/internal/passbox"
	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/wire"
)

// Format identifiers and bounds.
const (
	Kind    = "meshnode-identity-bundle"
	Version = 1
	// MaxBundle bounds what Decode reads: the files below are small (the
	// largest, the CX ring, is capped at 64 KiB).
	MaxBundle = 1 << 20
	// maxFile bounds each carried file.
	maxFile = 128 << 10
	// cxRingFile is cx.DefaultFileName (kept literal: idbundle carries the
	// file, it does not read it).
	cxRingFile = "cx_keys.json"
)

// Errors a caller may want to tell apart.
var (
	ErrExists    = errors.New("this home already has a node identity (use --force to replace it; the identity it holds is lost unless exported)")
	ErrMalformed = errors.New("not a meshnode identity bundle")
	ErrNoNode    = errors.New("this home has no node identity to export (run meshnode up once)")
	ErrMismatch  = errors.New("the bundle's node key does not go by the node_id it records")
)

// Files are the state-dir files a bundle carries, by name. Everything else
// in a home is machine-local.
func Files(p paths.Paths) map[string]string {
	m := map[string]string{}
	for _, f := range []string{p.IdentityKey, p.NodeKeyBinding, p.Credentials, p.Membership, p.OperatorToken,
		p.OperatorDelegation, filepath.Join(p.StateDir, cxRingFile)} {
		m[filepath.Base(f)] = f
	}
	return m
}

// header is the file's outer JSON.
type header struct {
	Kind      string       `json:"kind"`
	Version   int          `json:"version"`
	NodeID    string       `json:"node_id"`
	CreatedAt string       `json:"created_at"`
	Sealed    *passbox.Box `json:"encrypted"`
}

// payload is the sealed plaintext.
type payload struct {
	NodeID string            `json:"node_id"`
	Files  map[string]string `json:"files"`
}

// Bundle is a decrypted, verified identity.
type Bundle struct {
	NodeID string
	// Files maps a name of Files to its content.
	Files map[string][]byte
	// Warnings are problems that do not stop an import (an expired
	// delegation: sign a fresh one).
	Warnings []string
}

func additionalData(nodeID string) []byte {
	return []byte(Kind + "\n" + strconv.Itoa(Version) + "\n" + nodeID)
}

// Export reads the identity of the home p and seals it under passphrase.
func Export(p paths.Paths, passphrase []byte, now time.Time) ([]byte, string, error) {
	id, err := identity.Load(p.IdentityKey)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", ErrNoNode
	}
	if err != nil {
		return nil, "", err
	}
	pl := payload{Files: map[string]string{}}
	for name, path := range Files(p) {
		b, err := readBounded(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		pl.Files[name] = base64.StdEncoding.EncodeToString(b)
	}
	if b, ok, err := identity.ReadBinding(p.NodeKeyBinding); err != nil {
		return nil, "", err
	} else if ok {
		if err := id.WithBinding(b); err != nil {
			return nil, "", err
		}
	}
	pl.NodeID = id.NodeID()
	plain, _ := json.Marshal(pl)
	box, err := passbox.Seal(plain, passphrase, additionalData(pl.NodeID))
	if err != nil {
		return nil, "", err
	}
	out, _ := json.MarshalIndent(header{Kind: Kind, Version: Version, NodeID: pl.NodeID,
		CreatedAt: now.UTC().Format(time.RFC3339), Sealed: box}, "", "  ")
	return append(out, '\n'), pl.NodeID, nil
}

func readBounded(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxFile {
		return nil, fmt.Errorf("%s is larger than %d bytes; not an identity file", filepath.Base(path), maxFile)
	}
	return os.ReadFile(path)
}

// Decode decrypts and verifies a bundle at unix time now. It never
// touches a home.
func Decode(raw, passphrase []byte, now time.Time) (*Bundle, error) {
	if len(raw) > MaxBundle {
		return nil, ErrMalformed
	}
	var h header
	if json.Unmarshal(raw, &h) != nil || h.Kind != Kind || h.Version != Version || h.Sealed == nil || !wire.ValidUUIDv4(h.NodeID) {
		return nil, ErrMalformed
	}
	plain, err := passbox.Open(h.Sealed, passphrase, additionalData(h.NodeID))
	if errors.Is(err, passbox.ErrMalformed) {
		return nil, ErrMalformed
	}
	if err != nil {
		return nil, err
	}
	var pl payload
	if json.Unmarshal(plain, &pl) != nil || pl.NodeID != h.NodeID {
		return nil, ErrMalformed
	}
	b := &Bundle{NodeID: h.NodeID, Files: map[string][]byte{}}
	ref, _ := paths.Resolve("/", func(string) string { return "" }) // names only
	known := Files(ref)
	for name, enc := range pl.Files {
		if _, ok := known[name]; !ok {
			return nil, fmt.Errorf("%w: unknown file %q", ErrMalformed, name)
		}
		if b.Files[name], err = base64.StdEncoding.DecodeString(enc); err != nil || len(b.Files[name]) > maxFile {
			return nil, ErrMalformed
		}
	}
	if err := b.verify(now); err != nil {
		return nil, err
	}
	return b, nil
}

// verify checks the node key against node_id and the delegation against
// both.
func (b *Bundle) verify(now time.Time) error {
	keyName, bindName, delName := "identity.key", "node-key-binding.json", "operator-delegation.json"
	id, err := identity.Parse(b.Files[keyName])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if raw, ok := b.Files[bindName]; ok {
		bind, err := identity.ParseBinding(raw)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if err := id.WithBinding(bind); err != nil {
			return fmt.Errorf("%w: %v", ErrMismatch, err)
		}
	}
	if id.NodeID() != b.NodeID {
		return ErrMismatch
	}
	if raw, ok := b.Files[delName]; ok {
		var d wire.OperatorDelegation
		if json.Unmarshal(raw, &d) != nil {
			return fmt.Errorf("%w: the operator delegation is not JSON", ErrMalformed)
		}
		_, err := wire.VerifyDelegation(&d, b.NodeID, now.Unix())
		switch {
		case errors.Is(err, wire.ErrDelegationExpired):
			b.Warnings = append(b.Warnings, "the operator delegation has expired: sign a fresh one with meshnode operator delegate")
		case err != nil:
			return fmt.Errorf("the bundle's operator delegation does not verify for node %s: %w", b.NodeID, err)
		}
	}
	return nil
}

// Install writes b into the home p. It holds the home's node lock while it
// writes (a running node refuses it), refuses to replace an existing
// identity unless force, and with force removes the carried files the
// bundle does not have, so nothing of the replaced identity lingers.
func (b *Bundle) Install(p paths.Paths, force bool) error {
	if err := p.EnsureDirs(); err != nil {
		return err
	}
	lock, err := paths.AcquireLock(filepath.Join(p.StateDir, paths.NodeLockFile))
	if err != nil {
		var le *paths.LockedError
		if errors.As(err, &le) {
			return fmt.Errorf("a node runs on this home (%v); stop it before importing", le)
		}
		return err
	}
	defer lock.Release()
	if _, err := os.Stat(p.IdentityKey); err == nil && !force {
		return ErrExists
	}
	files := Files(p)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		content, ok := b.Files[name]
		if !ok {
			if err := os.Remove(files[name]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing the old %s: %w", name, err)
			}
			continue
		}
		if err := paths.WriteFileAtomic(files[name], content, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}
