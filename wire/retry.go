package wire

// RetryElsewhere reports whether another node might succeed where the node
// that gave r failed, or whether r is the final answer for the caller. It is
// the one classifier of iicp-semantics.md §6.1 for every path (mesh stream,
// HTTP, local) and every caller; docs/spec-decisions.md (## route) records
// the choices:
//
//   - no answer (r nil), a timeout, a RESPONSE that is not a success yet
//     carries no error, and 429/503/504 answers (capacity_exceeded,
//     rate_limited, service_unavailable, task_timeout, IICP-E021…) are worth
//     another node;
//   - IICP-E029 (this node does not serve the model) and
//     unsupported_profile are worth another node: they describe the node,
//     not the request;
//   - everything else is final: 4xx (the request or its credential is
//     wrong: §6.1 "401 SHOULD NOT retry"), 502 backend_error (§6.1 "SHOULD
//     NOT retry"), 500 internal_error (not among §6.1's retriable
//     conditions), and IICP-CX failures, which must never turn into a retry
//     that could end in plaintext (iicp-confidentiality.md §6).
//
// A successful RESPONSE is final.
func RetryElsewhere(r *Response) bool {
	switch {
	case r == nil:
		return true
	case r.Status == StatusSuccess:
		return false
	case r.Status == StatusTimeout, r.Error == nil:
		return true
	}
	switch r.Error.Code {
	case CodeE029, CodeUnsupportedProfile:
		// The node lacks the model or the negotiated profile: another
		// node may have it.
		return true
	case CodeE050, CodeE060, CodeE061, CodeE062, CodeE063, CodeE064:
		return false
	}
	switch r.Error.Status() {
	case 429, 503, 504:
		return true
	}
	return false
}
