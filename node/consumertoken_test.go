package node

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/spectest"
	"github.com/meshnode/meshnode/wire"
)

// signToken builds a consumer token the way iicp-dir.md §3.12 describes it,
// independently of the verifier: sign domain || b64url(payload JSON).
func signToken(t testing.TB, key ed25519.PrivateKey, claims map[string]any) string {
	t.Helper()
	raw, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString(raw)
	sig := ed25519.Sign(key, []byte("iicp:consumer-token:v1\n"+b64))
	return b64 + "." + hex.EncodeToString(sig)
}

func testKey(t testing.TB, seedByte byte) ed25519.PrivateKey {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = seedByte
	}
	return ed25519.NewKeyFromSeed(seed)
}

func claims(now time.Time, aud, intent string) map[string]any {
	return map[string]any{"v": 1, "iss": "https://dir.test", "sub": "caller-node", "aud": aud,
		"intent": intent, "iat": now.Unix(), "exp": now.Unix() + 300}
}

// Known answer, produced independently with Python's `cryptography`
// (Ed25519 seed 0x07×32, claims below with sorted keys): a change in the
// signing input or encoding is caught, not just self-consistency.
const (
	kaPayload = "eyJhdWQiOiJiIiwiZXhwIjoxNzAwMDAwMzAwLCJpYXQiOjE3MDAwMDAwMDAsImludGVudCI6IioiLCJpc3MiOiJodHRwczovL2Rpci50ZXN0Iiwic3ViIjoiYSIsInYiOjF9"
	kaSig     = "6bcf39c5686b16ecf25085efc9f619bb32a54c97f37ba5b082c9a2ad9fd3b792498edec3a92b55f0422ec05d9b5e2bf01c0847b05c1db677e1abd62112cabe07"
)

func TestConsumerToken_KnownAnswer(t *testing.T) {
	key := testKey(t, 7)
	c := map[string]any{"v": 1, "iss": "https://dir.test", "sub": "a", "aud": "b", "intent": "*", "iat": 1700000000, "exp": 1700000300}
	if tok := signToken(t, key, c); tok != kaPayload+"."+kaSig {
		t.Fatalf("test signer disagrees with the known answer: %s", tok)
	}
	v := NewConsumerTokenVerifier(key.Public().(ed25519.PublicKey))
	got, err := v.Verify(kaPayload+"."+kaSig, "b", wire.IntentChat, time.Unix(1700000100, 0))
	if err != nil || got.Sub != "a" || got.Iss != "https://dir.test" || got.Exp != 1700000300 {
		t.Fatalf("verify: %+v %v", got, err)
	}
	// Padding on the payload is tolerated only if it was signed that way.
	if _, err := v.Verify(kaPayload+"=."+kaSig, "b", wire.IntentChat, time.Unix(1700000100, 0)); !errors.Is(err, ErrTokenSignature) {
		t.Fatalf("re-padded payload: %v", err)
	}
}

