package jcs

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestCanonicalize(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		// RFC 8785 §3.2.3: members sorted by UTF-16 code units, so U+1D11E
		// (surrogates D834 DD1E) sorts before U+FB33 although its code point
		// is larger.
		{"utf16 order", `{"\ufb33":1,"\ud834\udd1e":2,"a":3}`, "{\"a\":3,\"\U0001D11E\":2,\"\uFB33\":1}"},
		// Whitespace removed, nested objects sorted.
		{"nested", `{ "b" : [ 1 , {"z":null,"y":true} ], "a":"x" }`, `{"a":"x","b":[1,{"y":true,"z":null}]}`},
		// RFC 8785 Appendix B number samples.
		{"numbers", `[0,-0,1.0,1e21,1e20,0.000001,1e-7,123456789012345680000,-1.5e-9,4.50,2e-3,1E+30]`,
			`[0,0,1,1e+21,100000000000000000000,0.000001,1e-7,123456789012345680000,-1.5e-9,4.5,0.002,1e+30]`},
		// Only quote, backslash and controls are escaped; others stay literal.
		{"strings", `"\u0041\u00e9\u2028\u001f\n\"\\/"`, "\"A\u00e9\u2028\\u001f\\n\\\"\\\\/\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	for name, in := range map[string]string{
		"duplicate key":  `{"a":1,"a":2}`,
		"trailing data":  `{"a":1} {}`,
		"invalid utf8":   "\"\xff\"",
		"huge number":    `1e400`,
		"truncated":      `{"a":`,
		"deep nesting":   string(make([]byte, 0)) + repeat("[", 100) + repeat("]", 100),
		"empty document": ``,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Canonicalize([]byte(in)); !errors.Is(err, ErrNotCanonicalizable) {
				t.Fatalf("got %v, want ErrNotCanonicalizable", err)
			}
		})
	}
}

func repeat(s string, n int) string {
	out := make([]byte, 0, len(s)*n)
	for range n {
		out = append(out, s...)
	}
	return string(out)
}

// FuzzCanonicalize checks what the event signature relies on
// (iicp-federated-directory.md §5.1 signs canonical_json(payload)): whatever Canonicalize accepts is valid
// JSON with the same meaning (equal after decoding; numbers compared as
// IEEE 754 doubles, as JCS defines them), and the canonical form is a fixed
// point. Seeds live in testdata/fuzz/FuzzCanonicalize: nesting, UTF-16
// member order, escapes, RFC 8785 number edge cases, invalid UTF-8,
// duplicate names and depth limits.
func FuzzCanonicalize(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Canonicalize(b)
		if err != nil {
			if !errors.Is(err, ErrNotCanonicalizable) {
				t.Fatalf("error outside ErrNotCanonicalizable: %v", err)
			}
			return
		}
		var in, got any
		if err := json.Unmarshal(b, &in); err != nil {
			t.Fatalf("accepted invalid JSON %q: %v", b, err)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("canonical form %q is not JSON: %v", out, err)
		}
		if !reflect.DeepEqual(in, got) {
			t.Fatalf("meaning changed: %q -> %q", b, out)
		}
		again, err := Canonicalize(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q (%v)", out, again, err)
		}
	})
}
