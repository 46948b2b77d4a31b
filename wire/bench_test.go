package wire

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// chatCall builds a chat CALL whose JSON body is about size bytes.
func chatCall(tb testing.TB, size int) (*Call, []byte) {
	tb.Helper()
	var msgs []map[string]string
	text := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 8) // ~360 bytes
	body := 0
	for i := 0; body < size-400; i++ {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		msgs = append(msgs, map[string]string{"role": role, "content": strconv.Itoa(i) + text})
		body += len(text) + 40
	}
	payload, _ := json.Marshal(map[string]any{"messages": msgs, "temperature": 0.7, "max_tokens": 256})
	raw, _ := json.Marshal(map[string]any{
		"task_id": "550e8400-e29b-41d4-a716-446655440000", "intent": IntentChat, "payload": json.RawMessage(payload),
		"constraints": map[string]any{"timeout_ms": 30000, "qos": "interactive"},
		"auth":        map[string]any{"node_token": strings.Repeat("a", 64)},
		"trace":       map[string]any{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
	})
	c, err := DecodeCallJSON(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return c, raw
}

var benchSizes = []struct {
	name string
	n    int
}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

func BenchmarkCallEncode(b *testing.B) {
	for _, sz := range benchSizes {
		c, _ := chatCall(b, sz.n)
		codecs := []struct {
			name string
			enc  func(*Call) ([]byte, error)
		}{
			{"json", func(c *Call) ([]byte, error) { return json.Marshal(c) }},
			{"cbor-string-keyed", EncodeCallCBOR},
			{"cbor-native", EncodeCallNative},
		}
		for _, cd := range codecs {
			b.Run(sz.name+"/"+cd.name, func(b *testing.B) {
				out, _ := cd.enc(c)
				b.ReportAllocs()
				b.SetBytes(int64(len(out)))
				for b.Loop() {
					o, err := cd.enc(c)
					if err != nil {
						b.Fatal(err)
					}
					sink = o
				}
				b.ReportMetric(float64(len(out)), "wire-bytes")
			})
		}
	}
}

func BenchmarkCallDecode(b *testing.B) {
	for _, sz := range benchSizes {
		c, raw := chatCall(b, sz.n)
		sk, _ := EncodeCallCBOR(c)
		nat, _ := EncodeCallNative(c)
		codecs := []struct {
			name string
			in   []byte
			dec  func([]byte) (*Call, *Error)
		}{
			{"json", raw, DecodeCallJSON},
			{"cbor-string-keyed", sk, DecodeCallCBOR},
			{"cbor-native", nat, DecodeCallNative},
			{"cbor-native-compat", nat, DecodeCallNativeCompat},
		}
		for _, cd := range codecs {
			b.Run(sz.name+"/"+cd.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(cd.in)))
				for b.Loop() {
					c, err := cd.dec(cd.in)
					if err != nil {
						b.Fatal(err)
					}
					sink = c
				}
				b.ReportMetric(float64(len(cd.in)), "wire-bytes")
			})
		}
	}
}

func BenchmarkFrameHeader(b *testing.B) {
	var buf [HeaderLen]byte
	h := Header{Version: 1, Type: TypeCall, Length: 4096}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			PutHeader(buf[:], h)
		}
	})
	b.Run("decode", func(b *testing.B) {
		PutHeader(buf[:], h)
		b.ReportAllocs()
		for b.Loop() {
			got, err := ParseHeader(buf[:])
			if err != nil || got.Length != 4096 {
				b.Fatal(err)
			}
		}
	})
}
