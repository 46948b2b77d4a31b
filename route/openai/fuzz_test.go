package openai

import (
	"encoding/json"
	"testing"
)

// FuzzParseRequest: any body gives a request or a validation error, never
// a panic; an accepted request's payload is a JSON object without the
// transport members.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"auto","prompt":"x","max_completion_tokens":5}`,
		`{"input":["a","b"],"model":"e"}`,
		`{"messages":null}`, `[]`, `{"n":2,"messages":[]}`, `{"stream":"yes","messages":[]}`,
	} {
		f.Add(byte(0), []byte(s))
	}
	f.Fuzz(func(t *testing.T, k byte, body []byte) {
		r, werr := parseRequest(kind(k%3), body)
		if werr != nil {
			if r != nil || werr.Code == "" {
				t.Fatalf("error %v with request %v", werr, r)
			}
			return
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(r.payload, &obj); err != nil {
			t.Fatalf("payload not an object: %v", err)
		}
		for _, f := range []string{"model", "stream", "stream_options", "n"} {
			if _, ok := obj[f]; ok {
				t.Fatalf("payload kept %q", f)
			}
		}
	})
}
