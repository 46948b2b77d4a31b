package cx

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

func benchCall(n int) []byte {
	b, _ := json.Marshal(map[string]any{
		"task_id": "bench", "intent": "urn:iicp:intent:llm:chat:v1",
		"payload":     map[string]any{"messages": []any{map[string]any{"role": "user", "content": strings.Repeat("x", n)}}},
		"constraints": map[string]any{"timeout_ms": 1000},
	})
	return b
}

// BenchmarkSeal is the consumer cost per task (ephemeral keygen, X25519,
// HKDF, AES-GCM, JSON re-encode) for a 1 KiB payload.
func BenchmarkSeal(b *testing.B) {
	clk := newFakeClock()
	rk, _ := ParseRecipientKey(ringWithKey(b, newKey(b), clk).PublicKey(), clk.Now())
	call := benchCall(1024)
	b.SetBytes(int64(len(call)))
	for b.Loop() {
		if _, _, werr := Seal(call, rk); werr != nil {
			b.Fatal(werr)
		}
	}
}

// BenchmarkOpen is the provider cost per confidential task for 1 KiB and
// 64 KiB payloads (distinct envelopes, so the replay cache admits each).
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{1 << 10, 64 << 10} {
		b.Run(byteSize(n), func(b *testing.B) {
			clk := newFakeClock()
			ring := ringWithKey(b, newKey(b), clk)
			rk, _ := ParseRecipientKey(ring.PublicKey(), clk.Now())
			const pool = 256
			bodies := make([][]byte, pool)
			for i := range bodies {
				bodies[i], _, _ = Seal(benchCall(n), rk)
			}
			p := newTestProvider(b, ring, clk, WithReplayCache(time.Nanosecond, pool))
			b.SetBytes(int64(len(bodies[0])))
			i := 0
			for b.Loop() {
				clk.Advance(time.Microsecond) // the previous use of a body has expired
				if _, werr := p.Open(bodies[i%pool]); werr != nil {
					b.Fatal(werr)
				}
				i++
			}
		})
	}
}

// BenchmarkOpenPlaintext is what Open adds to every non-CX task: one
// top-level JSON scan of the body.
func BenchmarkOpenPlaintext(b *testing.B) {
	clk := newFakeClock()
	p := newTestProvider(b, ringWithKey(b, newKey(b), clk), clk)
	call := benchCall(64 << 10)
	b.SetBytes(int64(len(call)))
	for b.Loop() {
		if _, werr := p.Open(call); werr != nil {
			b.Fatal(werr)
		}
	}
}

func byteSize(n int) string { return strconv.Itoa(n>>10) + "KiB" }
