package backend

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestEchoChat(t *testing.T) {
	e := NewEcho()
	if e.Name() != "echo" || !IsEcho(e) {
		t.Fatal("echo not labelled")
	}
	for _, tc := range []struct {
		name, payload, want string
		maxTokens           int64
		tokens              int64
		finish              string
	}{
		// The last user message is echoed; tokens are words in + words out.
		{"last user", `{"messages":[{"role":"system","content":"be nice"},{"role":"user","content":"first"},
			{"role":"assistant","content":"ok"},{"role":"user","content":"hello mesh world"}]}`,
			"hello mesh world", 0, 7 + 3, "stop"},
		// Multi-part content contributes its text parts.
		{"parts", `{"messages":[{"role":"user","content":[{"type":"text","text":"a b"},{"type":"image_url","image_url":{"url":"x"}}]}]}`,
			"a b", 0, 4, "stop"},
		// The route limit truncates, reported as finish_reason "length".
		{"route limit", `{"messages":[{"role":"user","content":"one two three four"}]}`, "one two", 2, 6, "length"},
		// The payload's max_tokens applies below the route limit.
		{"payload limit", `{"messages":[{"role":"user","content":"one two three four"}],"max_tokens":3}`, "one two three", 10, 7, "length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.Do(context.Background(), Request{Mode: ModeChat, MaxTokens: tc.maxTokens, Payload: json.RawMessage(tc.payload)})
			if err != nil {
				t.Fatal(err)
			}
			out := decodeOut(t, res)
			if got := firstMessageContent(t, out); got != tc.want {
				t.Fatalf("content %q want %q", got, tc.want)
			}
			if res.TokensUsed != tc.tokens || res.Model != EchoModel {
				t.Fatalf("tokens %d model %q", res.TokensUsed, res.Model)
			}
			if fr := out["choices"].([]any)[0].(map[string]any)["finish_reason"]; fr != tc.finish {
				t.Fatalf("finish %v", fr)
			}
			// Deterministic: the same request gives byte-identical output.
			again, _ := e.Do(context.Background(), Request{Mode: ModeChat, MaxTokens: tc.maxTokens, Payload: json.RawMessage(tc.payload)})
			if string(again.Output) != string(res.Output) {
				t.Fatal("echo output not deterministic")
			}
		})
	}
}

func TestEchoCompletionSummariseEmbedding(t *testing.T) {
	e := NewEcho()
	res, err := e.Do(context.Background(), Request{Mode: ModeCompletion, Model: "meshnode-echo", Payload: json.RawMessage(`{"prompt":"x y"}`)})
	if err != nil || res.TokensUsed != 4 {
		t.Fatalf("completion %v tokens %d", err, res.TokensUsed)
	}
	res, err = e.Do(context.Background(), Request{Mode: ModeSummarise, Payload: json.RawMessage(`{"text":"a b c d e","max_length":2,"format":"headline"}`)})
	if err != nil {
		t.Fatal(err)
	}
	var s summaryResult
	if err := json.Unmarshal(res.Output, &s); err != nil || s.Summary != "a b" || s.Format != "headline" || s.Model != EchoModel {
		t.Fatalf("summary %+v err %v", s, err)
	}
	// Echo computes no vectors and says so rather than inventing some.
	_, err = e.Do(context.Background(), Request{Mode: ModeEmbedding, Payload: json.RawMessage(`{"input":"a"}`)})
	if !errors.Is(err, ErrBackend) {
		t.Fatalf("embedding err %v", err)
	}
	_, err = e.Do(context.Background(), Request{Mode: ModeEmbedding, Payload: json.RawMessage(`{"input":[]}`)})
	if !errors.Is(err, ErrBadPayload) {
		t.Fatalf("bad embedding payload err %v", err)
	}
}

func TestEchoBadPayload(t *testing.T) {
	e := NewEcho()
	for _, p := range []string{`{}`, `{"messages":[]}`, `"x"`, `{"messages":[{"role":"user","content":"x"}],"temperature":3}`} {
		if _, err := e.Do(context.Background(), Request{Mode: ModeChat, Payload: json.RawMessage(p)}); !errors.Is(err, ErrBadPayload) {
			t.Fatalf("%s: err %v", p, err)
		}
	}
}

func TestEchoDelayHonoursContext(t *testing.T) {
	e := NewEcho(EchoDelay(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := e.Do(ctx, chatReq(`{"messages":[{"role":"user","content":"x"}]}`))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrBackend) {
		t.Fatalf("err %v", err)
	}
	short := NewEcho(EchoDelay(time.Millisecond))
	if _, err := short.Do(context.Background(), chatReq(`{"messages":[{"role":"user","content":"x"}]}`)); err != nil {
		t.Fatal(err)
	}
}
