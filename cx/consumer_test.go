package cx

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// TestCX_ConsumerRefusesKeylessNode: fail closed by default (§6); the
// explicit AllowPlaintext escape hatch passes the call through untouched.
func TestCX_ConsumerRefusesKeylessNode(t *testing.T) {
	call := testCall("t")
	body, opener, werr := Prepare(call, nil, RequireEncryption)
	if werr == nil || werr.Code != wire.CodeE064 || body != nil || opener != nil {
		t.Fatalf("Prepare(keyless, require) = %s, %v", body, werr)
	}
	body, opener, werr = Prepare(call, nil, AllowPlaintext)
	if werr != nil || !bytes.Equal(body, call) || opener != nil {
		t.Fatalf("Prepare(keyless, allow) = %s, %v", body, werr)
	}
	if out, werr := opener.Open([]byte(`{"result":1}`)); werr != nil || string(out) != `{"result":1}` {
		t.Fatalf("nil opener must pass bodies through: %s, %v", out, werr)
	}
}

// TestCX_ConsumerRejectsUnusableKeys: a malformed or expired advertised key
// is no key (§3.2) and fails closed even under AllowPlaintext.
func TestCX_ConsumerRejectsUnusableKeys(t *testing.T) {
	clk := newFakeClock()
	good := ringWithKey(t, newKey(t), clk).PublicKey()
	mod := func(f func(k *wire.CXPublicKey)) wire.CXPublicKey {
		k := good
		k.Features = append([]string(nil), good.Features...)
		f(&k)
		return k
	}
	cases := []struct {
		name string
		key  wire.CXPublicKey
		code wire.Code
	}{
		{"WrongAlgorithm", mod(func(k *wire.CXPublicKey) { k.Algorithm = "P-256" }), wire.CodeE064},
		{"LowercaseAlgorithm", mod(func(k *wire.CXPublicKey) { k.Algorithm = "x25519" }), wire.CodeE064},
		{"WrongEncoding", mod(func(k *wire.CXPublicKey) { k.Encoding = "hex" }), wire.CodeE064},
		{"ShortKey", mod(func(k *wire.CXPublicKey) { k.Key = encode(make([]byte, 31)) }), wire.CodeE064},
		{"NotBase64", mod(func(k *wire.CXPublicKey) { k.Key = "***" }), wire.CodeE064},
		{"NoKeyID", mod(func(k *wire.CXPublicKey) { k.KeyID = "" }), wire.CodeE064},
		{"KeyIDWithSpace", mod(func(k *wire.CXPublicKey) { k.KeyID = "a b" }), wire.CodeE064},
		{"BadNotAfter", mod(func(k *wire.CXPublicKey) { k.NotAfter = "next week" }), wire.CodeE064},
		{"Expired", mod(func(k *wire.CXPublicKey) { k.NotAfter = "2020-01-01T00:00:00Z" }), wire.CodeE063},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, werr := Prepare(testCall("t"), &tc.key, AllowPlaintext)
			if werr == nil || werr.Code != tc.code {
				t.Fatalf("Prepare = %v, want %s", werr, tc.code)
			}
		})
	}
}

// TestCX_ConsumerAcceptsLegacyAndMinimalKeys: the SDK minimal shape
// (algorithm, key, key_id; no not_after) and meshnode's legacy field names
// both seal, and unknown features are ignored (§5a.4).
func TestCX_ConsumerAcceptsLegacyAndMinimalKeys(t *testing.T) {
	clk := newFakeClock()
	ring := ringWithKey(t, newKey(t), clk)
	pub := ring.PublicKey()
	prov := newTestProvider(t, ring, clk)
	for name, k := range map[string]wire.CXPublicKey{
		"minimal": {Algorithm: Algorithm, Key: pub.Key, KeyID: pub.KeyID, Features: []string{"future_thing_v9"}},
		"legacy":  {Alg: Algorithm, PublicKey: pub.Key, KeyID: pub.KeyID},
		"sdk_id":  {Algorithm: Algorithm, Encoding: Encoding, Key: pub.Key, KeyID: "cx-" + pub.KeyID},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "sdk_id" { // the SDK form of our key id
				r, _ := ring.lookup(pub.KeyID)
				k.KeyID = SDKKeyID(r.PublicKey())
			}
			body, opener, werr := Prepare(testCall("t-"+name), &k, RequireEncryption)
			if werr != nil {
				t.Fatalf("Prepare: %v", werr)
			}
			if opener.ResponseRequired() || bytes.Contains(body, []byte(FieldResponseEncryption)) {
				t.Fatal("response encryption negotiated without the feature")
			}
			if _, werr := prov.Open(body); werr != nil {
				t.Fatalf("provider Open: %v", werr)
			}
		})
	}
}

