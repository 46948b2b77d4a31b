package wire

import "errors"

// Cancellation and resumption of a streamed task
// (iicp-service-lifecycle-profile.md §5; docs/spec-decisions.md ##
// service-lifecycle profile). A caller cancels with a CONTROL message whose
// payload is only task_id and reason (§5): natively the CONTROL frame of
// framing §4.11 with action "cancel" (key 1), task_id (key 5) and reason
// (key 6); over HTTP the same fields as JSON on POST /v1/control (framing
// §5.2 maps CONTROL there).

// ErrCancelRequested is the context cause a transport gives when the caller
// asked to cancel its task: the engine ends it `cancelled` at once.
var ErrCancelRequested = errors.New("the caller cancelled the task")

// ErrCallerLost is the context cause a transport gives when the caller's
// stream broke without a cancel: the engine keeps the task running for a
// short resume grace and cancels it only when nobody resumes.
var ErrCallerLost = errors.New("the caller's stream broke")

// ActionCancel is the CONTROL action of a task cancellation.
const ActionCancel = "cancel"

// MaxCancelReason bounds a cancellation's reason.
const MaxCancelReason = 256

// maxCancelBytes bounds an encoded cancellation: three short strings.
const maxCancelBytes = 1 << 10

// CancelControl is the cancellation CONTROL payload. It never repeats task
// payload content (§5).
type CancelControl struct {
	Action string `json:"action" cbor:"1,keyasint"`
	TaskID string `json:"task_id" cbor:"5,keyasint"`
	Reason string `json:"reason,omitempty" cbor:"6,keyasint,omitempty"`
}

// Check validates a decoded cancellation.
func (c *CancelControl) Check() *Error {
	if c.Action != ActionCancel {
		return invalid("action", "must be cancel")
	}
	if !ValidUUIDv4(c.TaskID) {
		return invalid("task_id", "must be a UUID version 4 (PROTO-MSG-01)")
	}
	if len(c.Reason) > MaxCancelReason || !printable(c.Reason) {
		return invalid("reason", "must be at most 256 printable characters")
	}
	return nil
}

// EncodeCancelNative renders a cancellation as deterministic CBOR (the
// CONTROL frame payload).
func EncodeCancelNative(c *CancelControl) ([]byte, error) { return encMode.Marshal(c) }

// DecodeCancelNative reads and checks a cancellation CONTROL payload.
func DecodeCancelNative(b []byte) (*CancelControl, *Error) {
	if len(b) > maxCancelBytes {
		return nil, NewError(CodePayloadTooLarge, "CONTROL exceeds the size limit")
	}
	if err := checkDeterministic(b); err != nil {
		return nil, err
	}
	if len(b) == 0 || b[0]>>5 != 5 {
		return nil, cborErr("message must be a CBOR map")
	}
	var c CancelControl
	if err := decMode.Unmarshal(b, &c); err != nil {
		return nil, cborTypeError(err)
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return &c, nil
}

// DecodeCancelJSON reads and checks a cancellation (POST /v1/control).
func DecodeCancelJSON(b []byte) (*CancelControl, *Error) {
	return decodeChecked(b, maxCancelBytes, (*CancelControl).Check)
}
