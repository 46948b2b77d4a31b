package wire

import (
	"bytes"
	"testing"
)

// TestDecodeResponseJSON covers the shape checks of the caller-side
// RESPONSE decoder (status enum, error required on failure, size cap).
func TestDecodeResponseJSON(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		code  Code   // "" means success
		field string // expected Error.Field on failure
	}{
		// A plain success with a result object.
		{"success", `{"task_id":"t","status":"success","result":{"x":1},"error":null}`, "", ""},
		// A timeout must carry its error.
		{"timeout with error", `{"task_id":"t","status":"timeout","result":null,"error":{"code":"task_timeout","message":"m"}}`, "", ""},
		// status error without an error object is malformed.
		{"error without error", `{"task_id":"t","status":"error","result":null}`, CodeValidationError, "error"},
		// Unknown status values are refused.
		{"unknown status", `{"task_id":"t","status":"done"}`, CodeValidationError, "status"},
		// Wrong JSON type names the field, not the value.
		{"wrong type", `{"task_id":7,"status":"success"}`, CodeValidationError, "task_id"},
		// Not JSON at all.
		{"not json", `{"task_id":`, CodeValidationError, "body"},
	}
	for _, c := range cases {
		r, err := DecodeResponseJSON([]byte(c.body))
		switch {
		case c.code == "" && (err != nil || r == nil || r.TaskID != "t"):
			t.Errorf("%s: got %v, %v; want a response", c.name, r, err)
		case c.code != "" && (err == nil || r != nil || err.Code != c.code || err.Field != c.field):
			t.Errorf("%s: got %v, %+v; want %s on field %q", c.name, r, err, c.code, c.field)
		}
	}
}

// TestDecodeJSON_SizeCaps: each decoder refuses a body over its own cap
// with payload_too_large before parsing it.
func TestDecodeJSON_SizeCaps(t *testing.T) {
	pad := func(n int) []byte { return append([]byte(`{"x":"`), append(bytes.Repeat([]byte("a"), n), '"', '}')...) }
	decoders := []struct {
		name string
		max  int
		dec  func([]byte) *Error
	}{
		{"call", MaxCallBytes, func(b []byte) *Error { _, e := DecodeCallJSON(b); return e }},
		{"register", MaxControlBytes, func(b []byte) *Error { _, e := DecodeRegisterJSON(b); return e }},
		{"heartbeat", MaxControlBytes, func(b []byte) *Error { _, e := DecodeHeartbeatJSON(b); return e }},
		{"response", MaxResponseBytes, func(b []byte) *Error { _, e := DecodeResponseJSON(b); return e }},
	}
	for _, d := range decoders {
		if e := d.dec(pad(d.max)); e == nil || e.Code != CodePayloadTooLarge {
			t.Errorf("%s: body over %d bytes gave %+v, want payload_too_large", d.name, d.max, e)
		}
		if e := d.dec(pad(d.max - 100)); e != nil && e.Code == CodePayloadTooLarge {
			t.Errorf("%s: body under the cap refused as too large", d.name)
		}
	}
}
