package backend

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// TestFastJSONMatchesEncodingJSON: the hot-path encoders write what
// json.Marshal writes, and the one-pass decoder returns what the lenient
// decoder returns or declines.
func TestFastJSONMatchesEncodingJSON(t *testing.T) {
	body := map[string]any{
		"messages":       json.RawMessage(`[{"role":"user","content":"a <b> & \"c\" é \u2028"}]`),
		"model":          "m<1>&\u00e9\xff",
		"max_tokens":     int64(64),
		"stream":         true,
		"stream_options": map[string]any{"include_usage": true},
		"temperature":    json.RawMessage(`0.2`),
	}
	got, err := encodeBody(body)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(body)
	// Raw payload parts are copied verbatim (json.Marshal would re-escape
	// <, > and & inside them): the same JSON value, not the same bytes.
	var gv, wv any
	if err := json.Unmarshal(got, &gv); err != nil || json.Unmarshal(want, &wv) != nil || !reflect.DeepEqual(gv, wv) {
		t.Errorf("encodeBody:\n got %s\nwant %s", got, want)
	}
	delete(body, "messages")
	got, _ = encodeBody(body)
	if want, _ = json.Marshal(body); !bytes.Equal(got, want) {
		t.Errorf("encodeBody without raw HTML:\n got %s\nwant %s", got, want)
	}

	stop, text := "stop", "tx\t<é>"
	for _, r := range []chatResult{
		{ID: "c1", Object: "chat.completion", Model: "m", Choices: []choice{{Index: 0, Message: json.RawMessage(`{"role":"assistant","content":"hi"}`), FinishReason: &stop}},
			Usage: &usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3}},
		{Object: "text_completion", Model: "m\"x", Choices: []choice{{Index: 3, Text: &text}, {Index: 4, Text: &text, FinishReason: &stop}}},
	} {
		want, _ := json.Marshal(r)
		if got := appendChatResult(nil, &r); !bytes.Equal(got, want) {
			t.Errorf("appendChatResult:\n got %s\nwant %s", got, want)
		}
	}

	for _, tc := range []struct {
		body string
		chat bool
		fast bool // the one-pass decoder takes it
	}{
		{`{"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`, true, true},
		{`{"choices":[{"message":{"content":"ok"}},{"index":-1,"message":{}}],"usage":{"prompt_tokens":5.0}}`, true, true},
		{`{"choices":[{"text":"ok","finish_reason":null}],"usage":null}`, false, true},
		{`{"id":7,"choices":[{"message":{"content":"ok"}}]}`, true, false},            // numeric id: lenient path
		{`{"choices":[{"message":{"content":"ok"},"finish_reason":1}]}`, true, false}, // odd finish_reason
		{`{"choices":[{"message":{}}],"usage":"lots"}`, true, false},
		{`{"choices":[{"message":"ok"}]}`, true, false}, // malformed: lenient path names it
		{`{"choices":[{"text":null}]}`, false, false},
		{`{"choices":[]}`, true, false},
	} {
		fg, ok := decodeGenerationFast([]byte(tc.body), tc.chat)
		if ok != tc.fast {
			t.Errorf("%s: fast=%v", tc.body, ok)
			continue
		}
		if !ok {
			continue
		}
		sg, err := decodeGeneration("chat", []byte(tc.body), tc.chat)
		if err != nil || !reflect.DeepEqual(fg, sg) {
			t.Errorf("%s:\nfast %+v\nslow %+v (%v)", tc.body, fg, sg, err)
		}
	}
}
