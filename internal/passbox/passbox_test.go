package passbox

import (
	"bytes"
	"errors"
	"testing"
)

// TestSealOpen: a box opens with its passphrase and additional data only;
// any altered field, another passphrase or other additional data is
// refused; out-of-bounds cost parameters are refused before any work.
func TestSealOpen(t *testing.T) {
	secret, pw, ad := []byte("the seed"), []byte("correct horse"), []byte("kind\n1")
	b, err := Seal(secret, pw, ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(b.Ciphertext), secret) {
		t.Fatal("plaintext in the box")
	}
	got, err := Open(b, pw, ad)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %v %q", err, got)
	}
	cases := []struct {
		name   string
		mutate func(*Box)
		pw, ad []byte
		want   error
	}{
		{"wrong passphrase", func(*Box) {}, []byte("wrong"), ad, ErrWrongPassphrase},
		{"other additional data", func(*Box) {}, pw, []byte("kind\n2"), ErrWrongPassphrase},
		{"altered ciphertext", func(x *Box) { x.Ciphertext = flip(x.Ciphertext) }, pw, ad, ErrWrongPassphrase},
		{"huge N", func(x *Box) { x.N = 1 << 30 }, pw, ad, ErrMalformed},
		{"N not a power of two", func(x *Box) { x.N = 3 }, pw, ad, ErrMalformed},
		{"huge r", func(x *Box) { x.R = 1000 }, pw, ad, ErrMalformed},
		{"unknown aead", func(x *Box) { x.AEAD = "aes-gcm" }, pw, ad, ErrMalformed},
		{"bad nonce", func(x *Box) { x.Nonce = "AAAA" }, pw, ad, ErrMalformed},
		{"empty passphrase", func(*Box) {}, nil, ad, ErrEmptyPassphrase},
	}
	for _, c := range cases {
		x := *b
		c.mutate(&x)
		if _, err := Open(&x, c.pw, c.ad); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := Seal(secret, nil, ad); !errors.Is(err, ErrEmptyPassphrase) {
		t.Fatalf("seal without passphrase: %v", err)
	}
}

// flip changes the first base64 character of s (always a change).
func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}
