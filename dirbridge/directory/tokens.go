package directory

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// tokenBytes is the node_token entropy: ≥ 32 bytes (DIR-REG-05).
const tokenBytes = 32

// maxTokenLen bounds what we hash; real tokens are 64 hex characters. It
// also keeps bcrypt's 72-byte input limit from silently truncating.
const maxTokenLen = 72

// tokens issues node tokens and turns presented tokens into credential
// lookups. The HMAC index lets bearer-only routes find the node without
// scanning or bcrypt-comparing every row; bcrypt remains the stored proof
// (DIR-REG-07).
type tokens struct {
	secret []byte // directory secret keying the lookup index
	cost   int
	// macs pools keyed HMAC-SHA256 states (Reset returns one to the keyed
	// start): every heartbeat computes an index, and hmac.New allocated
	// three objects each time.
	macs sync.Pool
}

// indexLen is the length of a hex HMAC-SHA256 lookup index.
const indexLen = 2 * sha256.Size

// issue returns a fresh plaintext token (returned once to the node) and its
// stored credential.
func (t *tokens) issue() (string, Credential, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", Credential{}, fmt.Errorf("reading random token: %w", err)
	}
	tok := hex.EncodeToString(b)
	hash, err := bcrypt.GenerateFromPassword([]byte(tok), t.cost)
	if err != nil {
		return "", Credential{}, fmt.Errorf("hashing token: %w", err)
	}
	return tok, Credential{Hash: hash, Index: t.index(tok)}, nil
}

// index is the keyed lookup index of a token: hex HMAC-SHA256(secret, token).
func (t *tokens) index(tok string) string {
	var buf [indexLen]byte
	return string(t.indexInto(&buf, tok))
}

// indexInto writes tok's index into buf without allocating.
func (t *tokens) indexInto(buf *[indexLen]byte, tok string) []byte {
	m, _ := t.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, t.secret)
	}
	m.Reset()
	_, _ = io.WriteString(m, tok)
	var sum [sha256.Size]byte
	hex.Encode(buf[:], m.Sum(sum[:0]))
	t.macs.Put(m)
	return buf[:]
}

// verify finds the node owning tok. The first successful bcrypt check per
// credential is cached (keyed by the index, dropped on rotation), so a
// heartbeat normally costs one HMAC and a map lookup.
func (t *tokens) verify(ix *index, tok string) *entry {
	if tok == "" || len(tok) > maxTokenLen {
		return nil
	}
	var buf [indexLen]byte
	credIndex := t.indexInto(&buf, tok)
	e, verified := ix.tokenOwner(credIndex)
	if e == nil {
		return nil
	}
	// The map hit already proves knowledge of a token with this HMAC; the
	// constant-time compare guards against a mismatched stale entry.
	if len(e.cred.Index) != indexLen || subtle.ConstantTimeCompare([]byte(e.cred.Index), credIndex) != 1 {
		return nil
	}
	if verified {
		return e
	}
	if bcrypt.CompareHashAndPassword(e.cred.Hash, []byte(tok)) != nil {
		return nil
	}
	ix.markVerified(string(credIndex))
	return e
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const p = "bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return ""
	}
	return strings.TrimSpace(h[len(p):])
}
