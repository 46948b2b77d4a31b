package httpapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

// TestEncodeResponseKnowsEveryField: appendResponse writes wire.Response's
// fields by hand, so a field added to wire.Response must be added there
// too; this test names the one that is missing.
func TestEncodeResponseKnowsEveryField(t *testing.T) {
	var names []string
	rt := reflect.TypeFor[wire.Response]()
	for i := range rt.NumField() {
		if tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); tag != "-" && rt.Field(i).IsExported() {
			names = append(names, tag)
		}
	}
	if !reflect.DeepEqual(names, responseFields) {
		t.Fatalf("wire.Response JSON fields %v, appendResponse writes %v: update encode.go", names, responseFields)
	}
	m := reflect.TypeFor[wire.Metrics]()
	if m.NumField() != 2 || m.Field(0).Tag.Get("json") != "latency_ms" || m.Field(1).Tag.Get("json") != "tokens_used" {
		t.Fatal("wire.Metrics changed: update appendResponse")
	}
}

// TestEncodeResponseMatchesWire: the hand encoder writes exactly the bytes
// of wire.EncodeJSON, or hands the RESPONSE to it.
func TestEncodeResponseMatchesWire(t *testing.T) {
	yes, no := true, false
	ok := func(res, model string, ai *bool) *wire.Response {
		return &wire.Response{TaskID: "6f1c2f0e-3b7a-4c1e-9d2a-0a1b2c3d4e5f", Status: wire.StatusSuccess, Result: json.RawMessage(res),
			Metrics: wire.Metrics{LatencyMs: 12, TokensUsed: 7}, ModelUsed: model, GeneratedByAI: ai, NodeID: "n-1"}
	}
	cases := []*wire.Response{
		ok(`{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}]}`, "llama3.2", &yes),
		ok(" {\n \"a\" : [ 1 , 2 ] ,\"b\":\"x y\"\t} ", "m\u00e9", &no),
		ok(`{"content":"<script>&amp;</script>"}`, "m", nil),
		ok(`{"content":"line\u2028sep"}`, "", nil),
		ok(`{"broken":`, "m", &yes),
		ok(`{}`, "m\"<x>\\\n\xff", &yes),
		ok(``, "m", nil),
		{TaskID: "t", Status: wire.StatusError, Result: json.RawMessage("null"), Error: wire.NewError(wire.CodeBackendError, "inference backend failed"), Code: wire.CodeBackendError},
		{TaskID: "t", Status: wire.StatusSuccess, Result: json.RawMessage(`{}`), Code: "x", SessionID: "s&1", CallID: "c-2"},
	}
	for i, r := range cases {
		got, gerr := encodeResponse(r)
		want, werr := wire.EncodeJSON(r)
		if (gerr == nil) != (werr == nil) || !bytes.Equal(got, want) {
			t.Errorf("case %d:\n got %s (%v)\nwant %s (%v)", i, got, gerr, want, werr)
		}
		// writeResponse appends into a reused buffer: the same bytes after
		// whatever the buffer held, small or roomy.
		for _, prefix := range [][]byte{[]byte("xy"), append(make([]byte, 0, 4096), "xy"...)} {
			if b, ok := appendResponse(prefix, r); ok && !bytes.Equal(b, append([]byte("xy"), want...)) {
				t.Errorf("case %d, appended to cap %d: %s", i, cap(prefix), b)
			}
		}
	}
}

// FuzzEncodeResponse: for any result bytes and strings, encodeResponse
// writes what wire.EncodeJSON writes and fails where it fails.
func FuzzEncodeResponse(f *testing.F) {
	f.Add([]byte(`{"choices":[{"message":{"content":"ok"}}]}`), "llama3.2", "n-1", int64(3), true)
	f.Add([]byte(" [1, \"<\" ,{ }] "), "m\xff<", "", int64(-1), false)
	f.Add([]byte(`{"a":"\u2028"}`), "", "id\"", int64(0), true)
	f.Fuzz(func(t *testing.T, result []byte, model, nodeID string, tokens int64, ai bool) {
		r := &wire.Response{TaskID: nodeID, Status: wire.StatusSuccess, Result: result,
			Metrics: wire.Metrics{LatencyMs: tokens / 2, TokensUsed: tokens}, ModelUsed: model, NodeID: nodeID}
		if ai {
			r.GeneratedByAI = &ai
			r.SessionID, r.CallID = model, nodeID
		}
		got, gerr := encodeResponse(r)
		want, werr := wire.EncodeJSON(r)
		if (gerr == nil) != (werr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("\n got %s (%v)\nwant %s (%v)", got, gerr, want, werr)
		}
	})
}
