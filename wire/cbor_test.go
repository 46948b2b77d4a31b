package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// rawMap builds a CBOR map with the pairs in the given order (deployed SDKs
// emit unsorted maps); keys and values are encoded individually.
func rawMap(t testing.TB, kv ...any) []byte {
	t.Helper()
	if len(kv)%2 != 0 || len(kv)/2 > 23 {
		t.Fatal("rawMap: bad pair list")
	}
	out := []byte{0xa0 | byte(len(kv)/2)}
	for _, x := range kv {
		if raw, ok := x.(cbor.RawMessage); ok {
			out = append(out, raw...)
			continue
		}
		b, err := encMode.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCBORDeterminism_Rejects covers iicp-framing.md §4.1 / RFC 8949 §4.2.1.
func TestCBORDeterminism_Rejects(t *testing.T) {
	cases := []struct {
		name string
		hex  string
		ok   bool
	}{
		{"small uint", "05", true},
		{"uint 24 one byte", "1818", true},
		{"non-shortest uint", "1805", false},
		{"non-shortest uint16", "190005", false},
		{"non-shortest length", "780161", false},
		{"sorted int keys", "a2 01 01 02 02", true},
		{"unsorted int keys", "a2 02 02 01 01", false},
		{"duplicate keys", "a2 01 01 01 02", false},
		{"key 24 after 23", "a2 17 00 1818 00", true},
		{"sorted text keys", "a2 6161 00 6162 00", true},
		{"shorter text key first", "a2 626161 00 6162 00", false},
		{"indefinite array", "9f 01 ff", false},
		{"indefinite map", "bf ff", false},
		{"indefinite bytes", "5f 41 00 ff", false},
		{"canonical NaN", "f97e00", true},
		{"other f16 NaN", "f97e01", false},
		{"f16 1.5", "f93e00", true},
		{"f32 1.5 fits f16", "fa3fc00000", false},
		{"f32 65504 fits f16", "fa477fe000", false},
		{"f32 2^-24 fits f16 subnormal", "fa33800000", false},
		{"f32 1.5*2^-24 needs f32", "fa33c00000", true},
		{"f32 0.1", "fa3dcccccd", true},
		{"f64 1.0", "fb3ff0000000000000", false},
		{"f64 0.1", "fb3fb999999999999a", true},
		{"f64 NaN", "fb7ff8000000000000", false},
		{"f32 infinity", "fa7f800000", false},
		{"simple value 24 below 32", "f810", false},
		{"reserved additional info", "1c", false},
		{"tag non-shortest", "d8 01 00", false},
		{"tag 65535 root", "d9ffff a0", true},
		{"trailing bytes", "01 01", false},
		{"truncated bytes", "43 0101", false},
		{"truncated map", "a2 01", false},
		{"array count beyond input", "9a 7fffffff", false},
	}
	for _, c := range cases {
		err := checkDeterministic(mustHex(t, c.hex))
		if (err == nil) != c.ok {
			t.Errorf("%s (%s): accepted=%v, want %v (%v)", c.name, c.hex, err == nil, c.ok, err)
		}
	}
	deep := append(bytes.Repeat([]byte{0x81}, MaxNesting+1), 0x00)
	if checkDeterministic(deep) == nil {
		t.Fatal("nesting beyond MaxNesting accepted")
	}
}

func sampleCall(t testing.TB) *Call {
	t.Helper()
	c, err := DecodeCallJSON([]byte(`{"task_id":"550e8400-e29b-41d4-a716-446655440000",
	 "intent":"urn:iicp:intent:llm:chat:v1",
	 "payload":{"messages":[{"role":"user","content":"Hello <world> & \u00e9"}],"temperature":0.7,"max_tokens":64,"big":18446744073709551615},
	 "constraints":{"timeout_ms":1500,"qos":"interactive","priority":"high","consensus":"majority_of_3","region":"eu-central","max_tokens":64},
	 "auth":{"node_token":"0123456789abcdef0123456789abcdef"},
	 "trace":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","origin_node":"123e4567-e89b-12d3-a456-426614174000"},
	 "model":"llama3","idempotency_key":"k-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func TestCallCBORStringKeyedRoundTrip(t *testing.T) {
	c := sampleCall(t)
	b, err := EncodeCallCBOR(c)
	if err != nil {
		t.Fatal(err)
	}
	if derr := checkDeterministic(b); derr != nil {
		t.Fatalf("encoder output not deterministic: %v", derr)
	}
	got, derr := DecodeCallCBOR(b)
	if derr != nil {
		t.Fatal(derr)
	}
	if !sameJSON(t, got.Payload, c.Payload) || !reflect.DeepEqual(got.Constraints, c.Constraints) || *got.Auth != *c.Auth ||
		*got.Trace != *c.Trace || got.Model != c.Model || got.IdempotencyKey != c.IdempotencyKey {
		t.Fatalf("round trip changed the call:\n%+v\n%+v", got, c)
	}
	// Payload text survives byte-for-byte apart from key order (no HTML escaping).
	if !bytes.Contains(got.Payload, []byte("Hello <world> & é")) {
		t.Fatalf("payload text altered: %s", got.Payload)
	}
}

// TestCBORWire_413_CanonicalExample decodes iicp-cbor-wire.md §4.1.3, with
// and without the informational root tag 65535.
func TestCBORWire_413_CanonicalExample(t *testing.T) {
	body := map[string]any{
		"task_id":     "550e8400-e29b-41d4-a716-446655440000",
		"intent":      "urn:iicp:intent:llm:chat:v1",
		"payload":     map[string]any{},
		"constraints": map[string]any{"timeout_ms": 5000},
		"auth":        map[string]any{"node_token": "tok"},
	}
	untagged, err := encMode.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	tagged, _ := encMode.Marshal(cbor.Tag{Number: 65535, Content: body})
	for _, b := range [][]byte{untagged, tagged} {
		c, derr := DecodeCallCBOR(b)
		if derr != nil || c.Constraints.TimeoutMs != 5000 || string(c.Payload) != "{}" {
			t.Fatalf("canonical example: %v %+v", derr, c)
		}
	}
	// The same map with keys out of order is rejected (§1.1).
	unsorted := rawMap(t, "task_id", body["task_id"], "auth", body["auth"], "intent", body["intent"],
		"payload", body["payload"], "constraints", body["constraints"])
	if _, derr := DecodeCallCBOR(unsorted); derr == nil {
		t.Fatal("unsorted string-keyed CBOR accepted")
	}
	// Payload values outside the JSON model are rejected; bytes become base64.
	for name, payload := range map[string]any{
		"tag":          map[string]any{"t": cbor.Tag{Number: 1, Content: 5}},
		"int keys":     map[int]any{1: 2},
		"simple value": map[string]any{"u": cbor.SimpleValue(99)},
	} {
		m := map[string]any{}
		for k, v := range body {
			m[k] = v
		}
		m["payload"] = payload
		b, _ := encMode.Marshal(m)
		if _, derr := DecodeCallCBOR(b); derr == nil || derr.Field != "payload" {
			t.Errorf("%s payload: %v", name, derr)
		}
	}
	body["payload"] = map[string]any{"b": []byte{1, 2, 3}}
	b, _ := encMode.Marshal(body)
	if c, derr := DecodeCallCBOR(b); derr != nil || string(c.Payload) != `{"b":"AQID"}` {
		t.Fatalf("byte string payload: %v %s", derr, c.Payload)
	}
}

func TestResponseCBORStringKeyed(t *testing.T) {
	r := &Response{TaskID: "550e8400-e29b-41d4-a716-446655440000", Status: StatusSuccess,
		Result: json.RawMessage(`{"content":"hi","n":[1,2.5,-3]}`), Metrics: Metrics{LatencyMs: 320, TokensUsed: 120}, ModelUsed: "m"}
	b, err := EncodeResponseCBOR(r)
	if err != nil {
		t.Fatal(err)
	}
	got, derr := DecodeResponseCBOR(b)
	if derr != nil || got.Metrics != r.Metrics || !sameJSON(t, got.Result, r.Result) || got.ModelUsed != "m" {
		t.Fatalf("%v %+v", derr, got)
	}
	// §4.2 flat form (tokens_used/duration_ms, no metrics map) is read too.
	flat, _ := encMode.Marshal(map[string]any{"task_id": r.TaskID, "status": "error",
		"error": map[string]any{"code": "backend_error", "message": "x"}, "tokens_used": 3, "duration_ms": 9})
	got, derr = DecodeResponseCBOR(flat)
	if derr != nil || got.Metrics.TokensUsed != 3 || got.Metrics.LatencyMs != 9 || got.Error.Code != CodeBackendError || got.Result != nil {
		t.Fatalf("flat response: %v %+v", derr, got)
	}
	bad, _ := encMode.Marshal(map[string]any{"task_id": r.TaskID, "status": "error"})
	if _, derr := DecodeResponseCBOR(bad); derr == nil {
		t.Fatal("error status without error accepted")
	}
}

func TestCallNativeRoundTrip(t *testing.T) {
	c := sampleCall(t)
	b, err := EncodeCallNative(c)
	if err != nil {
		t.Fatal(err)
	}
	got, derr := DecodeCallNative(b)
	if derr != nil {
		t.Fatal(derr)
	}
	// 1500 ms travels as 2 s (ceil) and returns as 2000 ms.
	want := c.Constraints
	want.TimeoutMs = 2000
	if got.TaskID != c.TaskID || got.Intent != c.Intent || !bytes.Equal(got.Payload, c.Payload) ||
		!reflect.DeepEqual(got.Constraints, want) || got.Auth.NodeToken != c.Auth.NodeToken || *got.Trace != *c.Trace ||
		got.Model != c.Model || got.IdempotencyKey != c.IdempotencyKey || got.SessionID != c.TaskID || got.CallID != c.TaskID {
		t.Fatalf("native round trip:\n got %+v\nwant %+v", got, c)
	}
	// Key 5 is a bstr carrying the JSON payload bytes unchanged.
	var m map[int]cbor.RawMessage
	if err := decMode.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var p []byte
	if err := decMode.Unmarshal(m[5], &p); err != nil || !bytes.Equal(p, c.Payload) {
		t.Fatalf("key 5: %v", err)
	}
	var tid []byte
	if decMode.Unmarshal(m[13], &tid) != nil || len(tid) != 16 {
		t.Fatalf("key 13 must be 16 bytes: %x", tid)
	}
	var prio uint64
	if decMode.Unmarshal(m[7], &prio) != nil || prio != 2 {
		t.Fatalf("priority high must be 2, got %d", prio)
	}
}

// nativeCallMap is a valid strict CALL as ordered pairs, for mutation.
func nativeCallPairs() []any {
	return []any{
		1, 1,
		2, "550e8400-e29b-41d4-a716-446655440000",
		3, "urn:iicp:intent:llm:chat:v1",
		5, []byte(`{"messages":[]}`),
		6, 30,
		11, "0123456789abcdef0123456789abcdef",
	}
}

// withPair sets (or with v == nil removes) integer key k, keeping the pairs
// sorted by key so the result stays deterministic.
func withPair(pairs []any, k int, v any) []any {
	out := append([]any{}, pairs...)
	for i := 0; i < len(out); i += 2 {
		switch key := out[i].(int); {
		case key == k && v == nil:
			return append(out[:i], out[i+2:]...)
		case key == k:
			out[i+1] = v
			return out
		case key > k && v != nil:
			return append(out[:i], append([]any{k, v}, out[i:]...)...)
		}
	}
	if v == nil {
		return out
	}
	return append(out, k, v)
}

func TestDecodeCallNative_Strict(t *testing.T) {
	base := nativeCallPairs()
	if c, err := DecodeCallNative(rawMap(t, base...)); err != nil || c.Constraints.TimeoutMs != 30000 || c.TaskID != base[3] {
		t.Fatalf("minimal strict CALL: %v %+v", err, c)
	}
	cases := []struct {
		name  string
		pairs []any
		field string
		close CloseReason
	}{
		{"missing protocol_version", withPair(base, 1, nil), "protocol_version", CloseInvalidPayload},
		{"protocol_version 2", withPair(base, 1, 2), "protocol_version", CloseInvalidPayload},
		{"session not uuid", withPair(base, 2, "call-1"), "session_id", CloseInvalidPayload},
		{"missing timeout", withPair(base, 6, nil), "timeout", CloseInvalidPayload},
		{"timeout 0", withPair(base, 6, 0), "timeout", CloseInvalidPayload},
		{"timeout 3601", withPair(base, 6, 3601), "timeout", CloseInvalidPayload},
		{"timeout 301 s beyond the 300000 ms cap", withPair(base, 6, 301), "constraints.timeout_ms", CloseInvalidPayload},
		{"payload as map", withPair(base, 5, map[string]any{"a": 1}), "payload", CloseInvalidPayload},
		{"payload json array", withPair(base, 5, []byte(`[1]`)), "payload", CloseInvalidPayload},
		{"payload not json", withPair(base, 5, []byte(`{"a":`)), "payload", CloseInvalidPayload},
		{"intent wrong type", withPair(base, 3, 7), "intent", CloseInvalidPayload},
		{"trace_id 15 bytes", withPair(base, 13, make([]byte, 15)), "trace_id", CloseProtocolError},
		{"parent_span 9 bytes", withPair(base, 14, make([]byte, 9)), "parent_span", CloseProtocolError},
		{"priority 4", withPair(base, 7, 4), "priority", CloseInvalidPayload},
		{"bad intent", withPair(base, 3, "urn:iicp:intent:chat"), "intent", CloseInvalidPayload},
	}
	for _, c := range cases {
		_, err := DecodeCallNative(rawMap(t, c.pairs...))
		if err == nil || err.Field != c.field || err.CloseReason() != c.close {
			t.Errorf("%s: got %+v (close %q), want field %q close %q", c.name, err, closeOf(err), c.field, c.close)
		}
	}
	// Unknown integer keys are ignored (§4.16 rule 2); 24 carries task_id.
	withExtra := withPair(withPair(base, 99, "future"), 24, "6ba7b810-9dad-41d1-80b4-00c04fd430c8")
	if c, err := DecodeCallNative(rawMap(t, withExtra...)); err != nil || c.TaskID != "6ba7b810-9dad-41d1-80b4-00c04fd430c8" {
		t.Fatalf("unknown key / task_id: %v", err)
	}
	// Unsorted maps are the compat exception, never strict.
	unsorted := rawMap(t, 2, base[3], 1, 1, 3, base[5], 5, base[7], 6, 30)
	if _, err := DecodeCallNative(unsorted); err == nil || err.CloseReason() != CloseInvalidPayload {
		t.Fatalf("unsorted strict CALL: %v", err)
	}
	if _, err := DecodeCallNative([]byte{0xff}); err == nil || err.CloseReason() != CloseCBORDecodeError {
		t.Fatalf("garbage: %v", err)
	}
}

func closeOf(e *Error) CloseReason {
	if e == nil {
		return ""
	}
	return e.CloseReason()
}

// TestDecodeCallNativeCompat_DeployedDialect feeds the CALL shapes deployed
// SDK clients send: {2: session_id, 3: intent, 5: JSON bytes, 15: call_id},
// in cbor2-canonical and in unsorted (ciborium insertion) order.
func TestDecodeCallNativeCompat_DeployedDialect(t *testing.T) {
	callID := "6ba7b810-9dad-41d1-80b4-00c04fd430c8"
	payload := []byte(`{"messages":[{"role":"user","content":"hi"}]}`)
	cases := map[string][]byte{
		"python sorted":           rawMap(t, 2, "call-1", 3, IntentChat, 5, payload, 15, callID),
		"rust unsorted":           rawMap(t, 2, "call-1", 3, IntentChat, 15, callID, 5, payload),
		"payload as CBOR map":     rawMap(t, 15, callID, 2, "call-1", 3, IntentChat, 5, map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}}}),
		"payload as JSON text":    rawMap(t, 2, "call-1", 3, IntentChat, 5, string(payload), 15, callID),
		"payload as CBOR in bstr": rawMap(t, 2, "call-1", 3, IntentChat, 5, mustCBOR(t, map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}}}), 15, callID),
	}
	for name, b := range cases {
		c, err := DecodeCallNativeCompat(b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c.TaskID != callID || c.CallID != callID || c.SessionID != "call-1" || c.Constraints.TimeoutMs != CompatDefaultTimeoutMs || !sameJSON(t, c.Payload, payload) {
			t.Errorf("%s: %+v %s", name, c, c.Payload)
		}
		if _, err := DecodeCallNative(b); err == nil {
			t.Errorf("%s: strict decoder accepted the deployed dialect", name)
		}
	}
	// Compat still enforces duplicates, types and validation.
	dup := rawMap(t, 3, IntentChat, 3, IntentChat, 5, payload, 15, callID)
	if _, err := DecodeCallNativeCompat(dup); err == nil {
		t.Fatal("duplicate keys accepted in compat")
	}
	noUUID := rawMap(t, 2, "call-1", 3, IntentChat, 5, payload)
	if _, err := DecodeCallNativeCompat(noUUID); err == nil || err.Field != "task_id" {
		t.Fatalf("non-UUID task identity: %v", err)
	}
}

func mustCBOR(t testing.TB, v any) []byte {
	t.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResponseNative(t *testing.T) {
	r := &Response{TaskID: "550e8400-e29b-41d4-a716-446655440000", Status: StatusSuccess,
		Result: json.RawMessage(`{"choices":[{"message":{"content":"hi"}}]}`), Metrics: Metrics{LatencyMs: 12, TokensUsed: 7}, NodeID: "n1"}
	b, err := EncodeResponseNative(r)
	if err != nil {
		t.Fatal(err)
	}
	got, derr := DecodeResponseNative(b)
	if derr != nil || got.Status != StatusSuccess || got.Metrics != r.Metrics || !sameJSON(t, got.Result, r.Result) ||
		got.SessionID != r.TaskID || got.NodeID != "n1" {
		t.Fatalf("%v %+v", derr, got)
	}
	e := &Response{TaskID: r.TaskID, Status: StatusError, Error: NewError(CodeCapacityExceeded, "busy")}
	b, _ = EncodeResponseNative(e)
	got, derr = DecodeResponseNative(b)
	if derr != nil || got.Error.Code != CodeCapacityExceeded || got.Code != CodeCapacityExceeded || got.Result != nil {
		t.Fatalf("error response: %v %+v", derr, got)
	}
	sid := "550e8400-e29b-41d4-a716-446655440000"
	for name, pairs := range map[string][]any{
		"partial without profile": {1, 1, 2, sid, 3, sid, 4, "partial", 12, false},
		"is_final false":          {1, 1, 2, sid, 3, sid, 4, "success", 12, false},
		"no status (strict)":      {1, 1, 2, sid, 3, sid},
		"error without map":       {1, 1, 2, sid, 3, sid, 4, "error"},
		"trace 4 bytes":           {1, 1, 2, sid, 3, sid, 4, "success", 9, []byte{1, 2, 3, 4}},
	} {
		if _, err := DecodeResponseNative(rawMap(t, pairs...)); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// TestDecodeResponseNativeCompat_DeployedDialect: deployed nodes answer
// {2: session, 15: call_id, 5: bstr(CBOR result)} or {…, 100: 429, 101: msg}.
func TestDecodeResponseNativeCompat_DeployedDialect(t *testing.T) {
	result := mustCBOR(t, map[string]any{"content": "hello"})
	ok := rawMap(t, 2, "call-1", 15, "c-1", 5, result)
	got, err := DecodeResponseNativeCompat(ok)
	if err != nil || got.Status != StatusSuccess || got.CallID != "c-1" || string(got.Result) != `{"content":"hello"}` {
		t.Fatalf("success: %v %+v", err, got)
	}
	busy := rawMap(t, 2, "call-1", 15, "c-1", 100, 429, 101, "IICP-E021: max_concurrent=2 reached")
	got, err = DecodeResponseNativeCompat(busy)
	if err != nil || got.Status != StatusError || got.Error.Code != CodeE021 {
		t.Fatalf("E021: %v %+v", err, got)
	}
	fail := rawMap(t, 2, "call-1", 100, 503, 101, "no handler configured")
	if got, err = DecodeResponseNativeCompat(fail); err != nil || got.Error.Code != CodeUnavailable {
		t.Fatalf("503: %v %+v", err, got)
	}
	timeout := rawMap(t, 2, "call-1", 100, 504, 101, "slow")
	if got, err = DecodeResponseNativeCompat(timeout); err != nil || got.Status != StatusTimeout {
		t.Fatalf("504: %v %+v", err, got)
	}
	jsonResult := rawMap(t, 2, "call-1", 5, []byte(`{"a":1}`))
	if got, err = DecodeResponseNativeCompat(jsonResult); err != nil || string(got.Result) != `{"a":1}` {
		t.Fatalf("json bstr result: %v %+v", err, got)
	}
	if _, err := DecodeResponseNative(busy); err == nil {
		t.Fatal("strict decoder accepted the deployed dialect")
	}
}

func TestSessionMessages(t *testing.T) {
	msgs := []any{
		&Init{ProtocolVersion: 1, MinVersion: 1, NodeID: "n", Capabilities: []string{}, Compression: []string{"gzip"}, MaxFrameSize: 1 << 20},
		&Ack{ProtocolVersion: 1, NodeID: "n", Compression: "gzip", ServerTime: 1700000000},
		&Ping{Echo: []byte("abc")},
		&CloseMsg{Reason: CloseGraceful, SessionID: "s"},
		&NativeError{Code: "backend_error", Message: "m"},
	}
	for _, m := range msgs {
		b, err := EncodeNative(m)
		if err != nil {
			t.Fatal(err)
		}
		if derr := checkDeterministic(b); derr != nil {
			t.Fatalf("%T: %v", m, derr)
		}
	}
	var p Ping
	if err := DecodeNative(nil, &p, true); err != nil || p.Echo != nil {
		t.Fatalf("empty ping: %v", err)
	}
	if err := DecodeNative(mustCBOR(t, &Ping{Echo: make([]byte, 65)}), &p, true); err == nil {
		t.Fatal("65-byte echo accepted")
	}
	var in Init
	if err := DecodeNative(rawMap(t, 1, 1, 2, 2), &in, true); err == nil {
		t.Fatal("min_version > protocol_version accepted")
	}
	if err := DecodeNative(rawMap(t, 2, 1, 1, 1), &in, true); err == nil {
		t.Fatal("unsorted INIT accepted in strict mode")
	}
	if err := DecodeNative(rawMap(t, 2, 1, 1, 1), &in, false); err != nil || in.ProtocolVersion != 1 {
		t.Fatalf("compat INIT (python sends {1: version}): %v", err)
	}
	var ack Ack
	if err := DecodeNative(rawMap(t, 1, 1, 2, "node"), &ack, true); err != nil || ack.NodeID != "node" {
		t.Fatalf("ack: %v", err)
	}
	var cl CloseMsg
	if err := DecodeNative(mustCBOR(t, &CloseMsg{Reason: CloseFrameTooLarge}), &cl, true); err != nil || cl.Reason != CloseFrameTooLarge {
		t.Fatalf("close: %v", err)
	}
}
