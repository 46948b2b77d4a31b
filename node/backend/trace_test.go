package backend

import (
	"context"
	"testing"
)

// TestTRACE_BackendTraceHeader: the CALL's trace_id reaches an
// OpenAI-compatible backend as X-IICP-Trace-Id (iicp-semantics.md §10.1);
// a value that is not a trace ID is not forwarded and does not fail the call.
func TestTRACE_BackendTraceHeader(t *testing.T) {
	cases := []struct{ in, want string }{
		{"4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"7f1c2a9e-0000-4000-8000-000000000001", "7f1c2a9e-0000-4000-8000-000000000001"},
		{"", ""},
		{"bad\r\nX-Evil: 1", ""},
	}
	for _, tc := range cases {
		f := newFakeOpenAI(t)
		c := newClient(t, f)
		req := chatReq(`{"messages":[{"role":"user","content":"hi"}]}`)
		req.TraceID = tc.in
		if _, err := c.Do(context.Background(), req); err != nil {
			t.Fatalf("%q: Do: %v", tc.in, err)
		}
		if _, hdr := f.last(t); hdr.Get(HeaderTraceID) != tc.want || hdr.Get("X-Evil") != "" {
			t.Errorf("%q: header %q, want %q", tc.in, hdr.Get(HeaderTraceID), tc.want)
		}
	}
}
