// Package retry holds the IICP retry timing shared by every caller that
// retries a task on another node (iicp-semantics.md §6.1): exponential
// backoff with ±20 % jitter and a context-aware sleep.
//
// retry imports only the standard library; mesh and dirbridge/dirclient use it
// so both paths back off alike.
package retry
