package cx

import (
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/meshnode/meshnode/internal/paths"
)

// DefaultFileName is the key ring file in the node's state directory.
const DefaultFileName = "cx_keys.json"

// fileVersion is the key file format version.
const fileVersion = 1

// maxFileBytes bounds the key file read: MaxKeys entries are far smaller.
const maxFileBytes = 64 << 10

// errNoRing reports that no key file exists yet.
var errNoRing = errors.New("cx: no key ring file")

// ringFile is the on-disk key ring (JSON, mode 0600 in a 0700 state dir):
//
//	{"version":1,"node_id":"<uuid>","keys":[
//	  {"key_id":"<16 hex>","private_key":"<base64url 32 bytes>",
//	   "created_at":"<RFC 3339>","not_after":"<RFC 3339>","retired_at":"<RFC 3339>"?}]}
//
// keys[0] is the current key (no retired_at); the others are retired keys
// still in their grace period. key_id is stored for operators reading the
// file and re-derived on load to detect corruption.
type ringFile struct {
	Version int           `json:"version"`
	NodeID  string        `json:"node_id,omitempty"`
	Keys    []ringFileKey `json:"keys"`
}

type ringFileKey struct {
	KeyID      string `json:"key_id"`
	PrivateKey string `json:"private_key"`
	CreatedAt  string `json:"created_at"`
	NotAfter   string `json:"not_after"`
	RetiredAt  string `json:"retired_at,omitempty"`
}

// loadRing reads the ring at path. A file other users can read is refused.
func loadRing(path string) ([]*ringKey, string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", errNoRing
	}
	if err != nil {
		return nil, "", fmt.Errorf("cx: opening key ring: %w", err)
	}
	defer f.Close()
	if err := paths.CheckPrivate(path); err != nil {
		return nil, "", fmt.Errorf("cx: key ring: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("cx: reading key ring: %w", err)
	}
	if len(data) > maxFileBytes {
		return nil, "", fmt.Errorf("cx: key ring file larger than %d bytes", maxFileBytes)
	}
	return parseRing(data)
}

// parseRing validates the file contents; any inconsistency is an error
// rather than a silently repaired ring, since the file holds secrets.
func parseRing(data []byte) ([]*ringKey, string, error) {
	var rf ringFile
	if err := json.Unmarshal(data, &rf); err != nil {
		return nil, "", fmt.Errorf("cx: key ring is not valid JSON: %w", err)
	}
	if rf.Version != fileVersion {
		return nil, "", fmt.Errorf("cx: key ring version %d not supported", rf.Version)
	}
	if len(rf.Keys) > MaxKeys {
		return nil, "", fmt.Errorf("cx: key ring holds %d keys, limit %d", len(rf.Keys), MaxKeys)
	}
	keys := make([]*ringKey, 0, len(rf.Keys))
	for i, fk := range rf.Keys {
		k, err := fk.parse()
		if err != nil {
			return nil, "", fmt.Errorf("cx: key ring entry %d: %w", i, err)
		}
		if i > 0 && k.retired.IsZero() {
			return nil, "", fmt.Errorf("cx: key ring entry %d: more than one current key", i)
		}
		keys = append(keys, k)
	}
	return keys, rf.NodeID, nil
}

func (fk ringFileKey) parse() (*ringKey, error) {
	raw, err := decode(fk.PrivateKey)
	if err != nil || len(raw) != keySize {
		return nil, errors.New("private_key is not 32 base64url bytes")
	}
	priv, err := ecdh.X25519().NewPrivateKey(raw)
	if err != nil {
		return nil, errors.New("private_key is not an X25519 key")
	}
	created, err := time.Parse(time.RFC3339, fk.CreatedAt)
	if err != nil {
		return nil, errors.New("created_at is not RFC 3339")
	}
	notAfter, err := time.Parse(time.RFC3339, fk.NotAfter)
	if err != nil {
		return nil, errors.New("not_after is not RFC 3339")
	}
	k := &ringKey{priv: priv, id: KeyID(priv.PublicKey()), alias: SDKKeyID(priv.PublicKey()), created: created.UTC(), notAfter: notAfter.UTC()}
	if fk.KeyID != k.id {
		return nil, errors.New("key_id does not match the private key")
	}
	if fk.RetiredAt != "" {
		retired, err := time.Parse(time.RFC3339, fk.RetiredAt)
		if err != nil {
			return nil, errors.New("retired_at is not RFC 3339")
		}
		k.retired = retired.UTC()
	}
	return k, nil
}

// saveRing writes keys atomically with mode 0600.
func saveRing(path, nodeID string, keys []*ringKey) error {
	rf := ringFile{Version: fileVersion, NodeID: nodeID, Keys: make([]ringFileKey, 0, len(keys))}
	for _, k := range keys {
		fk := ringFileKey{
			KeyID:      k.id,
			PrivateKey: encode(k.priv.Bytes()),
			CreatedAt:  k.created.Format(time.RFC3339),
			NotAfter:   k.notAfter.Format(time.RFC3339),
		}
		if !k.retired.IsZero() {
			fk.RetiredAt = k.retired.Format(time.RFC3339)
		}
		rf.Keys = append(rf.Keys, fk)
	}
	data, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return fmt.Errorf("cx: encoding key ring: %w", err)
	}
	if err := paths.WriteFileAtomic(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("cx: writing key ring: %w", err)
	}
	return nil
}
