package passbox

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"
)

// scrypt parameters for new boxes (the 2017 interactive recommendation:
// ~100 ms on a laptop; a stolen file costs an attacker that per guess).
const (
	ScryptN, ScryptR, ScryptP = 1 << 15, 8, 1
	saltSize                  = 16
	// Upper bounds Open accepts: a box asking for more is refused rather
	// than obeyed (2^20 × r=32 is already 4 GiB of scrypt memory).
	maxN, maxR, maxP = 1 << 20, 32, 4
	// maxCiphertext bounds what Open decodes (the identity bundle is the
	// largest user, far below this).
	maxCiphertext = 1 << 20
)

// Algorithm names recorded in a box.
const (
	KDFScrypt   = "scrypt"
	AEADXChaCha = "xchacha20poly1305"
)

// Errors a caller may want to tell apart.
var (
	// ErrWrongPassphrase: authenticated decryption failed (wrong
	// passphrase, or the box or its additional data was altered).
	ErrWrongPassphrase = errors.New("wrong passphrase (or the sealed data was altered)")
	// ErrMalformed: the box is not one Open can read (unknown algorithm,
	// bad base64, out-of-bounds cost parameters).
	ErrMalformed = errors.New("malformed sealed data")
	// ErrEmptyPassphrase: Seal and Open need a passphrase.
	ErrEmptyPassphrase = errors.New("empty passphrase")
)

// Box is a sealed secret as it is stored (JSON, base64 fields).
type Box struct {
	KDF        string `json:"kdf"`
	N          int    `json:"n"`
	R          int    `json:"r"`
	P          int    `json:"p"`
	Salt       string `json:"salt"`
	AEAD       string `json:"aead"`
	Nonce      string `json:"nonce"`
	Ciphertext string `json:"ciphertext"`
}

// Seal encrypts plaintext under passphrase; ad (the caller's file kind and
// header) is authenticated, not encrypted, and must be given again to Open.
func Seal(plaintext, passphrase, ad []byte) (*Box, error) {
	if len(passphrase) == 0 {
		return nil, ErrEmptyPassphrase
	}
	salt := make([]byte, saltSize)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails (Go ≥ 1.24)
	_, _ = rand.Read(nonce)
	aead, err := derive(passphrase, salt, ScryptN, ScryptR, ScryptP)
	if err != nil {
		return nil, err
	}
	ct := aead.Seal(nil, nonce, plaintext, ad)
	enc := base64.StdEncoding.EncodeToString
	return &Box{KDF: KDFScrypt, N: ScryptN, R: ScryptR, P: ScryptP, Salt: enc(salt),
		AEAD: AEADXChaCha, Nonce: enc(nonce), Ciphertext: enc(ct)}, nil
}

// Open decrypts b with passphrase and the additional data it was sealed
// with.
func Open(b *Box, passphrase, ad []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, ErrEmptyPassphrase
	}
	if b == nil || b.KDF != KDFScrypt || b.AEAD != AEADXChaCha || b.N < 2 || b.N > maxN || b.N&(b.N-1) != 0 ||
		b.R < 1 || b.R > maxR || b.P < 1 || b.P > maxP || len(b.Ciphertext) > maxCiphertext*4/3+4 {
		return nil, ErrMalformed
	}
	salt, err1 := base64.StdEncoding.DecodeString(b.Salt)
	nonce, err2 := base64.StdEncoding.DecodeString(b.Nonce)
	ct, err3 := base64.StdEncoding.DecodeString(b.Ciphertext)
	if errors.Join(err1, err2, err3) != nil || len(nonce) != chacha20poly1305.NonceSizeX || len(salt) == 0 {
		return nil, ErrMalformed
	}
	aead, err := derive(passphrase, salt, b.N, b.R, b.P)
	if err != nil {
		return nil, ErrMalformed
	}
	pt, err := aead.Open(nil, nonce, ct, ad)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return pt, nil
}

func derive(passphrase, salt []byte, n, r, p int) (cipher.AEAD, error) {
	k, err := scrypt.Key(passphrase, salt, n, r, p, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving the key-encryption key: %w", err)
	}
	return chacha20poly1305.NewX(k)
}
