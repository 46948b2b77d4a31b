package httpapi

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// maxConsumerTokenHeader bounds X-IICP-Consumer-Token; real tokens are < 1 KiB.
const maxConsumerTokenHeader = 4096

// handleTask serves POST /v1/task: rate limit, read (capped), open an
// IICP-CX envelope when configured, decode JSON or CBOR, hand the CALL to
// the engine, encode the RESPONSE in the caller's encoding.
func (s *Server) handleTask(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Accept-Post"] = acceptPostValue
	h["Cache-Control"] = noStoreValue
	isCBOR, ok := requestMedia(r.Header.Get("Content-Type"))
	if !ok {
		writeError(w, wire.NewError(wire.CodeUnsupportedMedia, "Content-Type must be application/json or application/iicp+cbor"), false)
		return
	}
	replyCBOR := isCBOR && acceptsCBOR(r.Header.Get("Accept"))
	src, loopback := ipKey(r.RemoteAddr)
	if werr := s.rateLimitFrom(r, src, loopback); werr != nil {
		writeError(w, werr, replyCBOR)
		return
	}
	body, werr := readBody(w, r, s.set.maxBody)
	if werr != nil {
		writeError(w, werr, replyCBOR)
		return
	}
	var respond func(*wire.Response) ([]byte, error) // nil: plain JSON (writeResponse)
	var call *wire.Call
	if isCBOR {
		call, werr = wire.DecodeCallCBOR(body)
	} else {
		if s.set.confidential != nil {
			if body, respond, werr = s.set.confidential(body); werr != nil {
				writeError(w, werr, false)
				return
			}
		}
		call, werr = wire.DecodeCallJSON(body)
	}
	if werr != nil {
		writeError(w, werr, replyCBOR)
		return
	}
	caller := s.prepare(w, r, call, src)
	// The CALL's own trace_id (validated by wire) is the one to echo
	// (TRACE-02); tracing already set the header's, which is usually it.
	if tid := call.Trace.TraceID; tid != infoOf(w, r).traceID {
		h[hdrTraceID] = []string{tid}
	}
	if se, ok := s.streams(call, isCBOR); ok {
		if respond == nil {
			respond = encodeResponse
		}
		s.streamTask(w, r, se, call, caller, respond)
		return
	}
	resp := s.eng.Execute(r.Context(), call, caller)
	s.writeResponse(w, resp, replyCBOR, respond)
}

// prepare fills what the CALL may carry in headers instead of the body and
// describes the caller (src: ipKey of the remote address). Body fields win
// over headers.
func (s *Server) prepare(w http.ResponseWriter, r *http.Request, call *wire.Call, src string) wire.Caller {
	if call.Auth == nil || call.Auth.NodeToken == "" {
		// iicp-core.md §3.1 shows the node token as "Authorization: Bearer".
		if tok, ok := bearer(r.Header.Get("Authorization")); ok {
			call.Auth = &wire.Auth{NodeToken: tok}
		}
	}
	if call.Trace == nil {
		call.Trace = &wire.Trace{}
	}
	if call.Trace.TraceID == "" {
		// Propagate the header (or generated) trace ID to the engine and backend.
		call.Trace.TraceID = infoOf(w, r).traceID
	}
	ct := r.Header.Get(hdrConsumerToken)
	if len(ct) > maxConsumerTokenHeader {
		ct = "" // oversize: treated as absent, the engine then requires node_token
	}
	return wire.Caller{ConsumerToken: ct, RemoteIP: src, Origin: r.Header.Get("Origin"), Transport: "http"}
}

