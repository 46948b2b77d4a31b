package cx

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

const secretText = "TOP-SECRET-PROMPT-7d41"

// testCall is a plain CALL whose payload holds secretText.
func testCall(taskID string) []byte {
	return []byte(`{"task_id":"` + taskID + `","intent":"urn:iicp:intent:llm:chat:v1","payload":{"messages":[{"role":"user","content":"` + secretText + `"}]},"constraints":{"timeout_ms":5000}}`)
}

func newKey(tb testing.TB) *ecdh.PrivateKey {
	tb.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// fixture is a provider with one key and the sealed body of a test call.
type fixture struct {
	clk    *fakeClock
	ring   *KeyRing
	prov   *Provider
	body   []byte
	opener *ResponseOpener
}

func newFixture(tb testing.TB, opts ...ProviderOption) *fixture {
	tb.Helper()
	clk := newFakeClock()
	ring := ringWithKey(tb, newKey(tb), clk)
	pub := ring.PublicKey()
	rk, werr := ParseRecipientKey(pub, clk.Now())
	if werr != nil {
		tb.Fatalf("ParseRecipientKey: %v", werr)
	}
	body, opener, werr := Seal(testCall("task-1"), rk)
	if werr != nil {
		tb.Fatalf("Seal: %v", werr)
	}
	return &fixture{clk: clk, ring: ring, prov: newTestProvider(tb, ring, clk, opts...), body: body, opener: opener}
}

// mutate decodes body, applies f to the top level and the envelope, and
// re-encodes it.
func mutate(tb testing.TB, body []byte, f func(top map[string]any, conf map[string]any)) []byte {
	tb.Helper()
	var top map[string]any
	if err := json.Unmarshal(body, &top); err != nil {
		tb.Fatal(err)
	}
	conf, _ := top["iicp_conf"].(map[string]any)
	f(top, conf)
	out, err := json.Marshal(top)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// flip returns the base64url string s with one bit of decoded byte i flipped.
func flip(tb testing.TB, s string, i int) string {
	tb.Helper()
	b, err := decode(s)
	if err != nil {
		tb.Fatal(err)
	}
	if i < 0 {
		i += len(b)
	}
	b[i] ^= 0x01
	return encode(b)
}

// TestCX_02_RoundTrip: ours to ours — consumer seals, provider opens into
// the original CALL, engine response sealed back and opened by the consumer.
func TestCX_02_RoundTrip(t *testing.T) {
	fx := newFixture(t)
	if bytes.Contains(fx.body, []byte(secretText)) {
		t.Fatal("sealed body contains the plaintext payload")
	}
	if !fx.opener.ResponseRequired() {
		t.Fatal("ring advertises response_encryption_v1 but the opener does not require it")
	}
	o, werr := fx.prov.Open(fx.body)
	if werr != nil {
		t.Fatalf("Open: %v", werr)
	}
	if !o.Encrypted || !o.ResponseEncryption {
		t.Fatalf("Opened = %+v", o)
	}
	var call wire.Call
	if err := json.Unmarshal(o.Call, &call); err != nil {
		t.Fatalf("plain call does not decode: %v", err)
	}
	var want wire.Call
	_ = json.Unmarshal(testCall("task-1"), &want)
	if call.TaskID != want.TaskID || call.Intent != want.Intent || string(call.Payload) != string(want.Payload) || call.Constraints != want.Constraints {
		t.Fatalf("plain call = %s", o.Call)
	}
	if bytes.Contains(o.Call, []byte("iicp_conf")) || bytes.Contains(o.Call, []byte(FieldResponseEncryption)) {
		t.Fatalf("plain call still carries CX fields: %s", o.Call)
	}
	resp := &wire.Response{TaskID: "task-1", Status: wire.StatusSuccess, Result: json.RawMessage(`{"text":"ANSWER-` + secretText + `"}`)}
	out, err := o.Respond(resp)
	if err != nil {
		t.Fatalf("Respond: %v", err)
	}
	if bytes.Contains(out, []byte(secretText)) || bytes.Contains(out, []byte(`"result"`)) {
		t.Fatalf("sealed response leaks the result: %s", out)
	}
	var outer map[string]json.RawMessage
	_ = json.Unmarshal(out, &outer)
	if string(outer["task_id"]) != `"task-1"` || string(outer["status"]) != `"success"` || outer[FieldConfResp] == nil {
		t.Fatalf("outer response = %s", out)
	}
	plain, werr := fx.opener.Open(out)
	if werr != nil {
		t.Fatalf("opener.Open: %v", werr)
	}
	var got wire.Response
	if err := json.Unmarshal(plain, &got); err != nil || string(got.Result) != string(resp.Result) {
		t.Fatalf("opened response = %s (%v)", plain, err)
	}
}

// TestCX_02_RoundTripWithoutResponseEncryption: a ring that advertises no
// features gets a plaintext response (Tier 1 behaviour, §5a.3 last para).
func TestCX_02_RoundTripWithoutResponseEncryption(t *testing.T) {
	clk := newFakeClock()
	ring := ringWithKey(t, newKey(t), clk, WithFeatures())
	rk, werr := ParseRecipientKey(ring.PublicKey(), clk.Now())
	if werr != nil {
		t.Fatal(werr)
	}
	body, opener, werr := Seal(testCall("task-2"), rk)
	if werr != nil {
		t.Fatal(werr)
	}
	if bytes.Contains(body, []byte(FieldResponseEncryption)) {
		t.Fatal("cx_response_encryption sent to a node without the feature")
	}
	o, werr := newTestProvider(t, ring, clk).Open(body)
	if werr != nil || o.ResponseEncryption {
		t.Fatalf("Open = %+v, %v", o, werr)
	}
	out, err := o.Respond(&wire.Response{TaskID: "task-2", Status: wire.StatusSuccess, Result: json.RawMessage(`{"ok":true}`)})
	if err != nil || !bytes.Contains(out, []byte(`"result":{"ok":true}`)) {
		t.Fatalf("Respond = %s, %v", out, err)
	}
	if plain, werr := opener.Open(out); werr != nil || !bytes.Equal(plain, out) {
		t.Fatalf("opener passes plaintext through: %s, %v", plain, werr)
	}
}

// TestCX_06_FreshEphemeralPerTask: every Seal uses a new ephemeral key and nonce.
func TestCX_06_FreshEphemeralPerTask(t *testing.T) {
	clk := newFakeClock()
	ring := ringWithKey(t, newKey(t), clk)
	rk, _ := ParseRecipientKey(ring.PublicKey(), clk.Now())
	seen := map[string]bool{}
	for i := 0; i < 8; i++ {
		body, _, werr := Seal(testCall("same-task"), rk)
		if werr != nil {
			t.Fatal(werr)
		}
		var top struct {
			Conf Envelope `json:"iicp_conf"`
		}
		_ = json.Unmarshal(body, &top)
		for _, v := range []string{"kem:" + top.Conf.KEMCiphertext, "nonce:" + top.Conf.Nonce} {
			if seen[v] {
				t.Fatalf("reused %s", v)
			}
			seen[v] = true
		}
	}
}

// TestCX_PlaintextPassthrough: a body without iicp_conf is returned as is.
func TestCX_PlaintextPassthrough(t *testing.T) {
	fx := newFixture(t)
	body := testCall("plain")
	o, werr := fx.prov.Open(body)
	if werr != nil || o.Encrypted || !bytes.Equal(o.Call, body) {
		t.Fatalf("Open(plain) = %+v, %v", o, werr)
	}
	out, err := o.Respond(&wire.Response{TaskID: "plain", Status: wire.StatusSuccess, Result: json.RawMessage(`1`)})
	if err != nil || !bytes.Contains(out, []byte(`"result":1`)) {
		t.Fatalf("Respond = %s, %v", out, err)
	}
	if _, err := o.SealResponse(out); err == nil {
		t.Fatal("SealResponse without a session succeeded")
	}
}

// failureCase is one attack or malformation and the codes it must produce
// in the Tier 1 (collapsed) and granular models.
type failureCase struct {
	name      string
	build     func(t *testing.T, fx *fixture) []byte
	collapsed wire.Code
	granular  wire.Code
}

func setConf(k string, v any) func(t *testing.T, fx *fixture) []byte {
	return func(t *testing.T, fx *fixture) []byte {
		return mutate(t, fx.body, func(_ map[string]any, c map[string]any) { c[k] = v })
	}
}

func flipConf(k string, i int) func(t *testing.T, fx *fixture) []byte {
	return func(t *testing.T, fx *fixture) []byte {
		return mutate(t, fx.body, func(_ map[string]any, c map[string]any) { c[k] = flip(t, c[k].(string), i) })
	}
}

func failureCases() []failureCase {
	e50, e60, e61, e62, e63 := wire.CodeE050, wire.CodeE060, wire.CodeE061, wire.CodeE062, wire.CodeE063
	return []failureCase{
		// CX-05: one flipped ciphertext bit fails the GCM tag.
		{"CX_05_TamperedCiphertext", flipConf("encrypted_body", 0), e50, e62},
		{"CX_05_TamperedTag", flipConf("encrypted_body", -1), e50, e62},
		{"TruncatedCiphertext", setConf("encrypted_body", encode(make([]byte, 8))), e50, e62},
		// The aad field, the outer task_id and the outer intent are all bound.
		{"TamperedAADField", flipConf("aad", 0), e50, e62},
		{"OuterTaskIDMoved", func(t *testing.T, fx *fixture) []byte {
			return mutate(t, fx.body, func(top, _ map[string]any) { top["task_id"] = "task-other" })
		}, e50, e62},
		{"OuterIntentChanged", func(t *testing.T, fx *fixture) []byte {
			return mutate(t, fx.body, func(top, _ map[string]any) { top["intent"] = "urn:iicp:intent:llm:completion:v1" })
		}, e50, e62},
		{"TamperedKEM", flipConf("kem_ciphertext", 3), e50, e62},
		{"TamperedNonce", flipConf("nonce", 0), e50, e62},
		// X25519 low-order point: the all-zero shared secret is refused.
		{"LowOrderKEM", setConf("kem_ciphertext", encode(make([]byte, 32))), e50, e62},
		// CX-04: an id this node never issued.
		{"CX_04_UnknownKeyID", setConf("recipient_key_id", "00112233aabbccdd"), e50, e60},
		{"EmptyKeyID", setConf("recipient_key_id", ""), e50, e60},
		{"UnsupportedVersion2", setConf("version", 2), e50, e61},
		{"UnsupportedVersion0", setConf("version", 0), e50, e61},
		{"VersionAsString", setConf("version", "1"), e50, e62},
		{"KEMWrongLength", setConf("kem_ciphertext", encode(make([]byte, 31))), e50, e62},
		{"NonceWrongLength", setConf("nonce", encode(make([]byte, 16))), e50, e62},
		{"BadBase64Body", setConf("encrypted_body", "!!not-base64!!"), e50, e62},
		{"StandardBase64Alphabet", setConf("aad", "a+b/"), e50, e62},
		{"NegativePlaintextSize", setConf("plaintext_size", -1), e50, e62},
		{"ConfNotObject", func(t *testing.T, fx *fixture) []byte {
			return mutate(t, fx.body, func(top, _ map[string]any) { top["iicp_conf"] = "sealed" })
		}, e50, e62},
		{"ConfArray", func(t *testing.T, fx *fixture) []byte {
			return mutate(t, fx.body, func(top, _ map[string]any) { top["iicp_conf"] = []any{1} })
		}, e50, e62},
		{"ExpiredKey", func(t *testing.T, fx *fixture) []byte {
			fx.clk.Advance(DefaultLifetime + time.Second)
			return fx.body
		}, e50, e63},
		{"Replay", func(t *testing.T, fx *fixture) []byte {
			if _, werr := fx.prov.Open(fx.body); werr != nil {
				t.Fatalf("first open: %v", werr)
			}
			return fx.body
		}, e50, e62},
	}
}

// TestCX_OpenFailures: every failure is a structured error with the §6 code
// of the selected model; Tier 1 gives one code and one message for all, so
// the error is no oracle, and nothing in it echoes the payload.
func TestCX_OpenFailures(t *testing.T) {
	for _, model := range []ErrorModel{Tier1Collapsed, Granular} {
		for _, tc := range failureCases() {
			t.Run(modelName(model)+"/"+tc.name, func(t *testing.T) {
				fx := newFixture(t, WithErrorModel(model))
				o, werr := fx.prov.Open(tc.build(t, fx))
				if werr == nil {
					t.Fatalf("Open succeeded: %s", o.Call)
				}
				want := tc.collapsed
				if model == Granular {
					want = tc.granular
				}
				if werr.Code != want {
					t.Fatalf("code %s (%s), want %s", werr.Code, werr.Message, want)
				}
				if model == Tier1Collapsed && (werr.Message != collapsedMessage || werr.Status() != http.StatusUnprocessableEntity) {
					t.Fatalf("collapsed error = %+v, status %d", werr, werr.Status())
				}
				env, _ := json.Marshal(werr.Envelope())
				if bytes.Contains(env, []byte(secretText)) || strings.Contains(werr.Message, "/") {
					t.Fatalf("error leaks detail: %s", env)
				}
			})
		}
	}
}

func modelName(m ErrorModel) string {
	if m == Granular {
		return "granular"
	}
	return "tier1"
}

// TestCX_WrongRecipientKey: an envelope sealed to key A but labelled with
// key B's id is opened with B and fails authentication.
func TestCX_WrongRecipientKey(t *testing.T) {
	clk := newFakeClock()
	a := ringWithKey(t, newKey(t), clk)
	b := ringWithKey(t, newKey(t), clk)
	rk, _ := ParseRecipientKey(a.PublicKey(), clk.Now())
	body, _, _ := Seal(testCall("t"), rk)
	body = mutate(t, body, func(_ map[string]any, c map[string]any) { c["recipient_key_id"] = b.PublicKey().KeyID })
	for _, m := range []ErrorModel{Tier1Collapsed, Granular} {
		_, werr := newTestProvider(t, b, clk, WithErrorModel(m)).Open(body)
		if werr == nil || (m == Granular && werr.Code != wire.CodeE062) || (m == Tier1Collapsed && werr.Code != wire.CodeE050) {
			t.Fatalf("%s: Open with the wrong key = %v", modelName(m), werr)
		}
	}
}

// TestCX_NotCapableNode: a provider without a ring refuses envelopes with
// E050 (Tier 1) / E064 (granular) and still passes plaintext through.
func TestCX_NotCapableNode(t *testing.T) {
	fx := newFixture(t)
	clk := newFakeClock()
	for m, want := range map[ErrorModel]wire.Code{Tier1Collapsed: wire.CodeE050, Granular: wire.CodeE064} {
		p := newTestProvider(t, nil, clk, WithErrorModel(m))
		if _, werr := p.Open(fx.body); werr == nil || werr.Code != want {
			t.Fatalf("%s: %v, want %s", modelName(m), werr, want)
		}
		if o, werr := p.Open(testCall("x")); werr != nil || o.Encrypted {
			t.Fatalf("plaintext through a non-CX node: %v", werr)
		}
	}
}

// TestCX_RequestShapeErrors: problems of the outer body are validation
// errors (naming the field) or payload_too_large, never a panic.
func TestCX_RequestShapeErrors(t *testing.T) {
	fx := newFixture(t)
	withPayload := mutate(t, fx.body, func(top, _ map[string]any) { top["payload"] = map[string]any{"x": 1} })
	noTask := mutate(t, fx.body, func(top, _ map[string]any) { delete(top, "task_id") })
	numIntent := mutate(t, fx.body, func(top, _ map[string]any) { top["intent"] = 7 })
	badMode := mutate(t, fx.body, func(top, _ map[string]any) { top[FieldResponseEncryption] = "optional" })
	cases := []struct {
		name  string
		body  []byte
		code  wire.Code
		field string
	}{
		{"PayloadBesideConf", withPayload, wire.CodeValidationError, "payload"}, // §4.1 MUST be absent
		{"MissingTaskID", noTask, wire.CodeValidationError, "task_id"},
		{"NonStringIntent", numIntent, wire.CodeValidationError, "intent"},
		{"UnknownResponseMode", badMode, wire.CodeValidationError, FieldResponseEncryption},
		{"ResponseModeWithoutConf", []byte(`{"task_id":"t","intent":"i","payload":{},"cx_response_encryption":"required"}`), wire.CodeValidationError, FieldResponseEncryption},
		{"FoldedPayload", mutate(t, fx.body, func(top, _ map[string]any) { top["Payload"] = "x" }), wire.CodeValidationError, "payload"},
		{"FoldedTaskID", mutate(t, fx.body, func(top, _ map[string]any) { top["TASK_ID"] = "x" }), wire.CodeValidationError, "task_id"},
		{"FoldedLongS", mutate(t, fx.body, func(top, _ map[string]any) { top["ta\u017fk_id"] = "x" }), wire.CodeValidationError, "task_id"},
		{"NotJSON", []byte(`not json iicp_conf`), wire.CodeValidationError, ""},
		{"TruncatedJSON", fx.body[:len(fx.body)/2], wire.CodeValidationError, ""},
		{"JSONArray", []byte(`["iicp_conf"]`), wire.CodeValidationError, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, werr := fx.prov.Open(tc.body)
			if werr == nil || werr.Code != tc.code || werr.Field != tc.field {
				t.Fatalf("Open = %+v, want %s field %q", werr, tc.code, tc.field)
			}
		})
	}
}

// TestCX_OversizedEnvelope: a body over the cap is refused before parsing.
func TestCX_OversizedEnvelope(t *testing.T) {
	fx := newFixture(t, WithMaxBody(len(testCall("task-1"))+64))
	_, werr := fx.prov.Open(fx.body)
	if werr == nil || werr.Code != wire.CodePayloadTooLarge || werr.Status() != http.StatusRequestEntityTooLarge {
		t.Fatalf("Open(oversized) = %v", werr)
	}
}

// TestCX_ReplayReleasedWhenNotExecuted: after a capacity refusal the same
// envelope may be retried (the SDKs resend the identical body); after a
// success it may not; after the replay TTL it is forgotten.
func TestCX_ReplayReleasedWhenNotExecuted(t *testing.T) {
	fx := newFixture(t, WithReplayCache(time.Minute, 16))
	o, werr := fx.prov.Open(fx.body)
	if werr != nil {
		t.Fatal(werr)
	}
	busy := &wire.Response{TaskID: "task-1", Status: wire.StatusError, Error: wire.NewError(wire.CodeCapacityExceeded, "busy")}
	out, err := o.Respond(busy)
	if err != nil || bytes.Contains(out, []byte(FieldConfResp)) || !bytes.Contains(out, []byte("capacity_exceeded")) {
		t.Fatalf("error response must stay plain: %s, %v", out, err)
	}
	o, werr = fx.prov.Open(fx.body)
	if werr != nil {
		t.Fatalf("retry after capacity refusal: %v", werr)
	}
	if _, err := o.Respond(&wire.Response{TaskID: "task-1", Status: wire.StatusError, Error: wire.NewError(wire.CodeBackendError, "x")}); err != nil {
		t.Fatal(err)
	}
	if _, werr := fx.prov.Open(fx.body); werr == nil {
		t.Fatal("replay after an executed task was accepted")
	}
	fx.clk.Advance(time.Minute + time.Second)
	if _, werr := fx.prov.Open(fx.body); werr != nil {
		t.Fatalf("after the replay TTL: %v", werr)
	}
}

// TestCX_ForgedCopyDoesNotBurnEnvelope: a tampered copy sent first (same kem
// and nonce) fails and does not block the honest envelope behind it.
func TestCX_ForgedCopyDoesNotBurnEnvelope(t *testing.T) {
	fx := newFixture(t)
	forged := mutate(t, fx.body, func(_ map[string]any, c map[string]any) {
		c["encrypted_body"] = flip(t, c["encrypted_body"].(string), 2)
	})
	if _, werr := fx.prov.Open(forged); werr == nil {
		t.Fatal("forged copy opened")
	}
	if _, werr := fx.prov.Open(fx.body); werr != nil {
		t.Fatalf("honest envelope refused after a forged copy: %v", werr)
	}
}

// TestCX_PaddedBase64Accepted: padded base64url (the Python and TypeScript
// SDK decoders accept it) opens too.
func TestCX_PaddedBase64Accepted(t *testing.T) {
	fx := newFixture(t)
	padded := mutate(t, fx.body, func(_ map[string]any, c map[string]any) {
		for _, k := range []string{"kem_ciphertext", "nonce", "encrypted_body", "aad"} {
			s := c[k].(string)
			c[k] = s + strings.Repeat("=", (4-len(s)%4)%4)
		}
	})
	if _, werr := fx.prov.Open(padded); werr != nil {
		t.Fatalf("padded envelope: %v", werr)
	}
}

// TestCX_EscapedMemberNameDetected: JSON allows "iicp\u005fconf" as a
// member name; the fast path must not pass such a body through as plaintext.
func TestCX_EscapedMemberNameDetected(t *testing.T) {
	fx := newFixture(t)
	escaped := bytes.Replace(fx.body, []byte(`"iicp_conf"`), []byte(`"iicp\u005fconf"`), 1)
	if bytes.Equal(escaped, fx.body) {
		t.Fatal("fixture has no iicp_conf member")
	}
	o, werr := fx.prov.Open(escaped)
	if werr != nil || !o.Encrypted {
		t.Fatalf("escaped member: %+v, %v", o, werr)
	}
	// Non-CX bodies, however malformed, are left to the transport's decoder.
	for _, body := range []string{"", "not json", "[1]"} {
		if o, werr := fx.prov.Open([]byte(body)); werr != nil || o.Encrypted || string(o.Call) != body {
			t.Fatalf("Open(%q) = %+v, %v", body, o, werr)
		}
	}
}

// TestCX_ConcurrentOpenDuringRotation: parallel opens of distinct envelopes
// race a rotation (run with -race); all open, and Stats counts them.
func TestCX_ConcurrentOpenDuringRotation(t *testing.T) {
	clk := newFakeClock()
	ring := ringWithKey(t, newKey(t), clk)
	p := newTestProvider(t, ring, clk)
	const n = 32
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = sealTo(t, ring, clk, "task-"+string(rune('a'+i%26))+strings.Repeat("x", i))
	}
	errs := make(chan *wire.Error, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 3; i++ {
			if err := ring.Rotate(); err != nil {
				t.Error(err)
			}
		}
	}()
	var wg sync.WaitGroup
	for _, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, werr := p.Open(b)
			errs <- werr
		}()
	}
	wg.Wait()
	<-done
	close(errs)
	for werr := range errs {
		if werr != nil {
			t.Fatalf("Open during rotation: %v", werr)
		}
	}
	if _, werr := p.Open(bodies[0]); werr == nil {
		t.Fatal("replay accepted")
	}
	st := p.Stats()
	if st.Opened != n || st.Failures["replay"] != 1 || st.Failures["decrypt_failed"] != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}
