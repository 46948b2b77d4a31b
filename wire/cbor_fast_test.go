package wire

import (
	"bytes"
	"strings"
	"testing"
)

// transcodeSeeds are JSON documents covering what the direct transcoders
// handle and what they leave to the reference.
var transcodeSeeds = []string{
	`{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}`,
	`{"b":1,"a":2,"aa":3,"":4}`, `{"a":1,"a":2}`, `[]`, `{}`, `[[],{},[{}]]`, `null`, `true`, `false`,
	`0`, `-0`, `-1`, `1.5`, `1.0`, `-0.0`, `1e2`, `1E-7`, `1e400`, `-1e-400`, `123456789012345678901234567890`,
	`9223372036854775807`, `9223372036854775808`, `18446744073709551615`, `18446744073709551616`, `-9223372036854775808`, `-9223372036854775809`,
	`0.1`, `3.4028234663852886e+38`, `5e-324`, `65504`, `65505.0`, `01`, `1.`, `.5`, `-`, `+1`,
	`"a\"b\\c\/d\b\f\n\r\t\u0000\u001f\u00e9\u2028\u2029<>&"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\udc00x"`, `"\ud83dx"`,
	"\"\xff\"", "\"caf\xc3\xa9 \xe2\x80\xa8\"", "\"\x01\"", "\"\x7f\"", ` {"x" : [ 1 , 2 ] } `, `{} x`, `1 2`, `[1,]`, `{"a":}`, `{"a" 1}`,
	`"` + strings.Repeat("x", 300) + `"`, strings.Repeat("[", 40) + strings.Repeat("]", 40), strings.Repeat("[", 200) + strings.Repeat("]", 200),
	"\ufeff{}", "",
}

// FuzzTranscodeMatchesReference: the direct JSON → CBOR transcoder agrees
// with the reference (jsonToCBORRef) on every input: same bytes when
// the reference accepts, never a success it refuses; and the CBOR it
// emits goes back to JSON through the direct CBOR → JSON transcoder
// exactly as through the reference.
func FuzzTranscodeMatchesReference(f *testing.F) {
	for _, s := range transcodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		want, werr := jsonToCBORRef(raw)
		got, gerr := jsonToCBOR(raw)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("jsonToCBOR(%q) = %x, %v; reference %x, %v", raw, got, gerr, want, werr)
		}
		if fast, ok := fastJSONToCBOR(raw); ok && (werr != nil || !bytes.Equal(fast, want)) {
			t.Fatalf("fast path on %q: %x, reference %x, %v", raw, fast, want, werr)
		}
		if werr != nil {
			return
		}
		checkCBORToJSON(t, want)
	})
}

// FuzzCBORToJSONMatchesReference: the direct CBOR → JSON transcoder agrees
// with the reference (cborToJSONRef) on any bytes: same JSON when the
// reference accepts, never a success it refuses.
func FuzzCBORToJSONMatchesReference(f *testing.F) {
	for _, s := range transcodeSeeds {
		if b, err := jsonToCBORRef([]byte(s)); err == nil {
			f.Add(b)
		}
	}
	for _, b := range [][]byte{
		{0xf7}, {0xf8, 0x20}, {0xf9, 0x7e, 0x00}, {0xf9, 0x7c, 0x00}, {0xf9, 0x00, 0x01}, {0xf9, 0x80, 0x00},
		{0xfa, 0x47, 0xc3, 0x50, 0x00}, {0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a},
		{0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0}, {0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x18, 0x01},
		{0x43, 1, 2, 3}, {0xc2, 0x41, 0x01}, {0xc1, 0x00}, {0x9f, 0xff}, {0xa1, 0x01, 0x02}, {0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02},
		{0xa1, 0x41, 0x61, 0x01}, {0x62, 0xc3, 0x28}, {0x00, 0x00}, {0x1c}, {0x81},
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, item []byte) {
		checkCBORToJSON(t, item)
	})
}

func checkCBORToJSON(t *testing.T, item []byte) {
	t.Helper()
	want, werr := cborToJSONRef(item)
	got, gerr := cborToJSON(item)
	if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("cborToJSON(%x) = %s, %v; reference %s, %v", item, got, gerr, want, werr)
	}
	if fast, ok := fastCBORToJSON(item); ok && (werr != nil || !bytes.Equal(fast, want)) {
		t.Fatalf("fast path on %x: %s, reference %s, %v", item, fast, want, werr)
	}
}

// TestTranscodeFastPathServesPlainDocuments: a chat completion goes through
// the direct transcoders, not the reference (the speed-up is real).
func TestTranscodeFastPathServesPlainDocuments(t *testing.T) {
	doc := []byte(transcodeSeeds[0])
	c, ok := fastJSONToCBOR(doc)
	if !ok {
		t.Fatal("fast JSON → CBOR gave up on a chat completion")
	}
	if _, ok := fastCBORToJSON(c); !ok {
		t.Fatal("fast CBOR → JSON gave up on a chat completion")
	}
}

func BenchmarkTranscode(b *testing.B) {
	doc := []byte(transcodeSeeds[0])
	c, _ := jsonToCBORRef(doc)
	for _, bc := range []struct {
		name string
		fn   func() error
	}{
		{"json2cbor/ref", func() error { _, err := jsonToCBORRef(doc); return err }},
		{"json2cbor/fast", func() error { _, err := jsonToCBOR(doc); return err }},
		{"cbor2json/ref", func() error { _, err := cborToJSONRef(c); return err }},
		{"cbor2json/fast", func() error { _, err := cborToJSON(c); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
