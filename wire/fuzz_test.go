package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// Fuzz targets. Seeds come from f.Add below and from the committed corpora
// in testdata/fuzz/<FuzzName>/. Run one at a time:
//
//	go test -run '^$' -fuzz '^FuzzFrameDecode$' -fuzztime 60s ./wire

func FuzzFrameDecode(f *testing.F) {
	for _, h := range []string{"494943500109000000000000", "494943500105000000000003a10101",
		"49494350010900ff00000000", "494943500109800000000000", "584943500109000000000000",
		"4949435001090000000000", "494943500105000000000003a101", "4949435001090000ffffffff"} {
		b, _ := hex.DecodeString(h)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, consumed, err := DecodeFrame(b)
		sh, spayload, serr := NewFrameReader(bytes.NewReader(b)).ReadFrame()
		if err == nil {
			if consumed != HeaderLen+len(payload) || consumed > len(b) || uint32(len(payload)) != h.Length || h.Length > MaxFramePayload {
				t.Fatalf("inconsistent frame: %+v len %d consumed %d", h, len(payload), consumed)
			}
			if serr != nil || sh != h || !bytes.Equal(spayload, payload) {
				t.Fatalf("stream and slice decoders disagree: %v", serr)
			}
			_ = h.Check(nil)
			_ = h.Type.String()
			re, aerr := AppendFrame(nil, h.Type, h.Flags, payload)
			if aerr != nil || !bytes.Equal(re[HeaderLen:], payload) {
				t.Fatal("re-encode failed")
			}
		} else if serr == nil && len(b) > 0 {
			t.Fatalf("slice rejected (%v) what the stream accepted", err)
		}
	})
}

func addCallSeeds(f *testing.F) {
	f.Helper()
	c, err := DecodeCallJSON([]byte(`{"task_id":"550e8400-e29b-41d4-a716-446655440000","intent":"urn:iicp:intent:llm:chat:v1","payload":{"messages":[{"role":"user","content":"hi"}]},"constraints":{"timeout_ms":5000,"qos":"batch","priority":"low"},"auth":{"node_token":"tok"},"trace":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}}`))
	if err != nil {
		f.Fatal(err)
	}
	sk, _ := EncodeCallCBOR(c)
	nat, _ := EncodeCallNative(c)
	f.Add(sk)
	f.Add(nat)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xbf, 0xff})
	f.Add([]byte{0xd9, 0xff, 0xff, 0xa0})
}

func FuzzDecodeCallCBOR(f *testing.F) {
	addCallSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCallCBOR(b)
		if err != nil {
			if err.Code == "" || err.Message == "" {
				t.Fatal("empty error")
			}
			return
		}
		re, eerr := EncodeCallCBOR(c)
		if eerr != nil {
			t.Fatalf("accepted call does not re-encode: %v", eerr)
		}
		if _, derr := DecodeCallCBOR(re); derr != nil {
			t.Fatalf("re-encoded call rejected: %v", derr)
		}
	})
}

