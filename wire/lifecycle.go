package wire

import (
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// This file is the service-lifecycle profile
// (iicp-service-lifecycle-profile.md, iicp-framing.md §4.4.1–§4.4.2): the
// negotiated streaming form of a task's answer. A caller asks for it in
// constraints.required_profiles; the provider then answers with an
// `accepted` event, ordered `partial` RESPONSEs carrying incremental result
// chunks, and exactly one terminal RESPONSE. Callers that do not negotiate
// get the base buffered RESPONSE.

// ProfileServiceLifecycle is the profile URN.
const ProfileServiceLifecycle = "urn:iicp:profile:service-lifecycle:v1"

// StatusPartial is the RESPONSE status of a non-terminal lifecycle event
// (iicp-framing.md §4.4 key 4).
const StatusPartial = "partial"

// Lifecycle events (iicp-service-lifecycle-profile.md §4, framing §4.4.2 key 3).
const (
	EventAccepted  = "accepted"
	EventPartial   = "partial"
	EventCompleted = "completed"
	EventFailed    = "failed"
	EventCancelled = "cancelled"
	EventTimedOut  = "timed_out"
)

// Profile negotiation bounds: a CALL lists a handful of profiles.
const (
	maxProfiles   = 16
	maxProfileLen = 128
)

// Lifecycle is the profile envelope (framing §4.4.2: RESPONSE key 13,
// OBSERVE key 4). It never carries payload or generated content: result,
// error and tokens_used stay in the RESPONSE (§8).
type Lifecycle struct {
	TaskID   string `json:"task_id" cbor:"1,keyasint"`
	Sequence uint64 `json:"sequence" cbor:"2,keyasint"`
	Event    string `json:"event" cbor:"3,keyasint"`
	IsFinal  bool   `json:"is_final" cbor:"4,keyasint"`
}

// Terminal reports whether ev ends a task.
func Terminal(ev string) bool {
	switch ev {
	case EventCompleted, EventFailed, EventCancelled, EventTimedOut:
		return true
	}
	return false
}

// check applies §4.4.2: status and finality agree with the event.
func (l *Lifecycle) check(status string) *Error {
	if l.TaskID == "" {
		return invalid("lifecycle.task_id", "is required")
	}
	if l.IsFinal != Terminal(l.Event) {
		return invalid("lifecycle.is_final", "must be true exactly on a terminal event")
	}
	want := map[string]string{EventPartial: StatusPartial, EventCompleted: StatusSuccess,
		EventFailed: StatusError, EventCancelled: StatusError, EventTimedOut: StatusTimeout}[l.Event]
	if want == "" || want != status {
		return invalid("lifecycle.event", "does not match the RESPONSE status")
	}
	return nil
}

// Negotiates reports whether the CALL asks for profile (required or
// optional).
func (c *Call) Negotiates(profile string) bool {
	return hasString(c.Constraints.RequiredProfiles, profile) || hasString(c.Constraints.OptionalProfiles, profile)
}

func hasString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// validateProfiles bounds the profile lists (their URNs are opaque here).
func validateProfiles(k *Constraints) *Error {
	for _, l := range []struct {
		name string
		v    []string
	}{{"constraints.required_profiles", k.RequiredProfiles}, {"constraints.optional_profiles", k.OptionalProfiles}} {
		if len(l.v) > maxProfiles {
			return invalid(l.name, "lists too many profiles")
		}
		for _, p := range l.v {
			if !strings.HasPrefix(p, "urn:") || len(p) > maxProfileLen || strings.ContainsAny(p, " \t\r\n") {
				return invalid(l.name, "entries must be profile URNs")
			}
		}
	}
	return nil
}

// SupportedProfiles are the profiles this implementation can serve; a
// required profile outside it is refused with unsupported_profile (§2).
var SupportedProfiles = []string{ProfileServiceLifecycle}

// UnsupportedProfile returns the first required profile not in supported,
// "" when every required profile is served.
func UnsupportedProfile(c *Call, supported []string) string {
	for _, p := range c.Constraints.RequiredProfiles {
		if !hasString(supported, p) {
			return p
		}
	}
	return ""
}

// nativeObserve is the OBSERVE map (iicp-framing.md §4.13).
type nativeObserve struct {
	Subject   string          `cbor:"1,keyasint"`
	SubjectID string          `cbor:"2,keyasint"`
	EventType string          `cbor:"3,keyasint"`
	Data      cbor.RawMessage `cbor:"4,keyasint,omitempty"`
	Sequence  *uint64         `cbor:"5,keyasint,omitempty"`
}

// EncodeLifecycleObserve renders l as an OBSERVE payload (framing §4.4.2:
// subject=call, subject_id=task_id, key 5 = sequence, key 4 = envelope):
// how a provider sends the `accepted` event before the first RESPONSE.
func EncodeLifecycleObserve(l *Lifecycle) ([]byte, error) {
	data, err := encMode.Marshal(l)
	if err != nil {
		return nil, err
	}
	seq := l.Sequence
	return encMode.Marshal(&nativeObserve{Subject: "call", SubjectID: l.TaskID, EventType: "start", Data: data, Sequence: &seq})
}

// DecodeLifecycleObserve reads a lifecycle OBSERVE payload.
func DecodeLifecycleObserve(b []byte) (*Lifecycle, *Error) {
	if len(b) > MaxFramePayload {
		return nil, NewError(CodePayloadTooLarge, "OBSERVE exceeds the frame size limit")
	}
	var o nativeObserve
	if err := decMode.Unmarshal(b, &o); err != nil {
		return nil, cborTypeError(err)
	}
	var l Lifecycle
	if o.Subject != "call" || len(o.Data) == 0 || decMode.Unmarshal(o.Data, &l) != nil {
		return nil, nativeInvalid("observe", "is not a call lifecycle event")
	}
	if o.SubjectID != l.TaskID || o.Sequence == nil || *o.Sequence != l.Sequence || l.Event != EventAccepted || l.IsFinal {
		return nil, nativeInvalid("observe", "contradicts its lifecycle envelope")
	}
	return &l, nil
}
