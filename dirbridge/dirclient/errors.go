package dirclient

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Sentinels for branching with errors.Is on an *Error.
var (
	// ErrUnauthorized: 401, the node token is missing, invalid or rotated.
	ErrUnauthorized = errors.New("directory: unauthorized")
	// ErrNotFound: 404, the directory does not know the node.
	ErrNotFound = errors.New("directory: not found")
	// ErrRateLimited: 429, retry after RetryAfter.
	ErrRateLimited = errors.New("directory: rate limited")
	// ErrUnavailable: the directory could not be reached or failed (5xx);
	// worth retrying with backoff.
	ErrUnavailable = errors.New("directory: unavailable")
	// ErrRejected: any other 4xx; the request itself was refused and
	// retrying it unchanged will not help soon.
	ErrRejected = errors.New("directory: rejected")
)

// Error is a failed directory call. It carries what the caller needs to
// decide what to do next, and nothing secret: no token, no request body.
type Error struct {
	// Op is the call: register, heartbeat, deregister, discover, me, bootstrap.
	Op string
	// Status is the HTTP status; 0 when no response arrived.
	Status int
	// Code is the IICP error code from the envelope, if any.
	Code wire.Code
	// Message is the directory's (truncated) message.
	Message string
	// RetryAfter is the server's requested wait (Retry-After header, or
	// retry_after / retry_after_ms in the envelope); 0 when absent.
	RetryAfter time.Duration
	// Err is the transport or decoding error, if any.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("directory " + e.Op)
	if e.Status != 0 {
		b.WriteString(": HTTP " + strconv.Itoa(e.Status))
	}
	if e.Code != "" {
		b.WriteString(" " + string(e.Code))
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is maps the status onto the package sentinels.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrUnavailable:
		return e.Status == 0 || e.Status >= 500
	case ErrRejected:
		return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusUnauthorized &&
			e.Status != http.StatusNotFound && e.Status != http.StatusTooManyRequests
	}
	return false
}

// statusError builds the *Error for a non-success response.
func statusError(op string, resp *http.Response, body []byte) *Error {
	e := &Error{Op: op, Status: resp.StatusCode}
	var env wire.Envelope
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		e.Code = env.Error.Code
		e.Message = truncate(env.Error.Message)
		switch {
		case env.Error.RetryAfterMs > 0:
			e.RetryAfter = time.Duration(env.Error.RetryAfterMs) * time.Millisecond
		case env.Error.RetryAfter > 0:
			e.RetryAfter = time.Duration(env.Error.RetryAfter) * time.Second
		}
	} else if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		e.RetryAfter = ra // the header is authoritative when both are present
	}
	return e
}

// parseRetryAfter reads delta-seconds or an HTTP date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

func truncate(s string) string {
	if len(s) > maxMessageLen {
		return s[:maxMessageLen] + "…"
	}
	return s
}

// retryAfterOf returns the server-requested wait of err, if any.
func retryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
