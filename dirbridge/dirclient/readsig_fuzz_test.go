package dirclient

import (
	"crypto/ed25519"
	"strings"
	"testing"
)

// FuzzParseReplicas: any registry document decodes to entries or an error
// without panicking, and every entry kept passed validation.
func FuzzParseReplicas(f *testing.F) {
	f.Add([]byte(`{"schema_version":"2","replicas":[{"replica_id":"rep-1","did":"did:web:r.example","endpoint":"https://r.example","trust_tier":"low"}]}`), false)
	f.Add([]byte(`{"replicas":[{"did":"did:web:127.0.0.1%3A9","endpoint":"http://127.0.0.1:9"}]}`), true)
	f.Add([]byte(`{"replicas":null}`), false)
	f.Add([]byte(`null`), true)
	f.Fuzz(func(t *testing.T, raw []byte, plaintext bool) {
		got, err := parseReplicas(raw, plaintext)
		if err != nil {
			return
		}
		if len(got) > maxReplicas {
			t.Fatalf("%d entries kept", len(got))
		}
		for _, r := range got {
			if !strings.HasPrefix(r.DID, "did:web:") || (!plaintext && !strings.HasPrefix(r.Endpoint, "https:")) {
				t.Fatalf("invalid entry kept: %+v", r)
			}
		}
	})
}

// FuzzParseDIDKey: any DID document yields a 32-byte key for the asked DID
// or an error, never a panic.
func FuzzParseDIDKey(f *testing.F) {
	f.Add([]byte(`{"id":"did:web:r.example","verificationMethod":[{"publicKeyJwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}]}`))
	f.Add([]byte(`{"id":"did:web:r.example","verificationMethod":[{"publicKeyJwk":null}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		k, err := parseDIDKey(raw, "did:web:r.example")
		if err == nil && len(k) != ed25519.PublicKeySize {
			t.Fatalf("key of %d bytes", len(k))
		}
	})
}

// FuzzVerifyReplicaAnswer: random headers and bodies never verify.
func FuzzVerifyReplicaAnswer(f *testing.F) {
	f.Add("7", "00", []byte(`{"count":0}`), "intent=x")
	f.Add("-1", strings.Repeat("ab", 64), []byte{}, "")
	pub, _, _ := ed25519.GenerateKey(nil)
	f.Fuzz(func(t *testing.T, seq, sig string, body []byte, q string) {
		if verifyReplicaAnswer(pub, "GET", "/v1/discover", q, seq, sig, body) == nil {
			t.Fatal("fuzzed answer verified")
		}
	})
}
