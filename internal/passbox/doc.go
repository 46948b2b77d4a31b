// Package passbox seals small secrets under a passphrase: scrypt (N=2^15,
// r=8, p=1, a 16-byte random salt) derives a 32-byte key, XChaCha20-Poly1305
// (random 24-byte nonce) encrypts and authenticates the plaintext, and the
// caller's additional data binds the box to its file kind and header. It is
// the one passphrase scheme of meshnode: the operator key file
// (internal/operator) and the identity bundle (internal/idbundle) both use
// it.
//
// Open bounds the cost parameters it accepts, so a tampered box cannot make
// it allocate gigabytes or spin for hours, and reports a wrong passphrase
// and a tampered box alike as ErrWrongPassphrase (authenticated decryption
// cannot tell them apart).
//
// passbox imports only the standard library and golang.org/x/crypto; it
// performs no I/O.
package passbox
