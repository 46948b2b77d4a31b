package wire

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

const fastCallBase = `{"task_id":"3f1c2a4e-8b7d-4c6e-9f0a-1b2c3d4e5f60","intent":"llm:chat",` +
	`"payload":{"messages":[{"role":"user","content":"hi \"there\" \u00e9"}],"n":-1.5e+3,"ok":true,"z":null},` +
	`"constraints":{"timeout_ms":30000,"qos":"standard","max_tokens":64,"required_profiles":[],"x":[1]},` +
	`"auth":{"node_token":"tok"},"trace":{"trace_id":"0af7651916cd43dd8448eb211c80319c"},` +
	`"model":"m","call_id":"c","session_id":"s","idempotency_key":"k","sdk_language":"go"}`

// decodeReflect is the reference: encoding/json after scanJSON.
func decodeReflect(b []byte) (*Call, bool) {
	var c Call
	if checkJSON(b, MaxCallBytes) != nil || json.Unmarshal(b, &c) != nil {
		return nil, false
	}
	return &c, true
}

// The common shape takes the fast path and decodes exactly as encoding/json.
func TestDecodeCallFastCommonShape(t *testing.T) {
	for _, body := range []string{
		fastCallBase,
		" {\n \"task_id\" : \"a\" , \"payload\" : null , \"iicp_conf\" : {\"v\":1} } ",
		`{"constraints":{"optional_profiles":["a","b"],"timeout_ms":-0}}`,
		`{"unknown":{"deep":[{"a":[]},"s",0.5,false]},"payload":[]}`,
	} {
		var got Call
		if !decodeCallFast([]byte(body), &got) {
			t.Fatalf("fast path declined a common CALL: %s", body)
		}
		want, ok := decodeReflect([]byte(body))
		if !ok {
			t.Fatalf("encoding/json rejects %s", body)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("fast path differs:\n got %+v\nwant %+v", got, *want)
		}
	}
}

// Whatever the fast path declines still decodes as before: the unusual
// shapes below go to encoding/json and DecodeCallJSON returns its result.
func TestDecodeCallFastDeclinesUnusual(t *testing.T) {
	for _, body := range []string{
		`{"TASK_ID":"x"}`,                    // encoding/json folds case
		`{"Intent":"llm:chat"}`,              // ditto
		`{"task_\u0069d":"x"}`,               // escaped name
		`{"taſk_id":"x"}`,                    // Unicode fold
		`{"task_id":"a\nb"}`,                 // escape in a value
		`{"task_id":null}`,                   // null leaves the field
		`{"auth":null}`,                      // ditto, pointer
		`{"billing":{"max_credits":1.5}}`,    // left to encoding/json
		`{"task_id":1}`,                      // wrong type
		`{"constraints":{"timeout_ms":1.0}}`, // not an integer
		`{"constraints":{"timeout_ms":1e3}}`, // ditto
		`{"constraints":{"timeout_ms":007}}`, // bad grammar
		`{"constraints":{"max_tokens":99999999999999999999}}`,
		`{"x":01}`,                                  // bad grammar, skipped member
		`{"x":"\q"}`,                                // bad escape, skipped member
		`{"x":tru}`,                                 // bad literal
		`{"payload":{"a":-}}`,                       // bad number in the payload
		"{\"task_id\":\"\xff\"}",                    // invalid UTF-8 is rewritten
		`{"trace":{"Trace_ID":"t"}}`,                // nested fold
		`{"constraints":{"required_profiles":[1]}}`, // wrong element type
	} {
		var got Call
		if decodeCallFast([]byte(body), &got) {
			t.Errorf("fast path accepted an unusual CALL: %s", body)
		}
	}
}

