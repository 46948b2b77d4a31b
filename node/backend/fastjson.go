package backend

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// The task hot path decodes the caller's payload once and the backend's
// answer once; these helpers keep it from doing more JSON passes than that
// (re-validating bytes encoding/json already validated, decoding the same
// body field by field). Every fast path returns exactly what the general
// code would, and hands anything unusual back to it.

// encodeBody writes the backend request body: keys sorted (as
// json.Marshal sorts a map), json.RawMessage values copied verbatim. They
// were cut from the payload by json.Unmarshal, which validated the whole
// document, so compacting them again would only cost time.
func encodeBody(body map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(body))
	size := 2
	for k, v := range body {
		keys = append(keys, k)
		size += len(k) + 4
		if raw, ok := v.(json.RawMessage); ok {
			size += len(raw)
		} else {
			size += 16
		}
	}
	slices.Sort(keys)
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		switch v := body[k].(type) {
		case json.RawMessage:
			b = append(b, v...)
		case string:
			b = appendJSONString(b, v)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case bool:
			b = strconv.AppendBool(b, v)
		default:
			raw, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			b = append(b, raw...)
		}
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as a JSON string, escaping like encoding/json
// (including its HTML-safe escapes); invalid UTF-8 goes through json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	simple := utf8.ValidString(s)
	for i := 0; simple && i < len(s); i++ {
		c := s[i]
		simple = c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c < utf8.RuneSelf
	}
	if simple {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	raw, _ := json.Marshal(s) // a string always encodes
	return append(b, raw...)
}

// simpleJSONString returns the content of a JSON string literal that has no
// escapes (the common case: role names, ids, model names), without a
// decoder pass; ok=false means "use json.Unmarshal".
func simpleJSONString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	if bytes.IndexByte(in, '\\') >= 0 || bytes.IndexByte(in, '"') >= 0 {
		return "", false
	}
	return string(in), true
}

// fastGeneration is a strictly typed chat/completion body: the shape every
// conforming server sends. Anything it cannot take (odd types, missing
// parts) falls back to decodeGeneration's lenient, field-by-field path.
type fastGeneration struct {
	ID      *string `json:"id"`
	Model   *string `json:"model"`
	Choices []struct {
		Index        *int            `json:"index"`
		Message      json.RawMessage `json:"message"`
		Text         *string         `json:"text"`
		FinishReason *string         `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		Prompt     *float64 `json:"prompt_tokens"`
		Completion *float64 `json:"completion_tokens"`
		Total      *float64 `json:"total_tokens"`
	} `json:"usage"`
}

// decodeGenerationFast decodes body in one pass; ok=false when the body
// needs the lenient path (which also produces the precise error).
func decodeGenerationFast(body []byte, chat bool) (generation, bool) {
	var w fastGeneration
	if json.Unmarshal(body, &w) != nil || len(w.Choices) == 0 {
		return generation{}, false
	}
	g := generation{Choices: make([]choice, 0, len(w.Choices))}
	if w.ID != nil {
		g.ID = *w.ID
	}
	if w.Model != nil {
		g.Model = *w.Model
	}
	if u := w.Usage; u != nil && (u.Prompt != nil || u.Completion != nil || u.Total != nil) {
		g.Usage = &usage{PromptTokens: nonNeg(u.Prompt), CompletionTokens: nonNeg(u.Completion), TotalTokens: nonNeg(u.Total)}
		if g.Usage.TotalTokens == 0 {
			g.Usage.TotalTokens = g.Usage.PromptTokens + g.Usage.CompletionTokens
		}
	}
	for i, wc := range w.Choices {
		c := choice{Index: i, FinishReason: wc.FinishReason}
		if wc.Index != nil && *wc.Index >= 0 {
			c.Index = *wc.Index
		}
		if chat {
			if len(wc.Message) == 0 || wc.Message[0] != '{' {
				return generation{}, false
			}
			c.Message = wc.Message
		} else {
			if wc.Text == nil {
				return generation{}, false
			}
			c.Text = wc.Text
		}
		g.Choices = append(g.Choices, c)
	}
	return g, true
}

// appendChatResult encodes a chat or completion result like json.Marshal of
// chatResult would, except that message objects are copied verbatim: they
// were validated when the backend body was decoded.
func appendChatResult(b []byte, r *chatResult) []byte {
	if b == nil {
		n := 160 + len(r.ID) + len(r.Model)
		for _, c := range r.Choices {
			n += 64 + len(c.Message)
			if c.Text != nil {
				n += len(*c.Text) + len(*c.Text)/8
			}
		}
		b = make([]byte, 0, n)
	}
	b = append(b, '{')
	if r.ID != "" {
		b = appendJSONString(append(b, `"id":`...), r.ID)
		b = append(b, ',')
	}
	b = appendJSONString(append(b, `"object":`...), r.Object)
	b = appendJSONString(append(b, `,"model":`...), r.Model)
	b = append(b, `,"choices":[`...)
	for i, c := range r.Choices {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(append(b, `{"index":`...), int64(c.Index), 10)
		if len(c.Message) > 0 {
			b = append(append(b, `,"message":`...), c.Message...)
		}
		if c.Text != nil {
			b = appendJSONString(append(b, `,"text":`...), *c.Text)
		}
		b = append(b, `,"finish_reason":`...)
		if c.FinishReason == nil {
			b = append(b, "null"...)
		} else {
			b = appendJSONString(b, *c.FinishReason)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	if u := r.Usage; u != nil {
		b = strconv.AppendInt(append(b, `,"usage":{"prompt_tokens":`...), u.PromptTokens, 10)
		b = strconv.AppendInt(append(b, `,"completion_tokens":`...), u.CompletionTokens, 10)
		b = strconv.AppendInt(append(b, `,"total_tokens":`...), u.TotalTokens, 10)
		b = append(b, '}')
	}
	return append(b, '}')
}
