package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/spectest"
)

const (
	chat    = "urn:iicp:intent:llm:chat:v1"
	embed   = "urn:iicp:intent:llm:embedding:v1"
	nodeA   = "0b6e1f6c-8c1a-4b7e-9f00-000000000001"
	nodeB   = "0b6e1f6c-8c1a-4b7e-9f00-000000000002"
	callerC = "0b6e1f6c-8c1a-4b7e-9f00-00000000000c"
	testJTI = "00112233445566778899aabbccddeeff"
)

// signRaw builds a consumer token the way iicp-dir.md §3.12 describes it,
// independently of Sign: domain || b64url(payload JSON).
func signRaw(t testing.TB, key ed25519.PrivateKey, claims any) string {
	t.Helper()
	raw, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString(raw)
	return b64 + "." + hex.EncodeToString(ed25519.Sign(key, []byte("iicp:consumer-token:v1\n"+b64)))
}

func testKey(seedByte byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = seedByte
	}
	return ed25519.NewKeyFromSeed(seed)
}

func pubs(keys ...ed25519.PrivateKey) []ed25519.PublicKey {
	out := make([]ed25519.PublicKey, len(keys))
	for i, k := range keys {
		out[i] = k.Public().(ed25519.PublicKey)
	}
	return out
}

func claimsAt(now time.Time, aud, intent string) Consumer {
	return Consumer{V: 1, Iss: "https://dir.test", Sub: callerC, Aud: aud, Intent: intent,
		IAT: now.Unix(), Exp: now.Unix() + 300, JTI: testJTI}
}

// Known answer, produced independently with Python's `cryptography`
// (Ed25519 seed 0x07×32, claims below with sorted keys): a change in the
// signing input or encoding is caught, not just self-consistency.
const (
	kaPayload = "eyJhdWQiOiJiIiwiZXhwIjoxNzAwMDAwMzAwLCJpYXQiOjE3MDAwMDAwMDAsImludGVudCI6IioiLCJpc3MiOiJodHRwczovL2Rpci50ZXN0Iiwic3ViIjoiYSIsInYiOjF9"
	kaSig     = "6bcf39c5686b16ecf25085efc9f619bb32a54c97f37ba5b082c9a2ad9fd3b792498edec3a92b55f0422ec05d9b5e2bf01c0847b05c1db677e1abd62112cabe07"
)

func TestConsumerToken_KnownAnswer(t *testing.T) {
	key := testKey(7)
	c := map[string]any{"v": 1, "iss": "https://dir.test", "sub": "a", "aud": "b", "intent": "*", "iat": 1700000000, "exp": 1700000300}
	if tok := signRaw(t, key, c); tok != kaPayload+"."+kaSig {
		t.Fatalf("test signer disagrees with the known answer: %s", tok)
	}
	got, err := VerifyConsumer(pubs(key), kaPayload+"."+kaSig, ConsumerCheck{Audience: "b", Intent: chat, Subject: "a"}, time.Unix(1700000100, 0))
	if err != nil || got.Sub != "a" || got.Iss != "https://dir.test" || got.Exp != 1700000300 {
		t.Fatalf("verify: %+v %v", got, err)
	}
	// Padding on the payload is tolerated only if it was signed that way.
	if _, err := VerifyConsumer(pubs(key), kaPayload+"=."+kaSig, ConsumerCheck{Audience: "b", Intent: chat}, time.Unix(1700000100, 0)); !errors.Is(err, ErrSignature) {
		t.Fatalf("re-padded payload: %v", err)
	}
}

// The spec fixture fixtures/profiles/policy-detail-disclosure-v0.json
// carries directory-signed consumer-token vectors (POLICY-DISCLOSURE-02..04:
// valid, invalid, expired).
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
	keys := []ed25519.PublicKey{pub}
	want := ConsumerCheck{Audience: fx.V.Aud, Intent: fx.V.Intent, Subject: fx.V.Sub}
	now := time.Unix(fx.V.Now, 0)
	if c, err := VerifyConsumer(keys, fx.V.Valid, want, now); err != nil || c.Sub != fx.V.Sub {
		t.Fatalf("valid vector: %+v %v", c, err)
	}
	if _, err := VerifyConsumer(keys, fx.V.Tampered, want, now); !errors.Is(err, ErrSignature) {
		t.Fatalf("tampered vector: %v", err)
	}
	// exp = iat − 1: never valid, whatever the grace (reason consumer_auth_expired).
	if _, err := VerifyConsumer(keys, fx.V.Expired, want, now); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired vector: %v", err)
	}
}

