package wire

import "testing"

// iicp-semantics.md §6.1 (PROXY-ROUTE-03, PROXY-TIMEOUT-01): which answers
// move a task to another node and which are final.
func TestRetryElsewhere_PROXY_ROUTE_03(t *testing.T) {
	fail := func(c Code) *Response { return &Response{Status: StatusError, Error: NewError(c, "x")} }
	retry := []*Response{
		nil,
		{Status: StatusTimeout},
		{Status: StatusError},
		fail(CodeCapacityExceeded), fail(CodeRateLimited), fail(CodeUnavailable), fail(CodeTaskTimeout),
		fail(CodeE021), fail(CodeE029), fail(CodeE039),
	}
	final := []*Response{
		{Status: StatusSuccess},
		fail(CodeUnauthorized), fail(CodeForbidden), fail(CodeConflict), fail(CodeValidationError),
		fail(CodeUnknownIntent), fail(CodePayloadTooLarge), fail(CodeBackendError), fail(CodeInternal),
		fail(CodeE032), fail(CodeE050), fail(CodeE062), fail(CodeE063), fail(CodeE064),
		// The CX node's E050 rides a 422 (NewErrorStatus); still final.
		{Status: StatusError, Error: &Error{Code: CodeE050, HTTP: 422}},
	}
	for _, r := range retry {
		if !RetryElsewhere(r) {
			t.Errorf("%s: final, want retry elsewhere", describe(r))
		}
	}
	for _, r := range final {
		if RetryElsewhere(r) {
			t.Errorf("%s: retry elsewhere, want final", describe(r))
		}
	}
}

func describe(r *Response) string {
	switch {
	case r == nil:
		return "no answer"
	case r.Error != nil:
		return string(r.Error.Code)
	}
	return r.Status
}
