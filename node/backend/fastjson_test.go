package backend

import (
	"bytes"
	"encoding/json"
	"errors"
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
	got, err := encodeBody(bodyOf(body))
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
	got, _ = encodeBody(bodyOf(body))
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

// walkSeeds are documents the walkers and fast decoders must treat exactly
// as encoding/json does: escapes, case-folded and repeated names, nulls,
// odd types, whitespace everywhere, invalid UTF-8.
var walkSeeds = []string{
	`{"messages":[{"role":"user","content":"hi"}]}`,
	` { "messages" : [ { "role" : "user" , "content" : null } , null ] , "x" : [1,{"a":"}"}] } `,
	`{"messages":[{"ROLE":"user","Content":"x","role":"system"}]}`,
	`{"messages":[{"r\u006fle":"assistant","content":{"a":[1,2]}}],"messages":[]}`,
	`{"messages":[1]}`, `{"messages":{"role":"user"}}`, `{"messages":null}`, `{"messages":"x"}`,
	`{"k\"ey":"v\\","\u00e9":true,"a":-1.5e3}`,
	`{"max_tokens":64,"temperature":0.2,"t2":1e400,"t3":-0,"t4":"5","t5":null,"user":"user","stop":["\n"]}`, "{\"\xff\":\"\xfe\"}", `[]`, `{}`, `null`, `{"a":1`,
	`{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`,
	`{"choices":[{"text":"a\nb","index":2,"finish_reason":null}],"usage":{"total_tokens":1e2}}`,
	`{"choices":[{"message":{}}],"choices":[{"message":{"x":1}}]}`,
	`{"Choices":[{"message":{}}]}`, `{"choices":[{"Message":{}}]}`, `{"choices":[{"message":{},"index":1.0}]}`,
	`{"choices":[{"message":{},"index":-3}],"usage":{"prompt_tokens":"5"}}`, `{"choices":[null]}`,
	`{"id":"\ud800","model":"a\u0000b","choices":[{"message":{"content":"é"},"finish_reason":"len\"gth"}]}`,
	`{"choices":[{"message":{}}],"usage":{"prompt_tokens":1e400}}`, `{"choices":[{"message":{}}],"usage":[]}`,
}

// FuzzParseObject: the payload walk builds exactly the map json.Unmarshal
// builds and the message split exactly the slice it decodes, and both
// refuse what it refuses.
func FuzzParseObject(f *testing.F) {
	for _, s := range walkSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		obj, err := parseObject(payload)
		var want map[string]json.RawMessage
		trimmed := bytes.TrimSpace(payload)
		werr := json.Unmarshal(trimmed, &want)
		if len(trimmed) == 0 || trimmed[0] != '{' {
			werr = errors.New("not an object")
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("parseObject err %v, encoding/json err %v", err, werr)
		}
		if err != nil {
			return
		}
		if got := mapOf(obj); !reflect.DeepEqual(got, want) {
			t.Fatalf("parseObject %q\nwant %q", got, want)
		}
		for _, m := range obj {
			raw := m.val
			checkNumberAndIntern(t, raw)
			items, ok := messageItems(raw)
			var wantItems []struct {
				Role    json.RawMessage `json:"role"`
				Content json.RawMessage `json:"content"`
			}
			werr := json.Unmarshal(raw, &wantItems)
			if ok != (werr == nil && wantItems != nil) {
				t.Fatalf("messageItems(%s) ok=%v, encoding/json err %v", raw, ok, werr)
			}
			if ok && len(items) != len(wantItems) {
				t.Fatalf("messageItems(%s): %d items, want %d", raw, len(items), len(wantItems))
			}
			for i := range items {
				if ok && (!bytes.Equal(items[i].Role, wantItems[i].Role) || !bytes.Equal(items[i].Content, wantItems[i].Content)) {
					t.Fatalf("messageItems(%s)[%d] = %q, want %q", raw, i, items[i], wantItems[i])
				}
			}
		}
	})
}

// bodyOf is the requestBody holding what the map body m holds, set the
// way prepare sets each kind of value.
func bodyOf(m map[string]any) requestBody {
	var b requestBody
	for k, v := range m {
		switch v := v.(type) {
		case json.RawMessage:
			b.setRaw(k, v)
		case string:
			b.setString(k, v)
		case int64:
			b.setInt(k, v)
		default:
			b.set(k, v)
		}
	}
	return b
}

// mapOf is the map json.Unmarshal builds from the payload obj came from:
// a repeated name keeps its last value.
func mapOf(obj object) map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(obj))
	for _, mb := range obj {
		m[mb.name] = mb.val
	}
	return m
}

// TestRequestBodySetReplaces: setting a name again replaces its value and
// keeps one field, as assigning a map key did.
func TestRequestBodySetReplaces(t *testing.T) {
	var b requestBody
	b.setRaw("temperature", json.RawMessage("1"))
	b.setInt("max_tokens", 5)
	b.setRaw("temperature", json.RawMessage("0.5"))
	b.setInt("max_tokens", 7)
	got, err := encodeBody(b)
	if err != nil || string(got) != `{"max_tokens":7,"temperature":0.5}` {
		t.Fatalf("encodeBody = %s, %v", got, err)
	}
	if v, ok := b.get("max_tokens"); !ok || v != int64(7) {
		t.Fatalf("get max_tokens = %v %v", v, ok)
	}
}

// checkNumberAndIntern: on a member of a valid payload, jsonNumber is
// json.Unmarshal into a float64 plus "is a number", and internJSONString
// is simpleJSONString.
func checkNumberAndIntern(t *testing.T, raw json.RawMessage) {
	t.Helper()
	f, err := jsonNumber(raw)
	var want float64
	werr := json.Unmarshal(raw, &want)
	if werr == nil && !isJSONNumber(raw) {
		werr = errors.New("not a number")
	}
	if (err == nil) != (werr == nil) || err == nil && f != want {
		t.Fatalf("jsonNumber(%s) = %v, %v; encoding/json %v, %v", raw, f, err, want, werr)
	}
	s, ok := internJSONString(raw)
	ws, wok := simpleJSONString(raw)
	if s != ws || ok != wok {
		t.Fatalf("internJSONString(%s) = %q %v, want %q %v", raw, s, ok, ws, wok)
	}
}

// FuzzDecodeGenerationFast: whatever the one-pass decoder accepts, the
// lenient encoding/json decoder decodes to the same generation.
func FuzzDecodeGenerationFast(f *testing.F) {
	for _, s := range walkSeeds {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		fg, ok := decodeGenerationFast(body, chat)
		if !ok {
			return
		}
		sg, err := decodeGeneration("fuzz", body, chat)
		if err != nil || !reflect.DeepEqual(fg, sg) {
			t.Fatalf("%s:\nfast %+v\nslow %+v (%v)", body, fg, sg, err)
		}
	})
}
