package operator

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/meshnode/meshnode/internal/passbox"
	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/wire"
)

// Key file format.
const (
	keyKind    = "meshnode-operator-key"
	keyVersion = 1
	// maxKeyFile bounds what Load reads.
	maxKeyFile = 16 << 10
	// DefaultTTL is how long a delegation is valid unless asked otherwise:
	// short-TTL is the revocation baseline (§3.1), a month keeps renewal
	// a monthly chore.
	DefaultTTL = 30 * 24 * time.Hour
)

// Errors a caller may want to tell apart.
var (
	ErrExists          = errors.New("an operator key already exists there (use --force to replace it, which orphans every delegation it signed)")
	ErrWrongPassphrase = errors.New("wrong passphrase for the operator key")
	ErrNeedPassphrase  = errors.New("the operator key is passphrase-protected: set MESHNODE_OPERATOR_PASSPHRASE or use --passphrase-file")
	ErrBadKeyFile      = errors.New("not a meshnode operator key file")
)

// Key is a loaded operator key.
type Key struct {
	priv        ed25519.PrivateKey
	DisplayName string
	CreatedAt   time.Time
	Encrypted   bool
}

// keyFile is the on-disk JSON. PrivateKey (the 32-byte seed, base64) is
// set only when unencrypted; Sealed only when encrypted.
type keyFile struct {
	Kind        string       `json:"kind"`
	Version     int          `json:"version"`
	PublicKey   string       `json:"public_key"`
	DisplayName string       `json:"display_name,omitempty"`
	CreatedAt   string       `json:"created_at"`
	PrivateKey  string       `json:"private_key,omitempty"`
	Sealed      *passbox.Box `json:"encrypted,omitempty"`
}

// DefaultKeyPath is $XDG_CONFIG_HOME/meshnode-operator/operator.key
// (~/.config when unset): outside every node's state and --home.
func DefaultKeyPath(env paths.Env) (string, error) {
	if env == nil {
		env = os.Getenv
	}
	base := env("XDG_CONFIG_HOME")
	if base == "" || !filepath.IsAbs(base) {
		home := env("HOME")
		if home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("no XDG_CONFIG_HOME and no home directory: %w", err)
			}
			home = h
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "meshnode-operator", "operator.key"), nil
}

// Create generates an operator key and writes it to path (0600, directory
// 0700). A non-empty passphrase seals the private key. It refuses to
// overwrite an existing file unless force.
func Create(path, displayName string, passphrase []byte, force bool, now time.Time) (*Key, error) {
	k, err := Generate(displayName, now)
	if err != nil {
		return nil, err
	}
	if err := k.Save(path, passphrase, force); err != nil {
		return nil, err
	}
	return k, nil
}

// Generate makes a fresh operator key in memory (Save writes it).
func Generate(displayName string, now time.Time) (*Key, error) {
	if displayName != "" {
		if e := wire.ValidateDisplayName(displayName); e != nil {
			return nil, fmt.Errorf("display name: %s", e.Message)
		}
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the operator key: %w", err)
	}
	return &Key{priv: priv, DisplayName: displayName, CreatedAt: now.UTC().Truncate(time.Second)}, nil
}