// writeResponse writes the RESPONSE: 200 on success, the error code's
// status otherwise, always the RESPONSE body (iicp-core.md §3.2). A nil
// respond is plain JSON: encoded into a pooled buffer, which net/http has
// copied by the time Write returns.
func (s *Server) writeResponse(w http.ResponseWriter, resp *wire.Response, cbor bool, respond func(*wire.Response) ([]byte, error)) {
	status := http.StatusOK
	if resp.Error != nil {
		status = resp.Error.Status()
		setRetryAfter(w, resp.Error)
	}
	var body []byte
	var err error
	media := mediaJSON
	switch {
	case cbor:
		body, err = wire.EncodeResponseCBOR(resp)
		media = mediaCBOR
	case respond != nil:
		body, err = respond(resp)
	default:
		buf := responseBufs.Get().(*[]byte)
		if b, ok := appendResponse((*buf)[:0], resp); ok {
			writeBody(w, status, mediaJSON, b)
			if *buf = b[:0]; cap(b) <= maxPooledResponse {
				responseBufs.Put(buf)
			}
			return
		}
		responseBufs.Put(buf)
		body, err = wire.EncodeJSON(resp)
	}
	if err != nil {
		s.log.Error("encoding task response failed", "task_id", resp.TaskID, "error", err)
		writeError(w, wire.NewError(wire.CodeInternal, "encoding the response failed"), cbor)
		return
	}
	writeBody(w, status, media, body)
}

// requestMedia classifies Content-Type; a missing one is taken as JSON.
func requestMedia(ct string) (cbor, ok bool) {
	switch ct {
	case "", mediaJSON: // the common cases, without parsing
		return false, true
	case mediaCBOR:
		return true, true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, false
	}
	switch mt {
	case mediaJSON:
		return false, true
	case mediaCBOR:
		return true, true
	}
	return false, false
}

// acceptsCBOR: a CBOR request gets a CBOR answer unless Accept excludes it
// (iicp-cbor-wire.md §2.2).
func acceptsCBOR(accept string) bool {
	if strings.TrimSpace(accept) == "" {
		return true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q := params["q"]; q == "0" || q == "0.0" || q == "0.00" || q == "0.000" {
			continue
		}
		if mt == mediaCBOR || mt == "application/*" || mt == "*/*" {
			return true
		}
	}
	return false
}

// readBody reads at most limit bytes; more is 413 payload_too_large. A
// declared Content-Length within the limit is read into one exact
// allocation (net/http ends the body at that length).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *wire.Error) {
	if n := r.ContentLength; n > 0 && n <= limit {
		b := make([]byte, n)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, wire.NewError(wire.CodeValidationError, "reading the request body failed")
		}
		return b, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, wire.NewError(wire.CodePayloadTooLarge, "request body exceeds the size limit")
		}
		return nil, wire.NewError(wire.CodeValidationError, "reading the request body failed")
	}
	return b, nil
}

// bearer extracts the token of "Authorization: Bearer <token>".
func bearer(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	tok := strings.TrimSpace(h[len(prefix):])
	return tok, tok != ""
}

// rateLimit applies the per-Origin and per-IP buckets (iicp-core.md §3.1).
// Loopback callers (the operator's own proxy) skip the per-IP bucket; a
// browser on this host still carries an Origin and is limited by it.
func (s *Server) rateLimit(r *http.Request) *wire.Error {
	key, loopback := ipKey(r.RemoteAddr)
	return s.rateLimitFrom(r, key, loopback)
}

// rateLimitFrom is rateLimit with the source already keyed (ipKey).
func (s *Server) rateLimitFrom(r *http.Request, key string, loopback bool) *wire.Error {
	now := s.set.now()
	if origin := r.Header.Get("Origin"); origin != "" {
		if len(origin) > maxOriginKey {
			origin = origin[:maxOriginKey]
		}
		if ok, wait := s.originLm.Allow(origin, now); !ok {
			s.met.rateLimited.WithLabelValues("origin").Inc()
			return rateLimited(wait)
		}
	}
	if !loopback {
		if ok, wait := s.ipLim.Allow(key, now); !ok {
			s.met.rateLimited.WithLabelValues("ip").Inc()
			return rateLimited(wait)
		}
	}
	return nil
}

func rateLimited(wait time.Duration) *wire.Error {
	e := wire.NewError(wire.CodeRateLimited, "too many task requests; slow down")
	e.RetryAfterMs = max(wait.Milliseconds(), 1)
	return e
}
