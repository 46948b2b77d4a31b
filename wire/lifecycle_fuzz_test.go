package wire

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeLifecycle: the profile decoders (RESPONSE key 13, the accepted
// OBSERVE) never panic; what they accept is consistent (status, finality
// and envelope agree) and re-encodes to what decodes the same.
func FuzzDecodeLifecycle(f *testing.F) {
	for _, r := range []*Response{
		{TaskID: "t", Status: StatusPartial, Result: json.RawMessage(`{"choices":[]}`), Lifecycle: &Lifecycle{TaskID: "t", Sequence: 1, Event: EventPartial}},
		{TaskID: "t", Status: StatusSuccess, Lifecycle: &Lifecycle{TaskID: "t", Sequence: 2, Event: EventCompleted, IsFinal: true}},
		{TaskID: "t", Status: StatusError, Error: NewError(CodeUnavailable, "x"), Lifecycle: &Lifecycle{TaskID: "t", Sequence: 3, Event: EventCancelled, IsFinal: true}},
	} {
		b, _ := EncodeResponseNative(r)
		f.Add(b)
	}
	ob, _ := EncodeLifecycleObserve(&Lifecycle{TaskID: "t", Event: EventAccepted})
	f.Add(ob)
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, werr := DecodeLifecycleObserve(b); werr == nil && (l.Event != EventAccepted || l.IsFinal) {
			t.Fatalf("observe accepted a non-accepted event %+v", l)
		}
		r, werr := DecodeResponseNativeLifecycle(b)
		if werr != nil {
			if werr.Code == "" {
				t.Fatal("empty error code")
			}
			return
		}
		if r.Lifecycle != nil {
			if err := r.Lifecycle.check(r.Status); err != nil {
				t.Fatalf("accepted a contradictory envelope: %v", err)
			}
		} else if r.Status == StatusPartial {
			t.Fatal("partial without an envelope")
		}
		re, err := EncodeResponseNative(r)
		if err != nil {
			return // e.g. a result the JSON side cannot hold
		}
		r2, werr := DecodeResponseNativeLifecycle(re)
		if werr != nil || r2.Status != r.Status || (r.Lifecycle != nil) != (r2.Lifecycle != nil) {
			t.Fatalf("re-encoded RESPONSE decodes differently: %v", werr)
		}
	})
}

// FuzzDecodeCancel: the cancellation CONTROL decoders (native CONTROL
// frame, POST /v1/control JSON) never panic, accept only a checked
// cancellation, and what they accept round-trips.
func FuzzDecodeCancel(f *testing.F) {
	cc := &CancelControl{Action: ActionCancel, TaskID: "0b7e3f5a-1d2c-4e8f-9a6b-3c5d7e9f1a2b", Reason: "user stopped"}
	nb, _ := EncodeCancelNative(cc)
	jb, _ := json.Marshal(cc)
	f.Add(nb)
	f.Add(jb)
	f.Add([]byte(`{"action":"pause","task_id":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, werr := DecodeCancelNative(b); werr == nil {
			if c.Check() != nil {
				t.Fatalf("native accepted an unchecked cancel %+v", c)
			}
			re, err := EncodeCancelNative(c)
			if err != nil {
				t.Fatal(err)
			}
			if c2, werr := DecodeCancelNative(re); werr != nil || *c2 != *c {
				t.Fatalf("native round trip: %+v %v", c2, werr)
			}
		} else if werr.Code == "" {
			t.Fatal("empty error code")
		}
		if c, werr := DecodeCancelJSON(b); werr == nil && c.Check() != nil {
			t.Fatalf("JSON accepted an unchecked cancel %+v", c)
		}
	})
}
