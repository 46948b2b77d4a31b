package directory

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/meshnode/meshnode/internal/paths"
)

// SigningKeyFile is the name of the directory's Ed25519 signing key (it
// signs consumer tokens and dispatch tickets) beside its database: PEM
// PKCS#8, mode 0600.
const SigningKeyFile = "directory-signing.key"

// legacySigningKey is the meta row where earlier versions kept the key's
// seed inside the database.
const legacySigningKey = "signing_key_ed25519_seed"

// loadSigningKey returns the signing key from keyPath (narrowing a looser
// mode to 0600), moves a key an earlier version kept in the database into
// the file (and deletes it from the database), or creates a new one.
func loadSigningKey(ctx context.Context, st *store, keyPath string) (ed25519.PrivateKey, error) {
	if b, err := os.ReadFile(keyPath); err == nil {
		if err := os.Chmod(keyPath, 0o600); err != nil {
			return nil, fmt.Errorf("restricting %s: %w", SigningKeyFile, err)
		}
		return parseSigningKey(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", SigningKeyFile, err)
	}
	var k ed25519.PrivateKey
	var seed []byte
	err := st.db.QueryRowContext(ctx, `SELECT v FROM meta WHERE k = ?`, legacySigningKey).Scan(&seed)
	switch {
	case err == nil && len(seed) == ed25519.SeedSize:
		k = ed25519.NewKeyFromSeed(seed)
	case err == nil:
		return nil, errors.New("the signing key stored in the database has the wrong size")
	case errors.Is(err, sql.ErrNoRows):
		if _, k, err = ed25519.GenerateKey(nil); err != nil {
			return nil, fmt.Errorf("generating the signing key: %w", err)
		}
	default:
		return nil, fmt.Errorf("reading the stored signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding the signing key: %w", err)
	}
	if err := paths.WriteFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", SigningKeyFile, err)
	}
	if _, err := st.db.ExecContext(ctx, `DELETE FROM meta WHERE k = ?`, legacySigningKey); err != nil {
		return nil, fmt.Errorf("removing the signing key from the database: %w", err)
	}
	return k, nil
}

func parseSigningKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s is not a PEM private key", SigningKeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SigningKeyFile, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s is not an Ed25519 key", SigningKeyFile)
	}
	return ek, nil
}
