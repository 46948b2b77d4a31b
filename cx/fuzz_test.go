package cx

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

// FuzzOpen feeds arbitrary POST /v1/task bodies to Provider.Open. Seeds
// are in testdata/fuzz/FuzzOpen (valid KAT envelopes and malformed ones)
// plus the KAT bodies added below. Invariants: no panic; exactly one of
// result and error; every error is a catalogued code; an opened envelope
// yields a JSON CALL without CX fields; a plaintext body comes back as is.
func FuzzOpen(f *testing.F) {
	kat := loadKAT(f)
	for _, v := range kat.Request {
		body, _ := json.Marshal(map[string]any{"task_id": v.TaskID, "intent": v.Intent, "iicp_conf": v.Conf})
		f.Add(body)
	}
	clk := newFakeClock()
	ring := ringWithKey(f, mustPriv(f, kat.Request[0].NodePrivate), clk)
	p := newTestProvider(f, ring, clk, WithReplayCache(DefaultReplayTTL, 64), WithMaxBody(1<<16))
	g := newTestProvider(f, ring, clk, WithReplayCache(DefaultReplayTTL, 64), WithMaxBody(1<<16), WithErrorModel(Granular))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, prov := range []*Provider{p, g} {
			o, werr := prov.Open(body)
			if (o == nil) == (werr == nil) {
				t.Fatalf("Open returned %v and %v", o, werr)
			}
			if werr != nil {
				if !werr.Code.Known() || werr.Message == "" {
					t.Fatalf("uncatalogued error %+v", werr)
				}
				continue
			}
			if !o.Encrypted {
				if !bytes.Equal(o.Call, body) {
					t.Fatal("plaintext body altered")
				}
				continue
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal(o.Call, &top); err != nil {
				t.Fatalf("opened call is not JSON: %v", err)
			}
			if _, ok := top[FieldConf]; ok {
				t.Fatal("opened call still has iicp_conf")
			}
			if !json.Valid(top["payload"]) {
				t.Fatal("opened payload is not JSON")
			}
			if _, err := o.Respond(&wire.Response{TaskID: "t", Status: wire.StatusSuccess, Result: json.RawMessage(`{}`)}); err != nil {
				t.Fatalf("Respond: %v", err)
			}
		}
	})
}

// FuzzResponseOpen feeds arbitrary node replies to a consumer's opener:
// no panic, and a success is always valid JSON.
func FuzzResponseOpen(f *testing.F) {
	kat := loadKAT(f)
	for _, v := range kat.Response {
		body, _ := json.Marshal(sealedResponse{TaskID: v.TaskID, Status: "success", Conf: &v.Conf})
		f.Add(body)
	}
	f.Add([]byte(`{"task_id":"t","status":"success","result":{}}`))
	f.Add([]byte(`{"iicp_conf_resp":{"nonce":"","encrypted_body":""}}`))
	v := kat.Response[0]
	o := &ResponseOpener{taskID: v.TaskID, shared: mustHex(f, v.SharedHex), required: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, werr := o.Open(body)
		if werr == nil && !json.Valid(out) {
			t.Fatalf("opened response is not JSON: %q", out)
		}
	})
}
