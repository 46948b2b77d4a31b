package wire

import (
	"encoding/json"
	"reflect"
	"testing"
)

const fastResponseBase = `{"task_id":"6f1c2f0e-3b7a-4c1e-9d2a-0a1b2c3d4e5f","status":"success",` +
	`"result":{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi \u00e9"}}]},` +
	`"metrics":{"latency_ms":12,"tokens_used":7},"model_used":"llama3.2","generated_by_ai":true,"node_id":"n-1","error":null,"code":"","call_id":"c-1"}`

// The common shape takes the fast path and decodes exactly as encoding/json.
func TestDecodeResponseFastCommonShape(t *testing.T) {
	for _, body := range []string{
		fastResponseBase,
		` { "status" : "success" , "result" : null , "metrics" : null , "generated_by_ai" : false , "lifecycle" : null , "x" : [1,{"a":"b"}] } `,
		`{"task_id":"t","status":"success","result":[ 1 , 2 ],"metrics":{"latency_ms":-0,"other":1.5}}`,
	} {
		var got Response
		if !decodeResponseFast([]byte(body), &got) {
			t.Fatalf("fast path declined a common RESPONSE: %s", body)
		}
		var want Response
		if err := json.Unmarshal([]byte(body), &want); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got %+v\nwant %+v (%v)", body, got, want, err)
		}
	}
	// An error RESPONSE, escapes and case-folded names go to encoding/json.
	for _, body := range []string{
		`{"status":"error","result":null,"error":{"code":"backend_error","message":"x"}}`,
		`{"status":"succ\u0065ss"}`, `{"Status":"success"}`, `{"metrics":{"Latency_MS":1}}`, `{"metrics":{"latency_ms":1.0}}`,
	} {
		var got Response
		if decodeResponseFast([]byte(body), &got) {
			t.Fatalf("fast path took %s", body)
		}
	}
}

// FuzzDecodeResponseFast: whatever the fast path accepts, encoding/json
// decodes to the same Response; DecodeResponseJSON agrees with
// encoding/json plus checkResponse on every input.
func FuzzDecodeResponseFast(f *testing.F) {
	f.Add([]byte(fastResponseBase))
	f.Add([]byte(`{"status":"error","result":null,"error":{"code":"backend_error","message":"x"},"code":"backend_error"}`))
	f.Add([]byte(`{"status":"success","result":null,"generated_by_ai":null,"metrics":{"tokens_used":9007199254740993}}`))
	f.Add([]byte(`{"TASK_ID":"x","task_id":"y","result":"\ud83d\ude00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want Response
		wantOK := checkJSON(b, MaxResponseBytes) == nil && json.Unmarshal(b, &want) == nil
		var got Response
		if checkJSON(b, MaxResponseBytes) == nil && decodeResponseFast(b, &got) {
			if !wantOK {
				t.Fatalf("fast path accepted what encoding/json rejects: %q", b)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fast path differs on %q:\n got %+v\nwant %+v", b, got, want)
			}
		}
		r, err := DecodeResponseJSON(b)
		switch {
		case !wantOK && err == nil:
			t.Fatalf("DecodeResponseJSON accepted what encoding/json rejects: %q", b)
		case wantOK && (err == nil) != (checkResponse(&want) == nil):
			t.Fatalf("DecodeResponseJSON and the reference disagree on validity: %q", b)
		case err == nil && !reflect.DeepEqual(*r, want):
			t.Fatalf("DecodeResponseJSON differs on %q", b)
		}
	})
}

// BenchmarkDecodeResponseJSON: a chat RESPONSE through the fast path and
// through encoding/json (the path every RESPONSE took before).
func BenchmarkDecodeResponseJSON(b *testing.B) {
	body := []byte(fastResponseBase)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := DecodeResponseJSON(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := decodeChecked(body, MaxResponseBytes, checkResponse); err != nil {
				b.Fatal(err)
			}
		}
	})
}
