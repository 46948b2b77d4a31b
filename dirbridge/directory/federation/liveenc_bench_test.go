package federation

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
)

// BenchmarkSignLiveness: one signed digest of 40,000 rows (what a 10 s
// digest carries at 100k nodes heartbeating every 30 s), through the
// appenders and, for comparison, through encoding/json as before.
func BenchmarkSignLiveness(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(nil)
	d := &LivenessDigest{Schema: LivenessSchema, SeedDID: "did:web:seed.example", TsMs: 1_700_000_000_000, HeadSeq: 100_000}
	for i := range 40_000 {
		d.Nodes = append(d.Nodes, LiveNode{NodeID: fmt.Sprintf("%08x-9f5e-4d1a-8c47-3a0e6f1d2b9c", i), LastSeenMs: 1_700_000_000_000 + int64(i),
			Available: true, Load: ptr(float64(i%10) / 10), ActiveJobs: i % 4, Reputation: ptr(0.5), CompletedTasks: int64(i)})
	}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := signLiveness(key, d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			body, _ := json.Marshal(d)
			dg := livenessSigningDigest(body)
			_, _ = json.Marshal(SignedLiveness{Liveness: body, Sig: hex.EncodeToString(ed25519.Sign(key, dg[:]))})
		}
	})
}

// BenchmarkVerifyLiveness: a replica checking and decoding the 40,000-row
// digest of BenchmarkSignLiveness.
func BenchmarkVerifyLiveness(b *testing.B) {
	pub, key, _ := ed25519.GenerateKey(nil)
	d := &LivenessDigest{Schema: LivenessSchema, SeedDID: "did:web:seed.example", TsMs: 1_700_000_000_000, HeadSeq: 100_000}
	for i := range 40_000 {
		d.Nodes = append(d.Nodes, LiveNode{NodeID: fmt.Sprintf("%08x-9f5e-4d1a-8c47-3a0e6f1d2b9c", i), LastSeenMs: 1_700_000_000_000 + int64(i),
			Available: true, Load: ptr(float64(i%10) / 10), ActiveJobs: i % 4, Reputation: ptr(0.5), CompletedTasks: int64(i)})
	}
	msg, err := signLiveness(key, d)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyLiveness(pub, d.SeedDID, msg); err != nil {
			b.Fatal(err)
		}
	}
}
