package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// fuzzCall is the fuzzer's view of a CALL: every field the native
// encoder maps, plus one extra metadata entry (the map's key order).
type fuzzCall struct {
	taskID, callID, sessionID, intent string
	payload                           []byte
	timeoutMs, maxTokens              int64
	priority, auth, model, consensus  string
	origin, trace, qos, region, idem  string
	profiles, mdKey, mdVal            string
}

func (cf fuzzCall) call() *Call {
	c := &Call{TaskID: cf.taskID, CallID: cf.callID, SessionID: cf.sessionID, Intent: cf.intent,
		Payload: json.RawMessage(cf.payload), Model: cf.model, IdempotencyKey: cf.idem,
		Constraints: Constraints{TimeoutMs: cf.timeoutMs, MaxTokens: cf.maxTokens, Priority: cf.priority,
			QoS: cf.qos, Region: cf.region, Consensus: cf.consensus}}
	if cf.profiles != "" {
		c.Constraints.RequiredProfiles = strings.Split(cf.profiles, ",")
	}
	if cf.auth != "" {
		c.Auth = &Auth{NodeToken: cf.auth}
	}
	if cf.origin != "" || cf.trace != "" {
		c.Trace = &Trace{OriginNode: cf.origin, TraceID: cf.trace}
	}
	return c
}

// FuzzNativeEncodeMatchesReference: the direct CALL and RESPONSE writers
// emit the reflective reference encoder's bytes for every CALL and
// RESPONSE the fuzzer builds, or leave it to the reference.
func FuzzNativeEncodeMatchesReference(f *testing.F) {
	call, resp := meshCall(), meshResponse()
	f.Add(call.TaskID, call.CallID, "", call.Intent, []byte(call.Payload), int64(30000), int64(0), "", "", "", "", "", "", "", "", "", "", "", "",
		resp.Status, "", "", []byte(resp.Result), resp.NodeID, int64(8))
	f.Add("550e8400-e29b-41d4-a716-446655440000", "", "7d444840-9dc0-41d4-a716-446655440000", "urn:iicp:intent:llm:chat:v1",
		[]byte(`{"a":1}`), int64(1), int64(256), "high", strings.Repeat("t", 64), "llama3", "majority", "iicp:node:x",
		"4bf92f3577b34da6a3ce929d0e0e4736", "interactive", "eu-west", "idem-1", ProfileServiceLifecycle+",urn:iicp:profile:x", "zz", "v",
		StatusError, string(CodeBackendError), "backend down", []byte(`null`), "", int64(-1))
	f.Add("a", "b", "c", "d\xff", []byte(` {}`), int64(-5), int64(-1), "low", "\xc3", "m", "", "", "", "", "", "", ",", "\xff", "",
		StatusTimeout, "", "", []byte(`[1,2.5,"x",{"b":1,"a":2}]`), "n\xff", int64(1<<40))
	f.Add("", "", "", "", []byte(`{"model":"`+strings.Repeat("x", 300)+`"}`), int64(3600000), int64(1<<62), "critical", "", strings.Repeat("m", 30), strings.Repeat("c", 24), strings.Repeat("o", 23), "", "", "", "", "", strings.Repeat("k", 256), "",
		"", "code", strings.Repeat("e", 40), []byte(`{}`), "", int64(0))
	f.Fuzz(func(t *testing.T, taskID, callID, sessionID, intent string, payload []byte, timeoutMs, maxTokens int64,
		priority, auth, model, consensus, origin, trace, qos, region, idem, profiles, mdKey, mdVal,
		status, errCode, errMsg string, result []byte, nodeID string, tokens int64) {
		cf := fuzzCall{taskID: taskID, callID: callID, sessionID: sessionID, intent: intent, payload: payload,
			timeoutMs: timeoutMs, maxTokens: maxTokens, priority: priority, auth: auth, model: model,
			consensus: consensus, origin: origin, trace: trace, qos: qos, region: region, idem: idem,
			profiles: profiles, mdKey: mdKey, mdVal: mdVal}
		checkCallEncode(t, cf)
		r := &Response{TaskID: taskID, CallID: callID, SessionID: sessionID, Status: status, NodeID: nodeID,
			Result: json.RawMessage(result), Metrics: Metrics{TokensUsed: tokens, LatencyMs: timeoutMs}}
		if errCode != "" || errMsg != "" {
			r.Error = &Error{Code: Code(errCode), Message: errMsg}
		}
		checkResponseEncode(t, r)
	})
}