// The fast walk runs without scanJSON before it, so it declines what
// scanJSON rejects, and DecodeCallJSON still answers scanJSON's error.
func TestDecodeCallFastOwnsScanChecks(t *testing.T) {
	deep := `{"payload":` + strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting) + `}`
	for _, tc := range []struct{ body, msg string }{
		{deep, "nests deeper than 64 levels"},
		{`{"payload":{"a":1,"a":2}}`, "repeats an object member"},
		{`{"x":1,"x":2}`, "repeats an object member"},
		{`{"constraints":{"x":1,"x":2}}`, "repeats an object member"},
		{`{"task_id":"a"} {}`, "has trailing data after the JSON object"},
		{`{"task_id":"a"}]`, "has trailing data after the JSON object"},
		{`[]`, "must be a JSON object"},
	} {
		var got Call
		if decodeCallFast([]byte(tc.body), &got) {
			t.Errorf("fast walk accepted %.60s", tc.body)
		}
		if _, err := DecodeCallJSON([]byte(tc.body)); err == nil || !strings.HasSuffix(err.Message, tc.msg) {
			t.Errorf("DecodeCallJSON(%.60s) = %v, want %q", tc.body, err, tc.msg)
		}
	}
	// Repeats deeper than scanJSON looks, and 64 levels, are accepted.
	ok := `{"payload":{"a":{"b":1,"b":2}},"x":` + strings.Repeat("[", MaxNesting-1) + strings.Repeat("]", MaxNesting-1) + `}`
	var got Call
	if !decodeCallFast([]byte(ok), &got) {
		t.Fatalf("fast walk declined %s", ok)
	}
}

// A member repeated past scanJSON's 32-name duplicate window: the fast
// path declines and encoding/json's merge-into-existing wins.
func TestDecodeCallFastRepeatedMember(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"q":0`)
	for i := 0; i < 40; i++ {
		b.WriteString(`,"p` + strings.Repeat("x", i) + `":0`)
	}
	b.WriteString(`,"trace":{"trace_id":"a"},"trace":{"origin_node":"n"}}`)
	var got Call
	if decodeCallFast([]byte(b.String()), &got) {
		t.Fatal("fast path accepted a repeated member")
	}
	want, ok := decodeReflect([]byte(b.String()))
	if !ok || want.Trace == nil || want.Trace.TraceID != "a" || want.Trace.OriginNode != "n" {
		t.Fatalf("reference decode changed: %+v", want)
	}
}

// FuzzDecodeCallFast is the differential proof: whenever the fast path
// accepts an input, encoding/json accepts it too and yields an equal Call;
// DecodeCallJSON's answer equals the reference decoder's plus ValidateCall.
func FuzzDecodeCallFast(f *testing.F) {
	f.Add([]byte(fastCallBase))
	f.Add(readSpec(f, "schemas/samples/task-valid.json"))
	f.Add(readSpec(f, "schemas/samples/task-batch.json"))
	f.Add([]byte(`{"TASK_ID":"x","task_id":"y"}`))
	f.Add([]byte(`{"payload":{"a":[1,-0.5e-7,"\ud83d\ude00"]},"constraints":{"timeout_ms":0}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantOK := decodeReflect(b)
		var got Call
		if decodeCallFast(b, &got) {
			if err := checkJSON(b, MaxCallBytes); err != nil && len(b) <= MaxCallBytes {
				t.Fatalf("fast path accepted what scanJSON rejects (%s): %q", err.Message, b)
			}
			if !wantOK {
				t.Fatalf("fast path accepted what encoding/json rejects: %q", b)
			}
			if !reflect.DeepEqual(&got, want) {
				t.Fatalf("fast path differs on %q:\n got %+v\nwant %+v", b, got, *want)
			}
		}
		c, err := DecodeCallJSON(b)
		switch {
		case !wantOK && err == nil:
			t.Fatalf("DecodeCallJSON accepted what encoding/json rejects: %q", b)
		case wantOK && (err == nil) != (ValidateCall(want) == nil):
			t.Fatalf("DecodeCallJSON and the reference disagree on validity: %q", b)
		case err == nil && !reflect.DeepEqual(c, want):
			t.Fatalf("DecodeCallJSON differs on %q", b)
		}
	})
}
