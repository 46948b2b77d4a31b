package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzPrepare: any payload either maps to a body that marshals, or fails
// with ErrBadPayload; never a panic, never another error class.
func FuzzPrepare(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"role":"user","content":"x"}],"max_tokens":5}`,
		`{"prompt":"p","temperature":1}`,
		`{"input":["a","b"]}`,
		`{"text":"t","format":"bullets","max_length":3,"language":"en"}`,
		`{"messages":[{"role":"user"}]}`, `[]`, `null`, `{"stream":"yes"}`,
	} {
		for m := range 4 {
			f.Add([]byte(s), uint8(m))
		}
	}
	modes := []Mode{ModeChat, ModeCompletion, ModeEmbedding, ModeSummarise}
	f.Fuzz(func(t *testing.T, payload []byte, m uint8) {
		req := Request{Model: "m", Mode: modes[int(m)%len(modes)], Payload: payload, MaxTokens: 100}
		p, err := prepare(req, false)
		if err != nil {
			if !errors.Is(err, ErrBadPayload) {
				t.Fatalf("error class: %v", err)
			}
			return
		}
		if raw, err := encodeBody(p.body); err != nil || !json.Valid(raw) {
			t.Fatalf("body does not encode to JSON: %v %s", err, raw)
		}
		if v, _ := p.body.get("max_tokens"); v != nil && (v.(int64) < 1 || v.(int64) > 100) {
			t.Fatalf("max_tokens %d escapes the route limit", v)
		}
	})
}

// FuzzReadStream: any SSE body assembles or fails with ErrBackend; the
// assembled output always encodes.
func FuzzReadStream(f *testing.F) {
	f.Add([]byte("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"), true)
	f.Add([]byte("data: {\"choices\":[{\"index\":1,\"text\":\"a\"}]}\r\n\r\ndata: [DONE]\r\n"), false)
	f.Add([]byte(": c\nevent: x\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\"}}]}}]}\n\n"), true)
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		g, err := readStream("fuzz", bytes.NewReader(body), 1<<16, chat, nil)
		if err != nil {
			if !errors.Is(err, ErrBackend) {
				t.Fatalf("error class: %v", err)
			}
			return
		}
		mode := ModeCompletion
		if chat {
			mode = ModeChat
		}
		if _, err := encodeGeneration(prepared{mode: mode}, g, "m"); err != nil {
			t.Fatalf("encode: %v", err)
		}
	})
}