func TestConsumerToken_Rejections(t *testing.T) {
	key, other := testKey(1), testKey(2)
	keys := pubs(key)
	now := time.Unix(1800000000, 0)
	good := signRaw(t, key, claimsAt(now, nodeA, chat))
	with := func(f func(*Consumer)) string {
		c := claimsAt(now, nodeA, chat)
		f(&c)
		return signRaw(t, key, c)
	}
	cases := []struct {
		name string
		tok  string
		at   time.Time
		want error
	}{
		{"valid", good, now, nil},
		// Grace: 9 s past exp still accepted, 10 s not.
		{"within grace", good, now.Add(309 * time.Second), nil},
		{"expired", good, now.Add(310 * time.Second), ErrExpired},
		{"issued in the future", good, now.Add(-11 * time.Second), ErrNotYetValid},
		{"wildcard intent", with(func(c *Consumer) { c.Intent = "*" }), now, nil},
		{"other intent", with(func(c *Consumer) { c.Intent = embed }), now, ErrIntent},
		{"minted for node B", with(func(c *Consumer) { c.Aud = nodeB }), now, ErrAudience},
		{"another caller", with(func(c *Consumer) { c.Sub = nodeB }), now, ErrSubject},
		{"other key", signRaw(t, other, claimsAt(now, nodeA, chat)), now, ErrSignature},
		{"version 2", with(func(c *Consumer) { c.V = 2 }), now, ErrVersion},
		{"no exp", with(func(c *Consumer) { c.Exp = 0 }), now, ErrExpired},
		// 100 years: what a leaked signing key would mint.
		{"100-year token", with(func(c *Consumer) { c.Exp = now.AddDate(100, 0, 0).Unix() }), now, ErrLifetime},
		{"301 s token", with(func(c *Consumer) { c.Exp = c.IAT + 301 }), now, ErrLifetime},
		{"short jti", with(func(c *Consumer) { c.JTI = "abc" }), now, ErrMalformed},
		{"no dot", strings.ReplaceAll(good, ".", ""), now, ErrMalformed},
		{"short sig", good[:len(good)-2], now, ErrMalformed},
		{"non-hex sig", good[:len(good)-2] + "zz", now, ErrMalformed},
		{"oversize", strings.Repeat("a", MaxLen+1), now, ErrMalformed},
		{"signed garbage", signedText(key, "not json"), now, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyConsumer(keys, tc.tok, ConsumerCheck{Audience: nodeA, Intent: chat, Subject: callerC}, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), tc.tok[:min(len(tc.tok), 20)]) {
				t.Fatal("error echoes the token")
			}
		})
	}
	// No authenticated caller (HTTP): sub is not checked.
	if _, err := VerifyConsumer(keys, with(func(c *Consumer) { c.Sub = nodeB }), ConsumerCheck{Audience: nodeA, Intent: chat}, now); err != nil {
		t.Fatalf("http path: %v", err)
	}
	if _, err := VerifyConsumer(nil, good, ConsumerCheck{Audience: nodeA, Intent: chat}, now); !errors.Is(err, ErrNoKey) {
		t.Fatalf("no key: %v", err)
	}
	// Rotation: any of the held keys verifies.
	if _, err := VerifyConsumer(pubs(other, key), good, ConsumerCheck{Audience: nodeA, Intent: chat}, now); err != nil {
		t.Fatalf("second key: %v", err)
	}
}

func signedText(key ed25519.PrivateKey, payload string) string {
	b64 := base64.RawURLEncoding.EncodeToString([]byte(payload))
	return b64 + "." + hex.EncodeToString(ed25519.Sign(key, []byte(DomainConsumerToken+b64)))
}

// TestConsumerToken_ReplayRefused: a captured token (same jti) is refused
// the second time, concurrently too, until it expires; the guard forgets it
// after, and refuses new tokens rather than forget live ones when full.
func TestConsumerToken_ReplayRefused(t *testing.T) {
	now := time.Unix(1800000000, 0)
	c := claimsAt(now, nodeA, chat)
	r := NewReplay(2)
	var ok int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if r.Use(&c, now) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d uses of one jti accepted, want 1", ok)
	}
	if err := r.Use(&c, now.Add(100*time.Second)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	// The same jti addressed to another node is another token.
	b := c
	b.Aud = nodeB
	if err := r.Use(&b, now); err != nil {
		t.Fatalf("other audience: %v", err)
	}
	third := c
	third.JTI = strings.Repeat("f", JTIMinLen)
	if err := r.Use(&third, now); !errors.Is(err, ErrReplayFull) {
		t.Fatalf("full guard: %v", err)
	}
	// Once both are dead the guard has room again.
	late := now.Add(MaxConsumerLifetime + ConsumerGrace)
	if err := r.Use(&third, late); err != nil || r.Len() != 1 {
		t.Fatalf("after expiry: %v len %d", err, r.Len())
	}
	// Spec tokens without jti: nothing to consume.
	plain := claimsAt(now, nodeA, chat)
	plain.JTI = ""
	for range 3 {
		if err := r.Use(&plain, late); err != nil {
			t.Fatalf("no jti: %v", err)
		}
	}
	r.Prune(late.Add(time.Hour))
	if r.Len() != 0 {
		t.Fatalf("prune left %d", r.Len())
	}
}

func TestSignConsumerRoundTrip(t *testing.T) {
	key := testKey(9)
	now := time.Unix(1800000000, 0)
	c := claimsAt(now, nodeA, chat)
	tok, err := SignConsumer(key, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyConsumer(pubs(key), tok, ConsumerCheck{Audience: nodeA, Intent: chat, Subject: callerC}, now)
	if err != nil || *got != c {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := SignConsumer(nil, c); err == nil {
		t.Fatal("nil key signed")
	}
}

func TestLive(t *testing.T) {
	at := func(s int64) time.Time { return time.Unix(s, 0) }
	for _, tc := range []struct {
		now, iat, exp int64
		grace         time.Duration
		want          error
	}{
		{50, 10, 100, 0, nil},
		{100, 10, 100, 0, ErrExpired},
		{109, 10, 100, 10 * time.Second, nil},
		{110, 10, 100, 10 * time.Second, ErrExpired},
		{0, 10, 100, 10 * time.Second, nil},
		{-1, 10, 100, 10 * time.Second, ErrNotYetValid},
		{50, 100, 100, time.Hour, ErrExpired},
	} {
		if err := Live(at(tc.now), tc.iat, tc.exp, tc.grace); !errors.Is(err, tc.want) {
			t.Errorf("Live(%d, %d, %d, %v) = %v, want %v", tc.now, tc.iat, tc.exp, tc.grace, err, tc.want)
		}
	}
}