// The spec fixture fixtures/profiles/policy-detail-disclosure-v0.json carries
// directory-signed consumer-token vectors; they must verify here too.
func TestConsumerToken_SpecFixtureVectors(t *testing.T) {
	raw := spectest.Read(t, "fixtures", "profiles", "policy-detail-disclosure-v0.json")
	var fx struct {
		V struct {
			Now      int64  `json:"evaluated_at_unix"`
			Key      string `json:"public_key_hex"`
			Sub      string `json:"expected_subject"`
			Aud      string `json:"expected_target_node_id"`
			Intent   string `json:"expected_intent"`
			Valid    string `json:"valid_consumer_token"`
			Expired  string `json:"expired_consumer_token"`
			Tampered string `json:"tampered_consumer_token"`
		} `json:"crypto_vectors"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	pub, err := hex.DecodeString(fx.V.Key)
	if err != nil {
		t.Fatal(err)
	}
	v := NewConsumerTokenVerifier(pub)
	now := time.Unix(fx.V.Now, 0)
	c, err := v.Verify(fx.V.Valid, fx.V.Aud, fx.V.Intent, now)
	if err != nil || c.Sub != fx.V.Sub {
		t.Fatalf("valid vector: %+v %v", c, err)
	}
	if _, err := v.Verify(fx.V.Tampered, fx.V.Aud, fx.V.Intent, now); !errors.Is(err, ErrTokenSignature) {
		t.Fatalf("tampered vector: %v", err)
	}
	// The expired vector is 1 s past exp: inside the 10 s task-path grace
	// (errata v1.5.2), outside it 11 s later.
	if _, err := v.Verify(fx.V.Expired, fx.V.Aud, fx.V.Intent, now); err != nil {
		t.Fatalf("expired vector inside grace: %v", err)
	}
	if _, err := v.Verify(fx.V.Expired, fx.V.Aud, fx.V.Intent, now.Add(ConsumerTokenGrace)); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired vector past grace: %v", err)
	}
}

func TestConsumerToken_Rejections(t *testing.T) {
	key := testKey(t, 1)
	other := testKey(t, 2)
	now := time.Unix(1800000000, 0)
	v := NewConsumerTokenVerifier(key.Public().(ed25519.PublicKey))
	good := signToken(t, key, claims(now, testNodeID, wire.IntentChat))
	cases := []struct {
		name string
		tok  string
		at   time.Time
		want error
	}{
		{"valid", good, now, nil},
		// Grace: 10 s past exp still accepted, 11 s not.
		{"within grace", good, now.Add(310 * time.Second), nil},
		{"expired", good, now.Add(311 * time.Second), ErrTokenExpired},
		{"wildcard intent", signToken(t, key, claims(now, testNodeID, "*")), now, nil},
		{"other intent", signToken(t, key, claims(now, testNodeID, wire.IntentEmbedding)), now, ErrTokenIntent},
		{"other audience", signToken(t, key, claims(now, "another-node", wire.IntentChat)), now, ErrTokenAudience},
		{"other key", signToken(t, other, claims(now, testNodeID, wire.IntentChat)), now, ErrTokenSignature},
		{"version 2", signToken(t, key, map[string]any{"v": 2, "aud": testNodeID, "intent": "*", "exp": now.Unix() + 60}), now, ErrTokenVersion},
		{"no exp", signToken(t, key, map[string]any{"v": 1, "aud": testNodeID, "intent": "*"}), now, ErrTokenExpired},
		{"no dot", strings.ReplaceAll(good, ".", ""), now, ErrTokenMalformed},
		{"short sig", good[:len(good)-2], now, ErrTokenMalformed},
		{"non-hex sig", good[:len(good)-2] + "zz", now, ErrTokenMalformed},
		{"oversize", strings.Repeat("a", MaxConsumerTokenLen+1), now, ErrTokenMalformed},
		{"signed garbage", signedRaw(t, key, "not json"), now, ErrTokenMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(tc.tok, testNodeID, wire.IntentChat, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := NewConsumerTokenVerifier().Verify(good, testNodeID, wire.IntentChat, now); !errors.Is(err, ErrTokenNoKey) {
		t.Fatalf("no key: %v", err)
	}
}

func signedRaw(t testing.TB, key ed25519.PrivateKey, payload string) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString([]byte(payload))
	return b64 + "." + hex.EncodeToString(ed25519.Sign(key, []byte("iicp:consumer-token:v1\n"+b64)))
}

// TASK-1 via errata v1.5.2: a valid X-IICP-Consumer-Token authorizes without
// auth.node_token; without a directory key the node falls back to node_token.
func TestTASK_1_ConsumerTokenAuthorizes(t *testing.T) {
	key := testKey(t, 3)
	now := time.Now()
	f := newFixture(t, 2)
	call := chatCall("hi")
	call.Auth = nil
	tok := signToken(t, key, claims(now, testNodeID, wire.IntentChat))
	caller := wire.Caller{Transport: "http", ConsumerToken: tok}
	// No directory key yet: the token cannot be checked, node_token is required.
	wantError(t, f.eng.Execute(context.Background(), call, caller), wire.CodeUnauthorized, wire.StatusError)

	f.eng.SetDirectoryKeys(key.Public().(ed25519.PublicKey))
	if r := f.eng.Execute(context.Background(), call, caller); r.Error != nil {
		t.Fatalf("valid consumer token refused: %+v", r.Error)
	}
	// Token for another node: refused, and a bad token does not lock out a
	// caller that also holds the node token.
	bad := wire.Caller{Transport: "http", ConsumerToken: signToken(t, key, claims(now, "other", wire.IntentChat))}
	call = chatCall("hi")
	call.Auth = nil
	wantError(t, f.eng.Execute(context.Background(), call, bad), wire.CodeUnauthorized, wire.StatusError)
	call.Auth = &wire.Auth{NodeToken: testToken}
	if r := f.eng.Execute(context.Background(), call, bad); r.Error != nil {
		t.Fatalf("node token with bad consumer token refused: %+v", r.Error)
	}
	if strings.Contains(f.logs.String(), tok[:40]) {
		t.Fatal("consumer token logged")
	}
}
