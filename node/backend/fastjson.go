package backend

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/meshnode/meshnode/internal/jsonscan"
)

// The task hot path decodes the caller's payload once and the backend's
// answer once; these helpers keep it from doing more JSON passes than that
// (re-validating bytes encoding/json already validated, decoding the same
// body field by field). Every fast path returns exactly what the general
// code would, and hands anything unusual back to it.

// simpleJSONString returns the content of a JSON string literal that has no
// escapes and is valid UTF-8 (the common case: role names, ids, model
// names), without a decoder pass; ok=false means "use json.Unmarshal"
// (which also replaces invalid UTF-8, as every decoded string must be).
func simpleJSONString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	if bytes.IndexByte(in, '\\') >= 0 || bytes.IndexByte(in, '"') >= 0 || !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

// decodeJSONString decodes a JSON string literal; ok=false for any other
// value (null included).
func decodeJSONString(raw []byte) (string, bool) {
	if s, ok := simpleJSONString(raw); ok {
		return s, true
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// The walkers below step through a document json.Valid has accepted: they
// find where members and elements begin and end without validating again
// or building anything. On other input they never read out of bounds, but
// what they report is meaningless, so every caller checks json.Valid first.

// skipWS returns the index of the first non-whitespace byte at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string literal opening at b[i].
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// eachMember calls fn with the raw key (quotes included) and raw value of
// every member of the object b, in order. It returns false when b is not
// an object or fn returned false (the caller declines the document).
func eachMember(b []byte, fn func(key, val []byte) bool) bool {
	return eachItem(b, '{', '}', fn)
}

// eachElement calls fn with every raw element of the array b, in order. It
// returns false when b is not an array or fn returned false.
func eachElement(b []byte, fn func(val []byte) bool) bool {
	return eachItem(b, '[', ']', func(_, val []byte) bool { return fn(val) })
}

// eachItem walks the members (open '{') or elements (open '[') of b.
func eachItem(b []byte, open, closing byte, fn func(key, val []byte) bool) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != open {
		return false
	}
	if i = skipWS(b, i+1); i < len(b) && b[i] == closing {
		return true
	}
	for i < len(b) {
		var key []byte
		if open == '{' {
			ke := stringEnd(b, i)
			key = b[i:ke]
			i = skipWS(b, skipWS(b, ke)+1) // past the colon
		}
		ve := valueEnd(b, i)
		if ve <= i || !fn(key, b[i:ve]) {
			return false
		}
		if i = skipWS(b, ve); i >= len(b) || b[i] == closing {
			return true
		}
		i = skipWS(b, i+1) // past the comma
	}
	return true
}

// keyMatch classifies a raw member key against the field names a struct
// decode would look for: the index of an exact match, -1 for a key no
// field takes, or ok=false for keys encoding/json would match only after
// unescaping or case folding (the caller then declines, leaving the
// document to the encoding/json path).
func keyMatch(key []byte, names ...string) (int, bool) {
	if len(key) < 2 {
		return -1, false
	}
	in := key[1 : len(key)-1]
	if bytes.IndexByte(in, '\\') >= 0 {
		return -1, false
	}
	for i, n := range names {
		if string(in) == n {
			return i, true
		}
	}
	for _, n := range names {
		if bytes.EqualFold(in, []byte(n)) {
			return -1, false
		}
	}
	return -1, true
}

// decodeGenerationFast decodes a chat/completion body in the shape every
// conforming server sends, in one validating pass (jsonscan.Valid, json.Valid's verdict) and one walk
// that builds nothing but the result. It declines (ok=false) whatever a
// strictly typed encoding/json decode would refuse or treat specially: a
// non-string id, model or finish_reason, a non-integer index, a non-numeric
// token count, a duplicate member, an escaped or case-folded key, a missing
// message object (chat) or text (completion), no choices. A declined body
// goes to decodeGeneration, whose lenient path also names the error.
func decodeGenerationFast(body []byte, chat bool) (generation, bool) {
	if !jsonscan.Valid(body) {
		return generation{}, false
	}
	var g generation
	var choices, use []byte
	var seen [4]bool
	ok := eachMember(body, func(key, val []byte) bool {
		f, ok := keyMatch(key, "id", "model", "choices", "usage")
		if !ok || f >= 0 && seen[f] {
			return false
		}
		if f < 0 {
			return true
		}
		seen[f] = true
		switch f {
		case 0, 1:
			s, ok := optText(val)
			if f == 0 {
				g.ID = s
			} else {
				g.Model = s
			}
			return ok
		case 2:
			choices = val
		default:
			use = val
		}
		return true
	})
	if !ok || choices == nil || choices[0] != '[' {
		return generation{}, false
	}
	if g.Usage, ok = fastUsage(use); !ok {
		return generation{}, false
	}
	ok = eachElement(choices, func(el []byte) bool {
		c, ok := fastChoice(el, len(g.Choices), chat)
		g.Choices = append(g.Choices, c)
		return ok
	})
	if !ok || len(g.Choices) == 0 {
		return generation{}, false
	}
	return g, true
}

// fastChoice decodes one element of choices for decodeGenerationFast.
func fastChoice(el []byte, pos int, chat bool) (choice, bool) {
	c := choice{Index: pos}
	var seen [4]bool
	var msg []byte
	var text *string
	ok := eachMember(el, func(key, val []byte) bool {
		f, ok := keyMatch(key, "index", "message", "text", "finish_reason")
		if !ok || f >= 0 && seen[f] {
			return false
		}
		if f < 0 {
			return true
		}
		seen[f] = true
		switch f {
		case 0:
			if val[0] == 'n' {
				return true
			}
			i, err := strconv.Atoi(string(val))
			if err == nil && i >= 0 {
				c.Index = i
			}
			return err == nil
		case 1:
			msg = val
		case 2:
			text, ok = optString(val)
			return ok
		default:
			c.FinishReason, ok = finishReason(val)
			return ok
		}
		return true
	})
	switch {
	case !ok:
		return c, false
	case chat:
		c.Message = msg
		return c, len(msg) > 0 && msg[0] == '{'
	default:
		c.Text = text
		return c, text != nil
	}
}

// fastUsage decodes the usage member (absent or null: nil) like
// lenientUsage, declining anything but an object of numbers or nulls.
func fastUsage(val []byte) (*usage, bool) {
	if val == nil || val[0] == 'n' {
		return nil, true
	}
	// n[f] is the number, set[f] whether the member was a number (null and
	// absent count as unset); seen[f] rejects a duplicate either way.
	var n [3]float64
	var set, seen [3]bool
	ok := eachMember(val, func(key, v []byte) bool {
		f, ok := keyMatch(key, "prompt_tokens", "completion_tokens", "total_tokens")
		if !ok || f >= 0 && seen[f] {
			return false
		}
		if f < 0 {
			return true
		}
		seen[f] = true
		if v[0] == 'n' {
			return true
		}
		x, err := strconv.ParseFloat(string(v), 64)
		n[f], set[f] = x, true
		return err == nil && isJSONNumber(v)
	})
	if !ok {
		return nil, false
	}
	if !set[0] && !set[1] && !set[2] {
		return nil, true
	}
	num := func(f int) *float64 {
		if !set[f] {
			return nil
		}
		return &n[f]
	}
	u := &usage{PromptTokens: nonNeg(num(0)), CompletionTokens: nonNeg(num(1)), TotalTokens: nonNeg(num(2))}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u, true
}

// optString decodes a string or null member (nil for null); ok=false for
// any other type.
func optString(val []byte) (*string, bool) {
	if val[0] == 'n' {
		return nil, true
	}
	s, ok := decodeJSONString(val)
	return &s, ok
}

// optText is optString for fields kept as a plain string (null: "").
func optText(val []byte) (string, bool) {
	if val[0] == 'n' {
		return "", true
	}
	return decodeJSONString(val)
}

// Shared finish_reason values: the common reasons need no allocation.
// Nothing writes through a choice's FinishReason, so sharing is safe.
var finishReasons = func() map[string]*string {
	m := map[string]*string{}
	for _, r := range []string{"stop", "length", "tool_calls", "content_filter", "function_call"} {
		m[r] = &r
	}
	return m
}()

// finishReason is optString with the common values shared.
func finishReason(val []byte) (*string, bool) {
	if len(val) >= 2 && val[0] == '"' {
		if p, ok := finishReasons[string(val[1:len(val)-1])]; ok {
			return p, true
		}
	}
	return optString(val)
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
		b = jsonscan.AppendString(append(b, `"id":`...), r.ID)
		b = append(b, ',')
	}
	b = jsonscan.AppendString(append(b, `"object":`...), r.Object)
	b = jsonscan.AppendString(append(b, `,"model":`...), r.Model)
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
			b = jsonscan.AppendString(append(b, `,"text":`...), *c.Text)
		}
		b = append(b, `,"finish_reason":`...)
		if c.FinishReason == nil {
			b = append(b, "null"...)
		} else {
			b = jsonscan.AppendString(b, *c.FinishReason)
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
