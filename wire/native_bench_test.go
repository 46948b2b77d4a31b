package wire

import (
	"encoding/json"
	"testing"
)

// meshCall and meshResponse are the mesh benchmark's messages (bench
// scenario "mesh"): a one-message chat CALL and its chat completion.
func meshCall() *Call {
	return &Call{
		TaskID: "550e8400-e29b-41d4-a716-446655440000", CallID: "7d444840-9dc0-41d4-a716-446655440000",
		Intent:      IntentChat,
		Payload:     json.RawMessage(`{"messages":[{"content":"bench mesh-quic 12345","role":"user"}],"model":"bench-model"}`),
		Constraints: Constraints{TimeoutMs: 30000},
	}
}

func meshResponse() *Response {
	return &Response{
		TaskID: "550e8400-e29b-41d4-a716-446655440000", CallID: "7d444840-9dc0-41d4-a716-446655440000",
		Status: StatusSuccess, NodeID: "iicp:node:0123456789abcdef0123456789abcdef",
		Result:  json.RawMessage(`{"id":"chatcmpl-12","object":"chat.completion","model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"bench mesh-quic 12345"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":4,"total_tokens":8}}`),
		Metrics: Metrics{TokensUsed: 8, LatencyMs: 1},
	}
}

// BenchmarkNativeMesh: the native codec on the mesh hot path's messages.
//
//	go test -run '^$' -bench NativeMesh -benchmem ./wire/
func BenchmarkNativeMesh(b *testing.B) {
	call, resp := meshCall(), meshResponse()
	cb, err := EncodeCallNative(call)
	if err != nil {
		b.Fatal(err)
	}
	rb, err := EncodeResponseNative(resp)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    func() error
	}{
		{"call-encode", func() error { _, err := EncodeCallNative(call); return err }},
		{"call-decode", func() error {
			if _, werr := DecodeCallNative(cb); werr != nil {
				return werr
			}
			return nil
		}},
		{"resp-encode", func() error { _, err := EncodeResponseNative(resp); return err }},
		{"resp-decode", func() error {
			if _, werr := DecodeResponseNative(rb); werr != nil {
				return werr
			}
			return nil
		}},
		{"det-check-call", func() error {
			if werr := checkDeterministic(cb); werr != nil {
				return werr
			}
			return nil
		}},
		{"det-check-resp", func() error {
			if werr := checkDeterministic(rb); werr != nil {
				return werr
			}
			return nil
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := tc.f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
