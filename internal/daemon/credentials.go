package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/internal/paths"
)

// credentialFile is credentials.json: the directory-issued credentials per
// directory URL, mode 0600. Every Session shares one fileStore, so writes
// are serialised and each rewrites the whole (small) file atomically.
type credentialFile struct {
	Version     int                              `json:"version"`
	Directories map[string]dirclient.Credentials `json:"directories"`
}

// fileStore implements client.CredentialStore on credentials.json.
type fileStore struct {
	path string
	mu   sync.Mutex
}

func (f *fileStore) read() (credentialFile, error) {
	cf := credentialFile{Version: 1, Directories: map[string]dirclient.Credentials{}}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return cf, nil
	}
	if err != nil {
		return cf, fmt.Errorf("reading credentials: %w", err)
	}
	if err := paths.CheckPrivate(f.path); err != nil {
		return cf, fmt.Errorf("credentials: %w", err)
	}
	if err := json.Unmarshal(b, &cf); err != nil {
		return cf, fmt.Errorf("credentials file is corrupt: %w", err)
	}
	if cf.Directories == nil {
		cf.Directories = map[string]dirclient.Credentials{}
	}
	return cf, nil
}

// Load implements client.CredentialStore.
func (f *fileStore) Load(dir string) (dirclient.Credentials, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cf, err := f.read()
	if err != nil {
		return dirclient.Credentials{}, false, err
	}
	c, ok := cf.Directories[dir]
	return c, ok, nil
}

// Save implements client.CredentialStore.
func (f *fileStore) Save(dir string, c dirclient.Credentials) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cf, err := f.read()
	if err != nil {
		// A corrupt file must not block the new token from being kept.
		cf = credentialFile{Version: 1, Directories: map[string]dirclient.Credentials{}}
	}
	cf.Directories[dir] = c
	b, err := json.MarshalIndent(cf, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding credentials: %w", err)
	}
	return paths.WriteFileAtomic(f.path, append(b, '\n'), 0o600)
}

// loadOrCreateSecret reads a hex token file, creating a fresh 32-byte one
// (0600) when absent. Used for the operator token of a directory-less node.
func loadOrCreateSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if err := paths.CheckPrivate(path); err != nil {
			return "", err
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < 32 {
			return "", fmt.Errorf("%s holds no usable token", path)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	tok := newSecret()
	if err := paths.WriteFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, nil
}

// newSecret is 32 random bytes, hex (the node_token shape, DIR-REG-05).
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