func FuzzDecodeNative(f *testing.F) {
	addCallSeeds(f)
	resp, _ := EncodeResponseNative(&Response{TaskID: "550e8400-e29b-41d4-a716-446655440000", Status: StatusError, Error: NewError(CodeBackendError, "x")})
	f.Add(resp)
	f.Add([]byte{0xa5, 0x02, 0x66, 'c', 'a', 'l', 'l', '-', '1', 0x0f, 0x61, 'c', 0x18, 0x64, 0x19, 0x01, 0xad, 0x18, 0x65, 0x61, 'm', 0x05, 0x41, 0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, serr := DecodeCallNative(b)
		cc, cerr := DecodeCallNativeCompat(b)
		if serr == nil {
			if cerr != nil {
				t.Fatalf("compat rejected a strict CALL: %v", cerr)
			}
			if cc.TaskID != c.TaskID || !bytes.Equal(cc.Payload, c.Payload) {
				t.Fatal("strict and compat decode differently")
			}
			re, err := EncodeCallNative(c)
			if err != nil {
				t.Fatalf("accepted CALL does not re-encode: %v", err)
			}
			if _, err := DecodeCallNative(re); err != nil {
				t.Fatalf("re-encoded CALL rejected: %v", err)
			}
		}
		r, rerr := DecodeResponseNative(b)
		if _, crerr := DecodeResponseNativeCompat(b); rerr == nil && crerr != nil {
			t.Fatalf("compat rejected a strict RESPONSE: %v", crerr)
		}
		if rerr == nil {
			if _, err := EncodeResponseNative(r); err != nil {
				t.Fatalf("accepted RESPONSE does not re-encode: %v", err)
			}
		}
		for _, strict := range []bool{true, false} {
			_ = DecodeNative(b, &Init{}, strict)
			_ = DecodeNative(b, &Ack{}, strict)
			_ = DecodeNative(b, &Ping{}, strict)
			_ = DecodeNative(b, &CloseMsg{}, strict)
		}
	})
}

func FuzzDecodeCallJSON(f *testing.F) {
	f.Add(readSpec(f, "schemas/samples/task-valid.json"))
	f.Add(readSpec(f, "schemas/samples/task-batch.json"))
	f.Add(readSpec(f, "schemas/samples/task-invalid-intent.json"))
	f.Add([]byte(`{"a":{"b":[1,2,{"c":null}]}}`))
	f.Add([]byte(`{"task_id":"x","task_id":"y"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCallJSON(b)
		if err != nil {
			if err.Code == "" || err.Field == "" && err.Code == CodeValidationError {
				t.Fatalf("unstructured error %+v", err)
			}
			return
		}
		if verr := ValidateCall(c); verr != nil {
			t.Fatalf("accepted call fails validation: %v", verr)
		}
		re, merr := json.Marshal(c)
		if merr != nil {
			t.Fatalf("accepted call does not marshal: %v", merr)
		}
		if _, derr := DecodeCallJSON(re); derr != nil {
			t.Fatalf("re-marshalled call rejected: %v", derr)
		}
	})
}

// oracleDecMode decodes any well-formed item into generic values without
// tags, for the determinism oracle below.
var oracleDecMode = mustDecMode(cbor.DecOptions{
	DupMapKey:   cbor.DupMapKeyEnforcedAPF,
	IndefLength: cbor.IndefLengthAllowed,
	TagsMd:      cbor.TagsForbidden,
})

// FuzzDeterministicCheck cross-checks checkDeterministic against
// fxamacker/cbor: an item we call deterministic must re-encode to the same
// bytes under CoreDetEncOptions; encoder output must always pass.
func FuzzDeterministicCheck(f *testing.F) {
	for _, h := range []string{"a201010202", "a202020101", "f97e00", "fa3fc00000", "fb3fb999999999999a", "9f01ff", "d9ffffa0", "1805"} {
		b, _ := hex.DecodeString(h)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		detErr := checkDeterministic(b)
		var v any
		if err := oracleDecMode.Unmarshal(b, &v); err != nil {
			return
		}
		re, err := encMode.Marshal(v)
		if err != nil {
			return
		}
		if cerr := checkDeterministic(re); cerr != nil && !bytes.Contains(re, []byte{0xf7}) {
			t.Fatalf("encoder output %x rejected: %v", re, cerr)
		}
		// undefined (f7) decodes to nil and large negatives to big.Int, so
		// their re-encoding legitimately differs.
		if detErr == nil && !bytes.Equal(re, b) && bytes.IndexByte(b, 0xf7) < 0 && bytes.IndexByte(b, 0x3b) < 0 {
			t.Fatalf("accepted %x but canonical form is %x", b, re)
		}
	})
}

// sink keeps results alive in benchmarks.
var sink any

var _ io.Reader = (*oneByteReader)(nil)