// Save writes k to path (0600, directory 0700), sealed when passphrase is
// non-empty, refusing to overwrite an existing file unless force.
func (k *Key) Save(path string, passphrase []byte, force bool) error {
	if _, err := os.Stat(path); err == nil && !force {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	k.Encrypted = len(passphrase) > 0
	f := keyFile{Kind: keyKind, Version: keyVersion, PublicKey: k.PublicKeyB64(), DisplayName: k.DisplayName,
		CreatedAt: k.CreatedAt.Format(time.RFC3339)}
	if k.Encrypted {
		var err error
		if f.Sealed, err = seal(k.priv.Seed(), passphrase); err != nil {
			return err
		}
	} else {
		f.PrivateKey = base64.StdEncoding.EncodeToString(k.priv.Seed())
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := paths.WriteFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing the operator key: %w", err)
	}
	return nil
}

// SignRotate signs the §3.16 rotation of k to next for a directory's
// challenge nonce.
func (k *Key) SignRotate(next *Key, nonce string, now time.Time) wire.OperatorKeyRotate {
	return wire.SignOperatorKeyRotate(k.priv, next.priv, nonce, now.Unix())
}

// Load reads the key at path. The file must be 0600 (or stricter).
// passphrase is asked only when the key is sealed.
func Load(path string, passphrase func() ([]byte, error)) (*Key, error) {
	if err := paths.CheckPrivate(path); err != nil {
		return nil, err
	}
	f, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	var seed []byte
	if f.Sealed != nil {
		if passphrase == nil {
			return nil, ErrNeedPassphrase
		}
		pw, err := passphrase()
		if err != nil {
			return nil, err
		}
		if len(pw) == 0 {
			return nil, ErrNeedPassphrase
		}
		if seed, err = open(f.Sealed, pw); err != nil {
			return nil, err
		}
	} else if seed, err = base64.StdEncoding.DecodeString(f.PrivateKey); err != nil {
		return nil, fmt.Errorf("%s: %w", path, ErrBadKeyFile)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s: %w", path, ErrBadKeyFile)
	}
	k := &Key{priv: ed25519.NewKeyFromSeed(seed), DisplayName: f.DisplayName, Encrypted: f.Sealed != nil}
	k.CreatedAt, _ = time.Parse(time.RFC3339, f.CreatedAt)
	if k.PublicKeyB64() != f.PublicKey {
		return nil, fmt.Errorf("%s: the private key does not match public_key: %w", path, ErrBadKeyFile)
	}
	return k, nil
}

func readKeyFile(path string) (*keyFile, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var f keyFile
	dec := json.NewDecoder(&limitedReader{r: fh, n: maxKeyFile})
	if err := dec.Decode(&f); err != nil || f.Kind != keyKind || f.Version != keyVersion {
		return nil, fmt.Errorf("%s: %w", path, ErrBadKeyFile)
	}
	return &f, nil
}

// PublicKey is the operator's public key.
func (k *Key) PublicKey() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// PublicKeyB64 is the public key as a delegation carries it (standard base64).
func (k *Key) PublicKeyB64() string { return base64.StdEncoding.EncodeToString(k.PublicKey()) }

// Fingerprint is the short public fingerprint directories show.
func (k *Key) Fingerprint() string { return wire.OperatorFingerprint(k.PublicKey()) }

// Delegate signs nodeID's delegation, valid for ttl from now.
func (k *Key) Delegate(nodeID string, ttl time.Duration, now time.Time) (wire.OperatorDelegation, error) {
	if !wire.ValidUUIDv4(nodeID) {
		return wire.OperatorDelegation{}, fmt.Errorf("node id %q is not a UUID v4 (see meshnode info)", nodeID)
	}
	if ttl <= 0 {
		return wire.OperatorDelegation{}, errors.New("delegation lifetime must be positive")
	}
	return wire.SignDelegation(k.priv, nodeID, now.Add(ttl).Unix()), nil
}

// Rename signs a display-name change at now (POST /v1/operator/rename).
func (k *Key) Rename(name string, now time.Time) (wire.OperatorRename, error) {
	if e := wire.ValidateDisplayName(name); e != nil {
		return wire.OperatorRename{}, fmt.Errorf("display name: %s", e.Message)
	}
	return wire.SignRename(k.priv, name, now.Unix()), nil
}

// seal and open wrap the one passphrase scheme (internal/passbox); the
// key kind is the authenticated data, so a box cut from another kind of
// file does not open here.
func seal(seed, passphrase []byte) (*passbox.Box, error) {
	return passbox.Seal(seed, passphrase, []byte(keyKind))
}

func open(b *passbox.Box, passphrase []byte) ([]byte, error) {
	seed, err := passbox.Open(b, passphrase, []byte(keyKind))
	switch {
	case errors.Is(err, passbox.ErrWrongPassphrase):
		return nil, ErrWrongPassphrase
	case err != nil:
		return nil, ErrBadKeyFile
	}
	return seed, nil
}

// limitedReader stops after n bytes with an error, so an oversize file is
// refused rather than truncated into valid JSON.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("file too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
