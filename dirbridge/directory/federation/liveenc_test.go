package federation

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"math"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// TestLivenessEncodingMatchesJSON: the hand-written digest encoding is
// byte for byte what encoding/json gives (the format replicas decode and
// the signature covers), including omitted fields, float edge cases and
// strings that need escaping.
func TestLivenessEncodingMatchesJSON(t *testing.T) {
	digests := []LivenessDigest{
		{Schema: LivenessSchema, SeedDID: "did:web:seed.example", TsMs: 1, HeadSeq: 0},
		{Schema: LivenessSchema, SeedDID: "did:web:a<b>&\"c\\", TsMs: 1_700_000_000_123, HeadSeq: 42, SinceMs: 9, Nodes: []LiveNode{}},
		{Schema: LivenessSchema, SeedDID: "did:web:x", TsMs: 5, HeadSeq: 7, Nodes: []LiveNode{
			{NodeID: "0b7e0a3c-9f5e-4d1a-8c47-3a0e6f1d2b9c", LastSeenMs: 1_700_000_000_000, Available: true,
				Load: ptr(0.5), ActiveJobs: 3, Reputation: ptr(0.5123), CompletedTasks: 12, SLAP95Ms: ptr(int64(250))},
			{NodeID: "n\u00e9\x01\u2028", LastSeenMs: 2},
			{NodeID: "z", LastSeenMs: 3, Load: ptr(0.0), Reputation: ptr(1.0)},
			{NodeID: "tiny", LastSeenMs: 4, Load: ptr(1e-9), Reputation: ptr(3e-7), SLAP95Ms: ptr(int64(0))},
			{NodeID: "big", LastSeenMs: 5, Load: ptr(1e21), Reputation: ptr(-2.5e-300)},
		}},
	}
	for i := range digests {
		want, err := json.Marshal(&digests[i])
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendLivenessDigest(nil, &digests[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("digest %d:\n got %s\nwant %s", i, got, want)
		}
	}
	if _, err := appendLivenessDigest(nil, &LivenessDigest{Nodes: []LiveNode{{Load: ptr(math.NaN())}}}); err == nil {
		t.Error("NaN load encoded")
	}
}

// TestLivenessSignedFormVerifies: signLiveness's one-buffer envelope is
// the json.Marshal(SignedLiveness) shape and VerifyLiveness accepts it.
func TestLivenessSignedFormVerifies(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &LivenessDigest{Schema: LivenessSchema, SeedDID: "did:web:s", TsMs: 10, HeadSeq: 2,
		Nodes: []LiveNode{{NodeID: "a", LastSeenMs: 9, Available: true, Load: ptr(0.25), Reputation: ptr(0.5)}}}
	b, err := signLiveness(key, d)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(d)
	dg := livenessSigningDigest(body)
	want, _ := json.Marshal(SignedLiveness{Liveness: body, Sig: hex.EncodeToString(ed25519.Sign(key, dg[:]))})
	if !bytes.Equal(b, want) {
		t.Fatalf("envelope:\n got %s\nwant %s", b, want)
	}
	got, err := VerifyLiveness(pub, "did:web:s", b)
	if err != nil || len(got.Nodes) != 1 || *got.Nodes[0].Load != 0.25 {
		t.Fatalf("VerifyLiveness = %+v, %v", got, err)
	}
}

// FuzzLivenessEncoding: for any row, the appender and encoding/json agree
// (or both refuse a non-finite number).
func FuzzLivenessEncoding(f *testing.F) {
	f.Add("0b7e0a3c-9f5e-4d1a-8c47-3a0e6f1d2b9c", int64(1), true, 0.5, 0.75, int64(3), int64(100))
	f.Add("<&>\"\\\x00\xff", int64(-1), false, 1e-7, 1e22, int64(-3), int64(-1))
	f.Fuzz(func(t *testing.T, id string, seen int64, avail bool, load, rep float64, done, sla int64) {
		d := &LivenessDigest{Schema: LivenessSchema, SeedDID: id, TsMs: seen, Nodes: []LiveNode{
			{NodeID: id, LastSeenMs: seen, Available: avail, Load: &load, ActiveJobs: int(done), Reputation: &rep, CompletedTasks: done, SLAP95Ms: &sla},
			{NodeID: id},
		}}
		want, werr := json.Marshal(d)
		got, gerr := appendLivenessDigest(nil, d)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("json err %v, appender err %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

// TestVerifyLivenessEnvelopeShapes: the exact envelope takes the split
// path, a re-spaced one the decoder path, and both verify; an envelope
// with a smuggled field or a swapped body fails either way.
func TestVerifyLivenessEnvelopeShapes(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &LivenessDigest{Schema: LivenessSchema, SeedDID: "did:web:s", TsMs: 10, Nodes: []LiveNode{{NodeID: "a", LastSeenMs: 9}}}
	b, err := signLiveness(key, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := splitSignedLiveness(b); !ok {
		t.Fatal("signLiveness output not split")
	}
	spaced := bytes.Replace(bytes.Replace(b, []byte(`{"liveness":`), []byte(`{ "liveness" : `), 1), []byte(`,"sig":`), []byte(` , "sig" : `), 1)
	if _, ok := splitSignedLiveness(spaced); ok {
		t.Fatal("re-spaced envelope split")
	}
	for name, msg := range map[string][]byte{"exact": b, "spaced": spaced} {
		if _, err := VerifyLiveness(pub, "did:web:s", msg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	smuggled := bytes.Replace(b, []byte(`,"sig":`), []byte(`,"extra":1,"sig":`), 1)
	other, _ := signLiveness(key, &LivenessDigest{Schema: LivenessSchema, SeedDID: "did:web:s", TsMs: 11})
	swapped := append(append([]byte{}, other[:bytes.Index(other, []byte(`,"sig":`))]...), b[bytes.Index(b, []byte(`,"sig":`)):]...)
	for name, msg := range map[string][]byte{"smuggled field": smuggled, "swapped body": swapped, "truncated": b[:len(b)-3]} {
		if _, err := VerifyLiveness(pub, "did:web:s", msg); err == nil {
			t.Errorf("%s verified", name)
		}
	}
}

// FuzzVerifyLiveness: no input panics the envelope split or the decoder
// path, and nothing verifies unless it carries the seed's signed body.
func FuzzVerifyLiveness(f *testing.F) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	signed, err := signLiveness(key, &LivenessDigest{Schema: LivenessSchema, SeedDID: "did:web:s", TsMs: 10,
		Nodes: []LiveNode{{NodeID: "a", LastSeenMs: 9, Load: ptr(0.5)}}})
	if err != nil {
		f.Fatal(err)
	}
	body := signed[len(livenessPrefix):bytes.Index(signed, []byte(`,"sig":`))]
	f.Add(signed)
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := VerifyLiveness(pub, "did:web:s", b); err == nil && !bytes.Contains(b, body) {
			t.Fatalf("verified without the signed body: %q", b)
		}
	})
}
