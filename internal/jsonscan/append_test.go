package jsonscan

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// FuzzAppendString holds AppendString to json.Marshal's bytes.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "node-1", "héllo wörld", "<b>&", "a\"b\\c", "\x00\x1f", "\u2028\u2029", "\xff\xfe", "日本語"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString([]byte("x"), s); !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("AppendString(%q) = %s, json.Marshal %s", s, got[1:], want)
		}
	})
}

// FuzzAppendFloat holds AppendFloat to json.Marshal's bytes and refuses
// what json.Marshal refuses.
func FuzzAppendFloat(f *testing.F) {
	for _, v := range []float64{0, 1, -1.5, 0.1, 1e-7, 1e21, 123456789, math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1)} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		want, err := json.Marshal(v)
		got, ok := AppendFloat(nil, v)
		if ok != (err == nil) || (ok && !bytes.Equal(got, want)) {
			t.Fatalf("AppendFloat(%v) = %s %v, json.Marshal %s %v", v, got, ok, want, err)
		}
	})
}