func checkCallEncode(t *testing.T, cf fuzzCall) {
	t.Helper()
	c := cf.call()
	n, err := nativeCallOf(c)
	if err != nil {
		if _, eerr := EncodeCallNative(c); eerr == nil {
			t.Fatal("EncodeCallNative accepted a CALL nativeCallOf refused")
		}
		return
	}
	if cf.mdKey != "" {
		if n.Metadata == nil {
			n.Metadata = map[string]string{}
		}
		n.Metadata[cf.mdKey] = cf.mdVal
	}
	want, werr := encodeNativeRef(&n)
	got, ok := appendNativeCall(nil, &n)
	if ok && (werr != nil || !bytes.Equal(got, want)) {
		t.Fatalf("CALL: direct %x, reference %x (%v)", got, want, werr)
	}
	if cf.mdKey == "" {
		enc, eerr := EncodeCallNative(c)
		if (eerr == nil) != (werr == nil) || !bytes.Equal(enc, want) {
			t.Fatalf("EncodeCallNative %x (%v), reference %x (%v)", enc, eerr, want, werr)
		}
	}
}

func checkResponseEncode(t *testing.T, r *Response) {
	t.Helper()
	n, err := nativeResponseOf(r)
	if err != nil {
		return
	}
	want, werr := encodeNativeRef(&n)
	got, ok := appendNativeResponse(nil, &n)
	if ok && (werr != nil || !bytes.Equal(got, want)) {
		t.Fatalf("RESPONSE: direct %x, reference %x (%v)", got, want, werr)
	}
	enc, eerr := EncodeResponseNative(r)
	if (eerr == nil) != (werr == nil) || !bytes.Equal(enc, want) {
		t.Fatalf("EncodeResponseNative %x (%v), reference %x (%v)", enc, eerr, want, werr)
	}
}

// TestNativeFastEncodeTakesTheMeshMessages: the mesh's messages take the
// direct writers (a fallback would hide a slow path behind equal bytes).
func TestNativeFastEncodeTakesTheMeshMessages(t *testing.T) {
	n, err := nativeCallOf(meshCall())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := appendNativeCall(nil, &n); !ok {
		t.Error("the mesh CALL fell back to the reflective encoder")
	}
	r, err := nativeResponseOf(meshResponse())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := appendNativeResponse(nil, &r); !ok {
		t.Error("the mesh RESPONSE fell back to the reflective encoder")
	}
}

// FuzzNativeDecodeMatchesReference: whenever the direct readers accept a
// CALL or RESPONSE map, the reflective decoder accepts it too and fills
// the same struct; a byte string's content is the reference's. What they
// refuse goes to the reference, so DecodeCallNative and the RESPONSE
// decoders behave as before on every input.
func FuzzNativeDecodeMatchesReference(f *testing.F) {
	addCallSeeds(f)
	for _, r := range []*Response{meshResponse(), {TaskID: "550e8400-e29b-41d4-a716-446655440000", Status: StatusError, Error: NewError(CodeBackendError, "x")}} {
		b, err := EncodeResponseNative(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	mc, err := EncodeCallNative(meshCall())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(mc)
	f.Add([]byte{0x41, 0x7b})
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, ok := fastNativeCall(b); ok {
			ref, err := unmarshalNativeCallRef(b)
			if err != nil || !reflect.DeepEqual(n, ref) {
				t.Fatalf("CALL %x: direct %+v, reference %+v (%v)", b, n, ref, err)
			}
		}
		if n, ok := fastNativeResponse(b); ok {
			ref, err := unmarshalNativeResponseRef(b)
			if err != nil || !reflect.DeepEqual(n, ref) {
				t.Fatalf("RESPONSE %x: direct %+v, reference %+v (%v)", b, n, ref, err)
			}
		}
		if c, ok := bstrContent(b); ok {
			var ref []byte
			if err := decMode.Unmarshal(b, &ref); err != nil || !bytes.Equal(c, ref) {
				t.Fatalf("bstr %x: direct %x, reference %x (%v)", b, c, ref, err)
			}
		}
	})
}

// TestNativeFastDecodeTakesTheMeshMessages: the mesh's messages take the
// direct readers, and decode to what was encoded.
func TestNativeFastDecodeTakesTheMeshMessages(t *testing.T) {
	call, resp := meshCall(), meshResponse()
	cb, err := EncodeCallNative(call)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fastNativeCall(cb); !ok {
		t.Error("the mesh CALL fell back to the reflective decoder")
	}
	rb, err := EncodeResponseNative(resp)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fastNativeResponse(rb); !ok {
		t.Error("the mesh RESPONSE fell back to the reflective decoder")
	}
	got, werr := DecodeCallNative(cb)
	if werr != nil || got.TaskID != call.TaskID || got.CallID != call.CallID || !bytes.Equal(got.Payload, call.Payload) {
		t.Fatalf("CALL round trip: %+v, %v", got, werr)
	}
	// The payload is a copy: the frame buffer it came from is reused.
	for i := range cb {
		cb[i] = 0
	}
	if !bytes.Equal(got.Payload, call.Payload) {
		t.Fatal("decoded payload aliases the input buffer")
	}
	r, werr := DecodeResponseNative(rb)
	if werr != nil || r.NodeID != resp.NodeID || !sameJSONBytes(t, r.Result, resp.Result) {
		t.Fatalf("RESPONSE round trip: %+v, %v", r, werr)
	}
}

func sameJSONBytes(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
