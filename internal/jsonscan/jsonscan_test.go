package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// seeds cover every branch: each literal and number form, escapes, the
// HTML-escaped characters, control characters, bad UTF-8, deep nesting
// and the usual syntax errors.
var seeds = []string{`{"a":[1,-2.5e+3,true,false,null,"x\u00e9\n"]}`, " [ ] ", "{ }", `"\ud800"`, "0", "-0.0E-0",
	"01", "1.", "-", ".5", `{"a" 1}`, `{"a":1,}`, `[1,]`, "tru", "nul", `"\x"`, "\"a\x01\"", `"<"`, "\"\u2028\"",
	"\"\xe2\x80\"", "\"\xff\"", strings.Repeat("[", 65) + strings.Repeat("]", 65), `{"a":{"b":[{"c":"d"}]}} x`,
	strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70), strings.Repeat("[", 70), "", " ", `"\u12"`, `1e`, `-01`}

// FuzzAppendCompact: AppendCompact writes what json.Compact writes for
// every valid input json.Marshal would copy unescaped, and declines every
// input json.Compact refuses, leaving dst as it was. It may decline more
// (nesting beyond maxDepth): the caller's general encoder then runs.
func FuzzAppendCompact(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		got, ok := AppendCompact([]byte("pre"), src)
		var want bytes.Buffer
		want.WriteString("pre")
		err := json.Compact(&want, src)
		escapes := bytes.ContainsAny(src, "<>&\u2028\u2029")
		switch {
		case ok && (err != nil || escapes):
			t.Fatalf("%q: accepted, json.Compact err %v, HTML escapes %v", src, err, escapes)
		case ok && !bytes.Equal(got, want.Bytes()):
			t.Fatalf("%q:\n got %q\nwant %q", src, got, want.Bytes())
		case !ok && !bytes.Equal(got, []byte("pre")):
			t.Fatalf("%q: declined but changed dst to %q", src, got)
		case !ok && err == nil && !escapes && bytes.Count(src, []byte("["))+bytes.Count(src, []byte("{")) <= maxDepth:
			t.Fatalf("%q: valid, shallow, nothing to escape, yet declined", src)
		}
	})
}

// FuzzValid: Valid agrees with json.Valid on every input, deep ones included.
func FuzzValid(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if got, want := Valid(src), json.Valid(src); got != want {
			t.Fatalf("%q: Valid %v, json.Valid %v", src, got, want)
		}
	})
}

// TestSeedsAgree runs the seeds through both checks without the fuzzer.
func TestSeedsAgree(t *testing.T) {
	for _, s := range seeds {
		if got, want := Valid([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("%q: Valid %v, json.Valid %v", s, got, want)
		}
	}
	if !Valid([]byte(strings.Repeat("[", 200) + strings.Repeat("]", 200))) {
		t.Error("a valid value nested beyond maxDepth is valid")
	}
	if _, ok := AppendCompact(nil, []byte(strings.Repeat("[", 200)+strings.Repeat("]", 200))); ok {
		t.Error("AppendCompact took a value nested beyond maxDepth")
	}
}

var chatAnswer = []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1733500000,"model":"llama3.2",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today? \u00e9"},` +
	`"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}`)

func BenchmarkValid(b *testing.B) {
	b.Run("jsonscan", func(b *testing.B) {
		for range b.N {
			Valid(chatAnswer)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for range b.N {
			json.Valid(chatAnswer)
		}
	})
}

func BenchmarkAppendCompact(b *testing.B) {
	dst := make([]byte, 0, 512)
	b.Run("jsonscan", func(b *testing.B) {
		for range b.N {
			AppendCompact(dst[:0], chatAnswer)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		buf := bytes.NewBuffer(dst[:0])
		for range b.N {
			buf.Reset()
			_ = json.Compact(buf, chatAnswer)
		}
	})
}