// TestCX_SealRequestShape: Seal needs task_id, intent and a JSON payload,
// and refuses to seal twice.
func TestCX_SealRequestShape(t *testing.T) {
	clk := newFakeClock()
	rk, _ := ParseRecipientKey(ringWithKey(t, newKey(t), clk).PublicKey(), clk.Now())
	for name, body := range map[string]string{
		"NoPayload":  `{"task_id":"t","intent":"i"}`,
		"NoTaskID":   `{"intent":"i","payload":{}}`,
		"EmptyTask":  `{"task_id":"","intent":"i","payload":{}}`,
		"NotObject":  `"call"`,
		"AlreadyCX":  `{"task_id":"t","intent":"i","iicp_conf":{}}`,
		"BrokenJSON": `{"task_id":"t",`,
	} {
		if _, _, werr := Seal([]byte(body), rk); werr == nil || werr.Code != wire.CodeValidationError {
			t.Errorf("%s: Seal = %v, want validation_error", name, werr)
		}
	}
	// A JSON null payload is a payload: it seals and opens as null.
	body, _, werr := Seal([]byte(`{"task_id":"t","intent":"i","payload":null}`), rk)
	if werr != nil {
		t.Fatalf("null payload: %v", werr)
	}
	var top struct {
		Conf Envelope `json:"iicp_conf"`
	}
	_ = json.Unmarshal(body, &top)
	if top.Conf.PlaintextSize == nil || *top.Conf.PlaintextSize != 4 {
		t.Fatalf("plaintext_size = %v, want 4", top.Conf.PlaintextSize)
	}
}

// TestCX_T2_03_ConsumerRejectsPlaintextAfterNegotiation: once response
// encryption is negotiated a plaintext result is refused (§5a.3), a
// tampered sealed response fails, and an error body passes through.
func TestCX_T2_03_ConsumerRejectsPlaintextAfterNegotiation(t *testing.T) {
	fx := newFixture(t)
	o, werr := fx.prov.Open(fx.body)
	if werr != nil {
		t.Fatal(werr)
	}
	if _, werr := fx.opener.Open([]byte(`{"task_id":"task-1","status":"success","result":{"text":"x"}}`)); werr == nil || werr.Code != wire.CodeE050 {
		t.Fatalf("plaintext result accepted: %v", werr)
	}
	errBody := []byte(`{"error":{"code":"capacity_exceeded","message":"busy"},"code":"capacity_exceeded"}`)
	if out, werr := fx.opener.Open(errBody); werr != nil || !bytes.Equal(out, errBody) {
		t.Fatalf("error body: %s, %v", out, werr)
	}
	sealed, err := o.Respond(&wire.Response{TaskID: "task-1", Status: wire.StatusSuccess, Result: json.RawMessage(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	tampered := mutateResp(t, sealed, func(c map[string]any) { c["encrypted_body"] = flip(t, c["encrypted_body"].(string), 0) })
	if _, werr := fx.opener.Open(tampered); werr == nil || werr.Code != wire.CodeE050 {
		t.Fatalf("tampered response: %v", werr)
	}
	// A response sealed for another task does not open under this session.
	other := mutateResp(t, sealed, func(c map[string]any) { c["nonce"] = flip(t, c["nonce"].(string), 1) })
	if _, werr := fx.opener.Open(other); werr == nil {
		t.Fatal("response with a changed nonce opened")
	}
	if _, werr := fx.opener.Open([]byte(`garbage`)); werr == nil {
		t.Fatal("garbage response opened")
	}
	if _, werr := fx.opener.Open(mutateResp(t, sealed, func(c map[string]any) { c["version"] = 2 })); werr == nil {
		t.Fatal("response envelope version 2 opened")
	}
}

func mutateResp(tb testing.TB, body []byte, f func(c map[string]any)) []byte {
	tb.Helper()
	var top map[string]any
	if err := json.Unmarshal(body, &top); err != nil {
		tb.Fatal(err)
	}
	f(top[FieldConfResp].(map[string]any))
	out, _ := json.Marshal(top)
	return out
}

// TestCX_ConsumerUsesWallClockForExpiry: Prepare checks not_after against now.
func TestCX_ConsumerUsesWallClockForExpiry(t *testing.T) {
	clk := newFakeClock()
	k := ringWithKey(t, newKey(t), clk).PublicKey()
	k.NotAfter = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	if _, _, werr := Prepare(testCall("t"), &k, RequireEncryption); werr == nil || werr.Code != wire.CodeE063 {
		t.Fatalf("Prepare(expired) = %v", werr)
	}
}
