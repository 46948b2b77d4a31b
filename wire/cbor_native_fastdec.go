package wire

import (
	"unicode/utf8"
)

// Direct readers of the native CALL and RESPONSE maps (the mesh's hot
// path), the counterpart of cbor_native_fast.go. They fill the same
// nativeCall / nativeResponse the reflective decoder fills, for the plain
// maps real peers send: unsigned keys in increasing order (so no
// duplicates), each of the type its field holds. Anything else — an
// unknown key, a tag, null, a type mismatch, invalid UTF-8, an indefinite
// length, trailing bytes — makes them give up (ok false) and the reflective
// decoder decides, so the accepted inputs, the errors and the decoded
// values are the reference's by construction
// (FuzzNativeDecodeMatchesReference). Strings and byte strings are
// copied: the input aliases a frame buffer that the next read reuses.

type natReader struct {
	in  []byte
	pos int
}

// head reads a definite-length head (cborHead).
func (r *natReader) head() (major, ai byte, arg uint64, ok bool) {
	major, ai, arg, r.pos, ok = cborHead(r.in, r.pos)
	return major, ai, arg, ok
}

// span reads the n bytes of a string's content.
func (r *natReader) span(n uint64) ([]byte, bool) {
	if n > uint64(len(r.in)-r.pos) {
		return nil, false
	}
	b := r.in[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return b, true
}

func (r *natReader) text() (string, bool) {
	major, _, n, ok := r.head()
	if !ok || major != 3 {
		return "", false
	}
	b, ok := r.span(n)
	if !ok || !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}

func (r *natReader) uint() (*uint64, bool) {
	major, _, n, ok := r.head()
	if !ok || major != 0 {
		return nil, false
	}
	return &n, true
}

// bytes reads a byte string into a fresh slice (empty, never nil, for a
// zero-length one, as the reflective decoder does).
func (r *natReader) bytes() ([]byte, bool) {
	major, _, n, ok := r.head()
	if !ok || major != 2 {
		return nil, false
	}
	b, ok := r.span(n)
	if !ok {
		return nil, false
	}
	return append(make([]byte, 0, len(b)), b...), true
}

// item returns the next data item, which must be made of definite-length
// strings (text valid UTF-8), arrays, maps, integers and simple values or
// floats, at most fastDepth deep. It aliases the input: the payload and
// result items are transcoded or copied before the decoders return
// (nativePayload, nativeResult).
func (r *natReader) item() ([]byte, bool) {
	start := r.pos
	if !r.skip(0) {
		return nil, false
	}
	return r.in[start:r.pos:r.pos], true
}

func (r *natReader) skip(depth int) bool {
	if depth > fastDepth {
		return false
	}
	major, ai, arg, ok := r.head()
	if !ok {
		return false
	}
	switch major {
	case 0, 1:
		return true
	case 2, 3:
		b, ok := r.span(arg)
		return ok && (major == 2 || utf8.Valid(b))
	case 4, 5:
		if arg > MaxCBORArray || arg > uint64(len(r.in)-r.pos) {
			return false
		}
		n := arg
		if major == 5 {
			n *= 2
		}
		for range n {
			if !r.skip(depth + 1) {
				return false
			}
		}
		return true
	case 7:
		// false, true, null, undefined and floats; other simple values defer.
		return ai >= 20 && ai <= 23 || ai >= 25 && ai <= 27
	}
	return false // tags
}

// mapHead reads a map head and returns its pair count.
func (r *natReader) mapHead() (uint64, bool) {
	major, _, n, ok := r.head()
	if !ok || major != 5 || n > MaxCBORMap || n > uint64(len(r.in)-r.pos) {
		return 0, false
	}
	return n, true
}

// keys reads the next key of an integer-keyed map: unsigned and above
// prev (no duplicates, as the reference requires).
func (r *natReader) key(prev *int64) (uint64, bool) {
	major, _, k, ok := r.head()
	if !ok || major != 0 || k > 1<<20 || int64(k) <= *prev {
		return 0, false
	}
	*prev = int64(k)
	return k, true
}

// fastNativeCall reads a plain CALL map; ok false defers to the reference.
func fastNativeCall(b []byte) (*nativeCall, bool) {
	r := natReader{in: b}
	pairs, ok := r.mapHead()
	if !ok {
		return nil, false
	}
	n := &nativeCall{}
	prev := int64(-1)
	for range pairs {
		k, ok := r.key(&prev)
		if !ok || !r.callField(n, k) {
			return nil, false
		}
	}
	return n, r.pos == len(b)
}

// callField reads the value of key k into n.
func (r *natReader) callField(n *nativeCall, k uint64) bool {
	ok := true
	switch k {
	case 1:
		n.ProtocolVersion, ok = r.uint()
	case 2:
		n.SessionID, ok = r.text()
	case 3:
		n.Intent, ok = r.text()
	case 4:
		n.ProviderID, ok = r.text()
	case 5:
		n.Payload, ok = r.item()
	case 6:
		n.Timeout, ok = r.uint()
	case 7:
		n.Priority, ok = r.uint()
	case 8:
		n.Credits, ok = r.uint()
	case 9:
		n.RoutingHint, ok = r.text()
	case 10:
		n.SchedulingHint, ok = r.text()
	case 11:
		n.AuthToken, ok = r.text()
	case 13:
		n.TraceID, ok = r.bytes()
	case 14:
		n.ParentSpan, ok = r.bytes()
	case 15:
		n.CallID, ok = r.text()
	case 16:
		n.IdempotencyKey, ok = r.text()
	case 17:
		n.MaxTokens, ok = r.uint()
	case 18:
		n.QoS, ok = r.text()
	case 20:
		n.Region, ok = r.text()
	case 21:
		n.Capabilities, ok = r.texts()
	case 22:
		n.TTL, ok = r.uint()
	case 23:
		n.Metadata, ok = r.textMap()
	case 24:
		n.TaskID, ok = r.text()
	default:
		return false // retry_policy and unknown keys: the reference's
	}
	return ok
}

// texts reads an array of text strings.
func (r *natReader) texts() ([]string, bool) {
	major, _, n, ok := r.head()
	if !ok || major != 4 || n > MaxCBORArray || n > uint64(len(r.in)-r.pos) {
		return nil, false
	}
	out := make([]string, 0, n)
	for range n {
		s, ok := r.text()
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// textMap reads a text→text map whose keys are in increasing bytewise
// order of their encoding (which excludes duplicates).
func (r *natReader) textMap() (map[string]string, bool) {
	pairs, ok := r.mapHead()
	if !ok {
		return nil, false
	}
	m := make(map[string]string, pairs)
	var prev []byte
	for i := range pairs {
		start := r.pos
		k, ok := r.text()
		if !ok {
			return nil, false
		}
		enc := r.in[start:r.pos]
		if i > 0 && string(enc) <= string(prev) {
			return nil, false
		}
		prev = enc
		if m[k], ok = r.text(); !ok {
			return nil, false
		}
	}
	return m, true
}

// fastNativeResponse reads a plain RESPONSE map; ok false defers to the
// reference.
func fastNativeResponse(b []byte) (*nativeResponse, bool) {
	r := natReader{in: b}
	pairs, ok := r.mapHead()
	if !ok {
		return nil, false
	}
	n := &nativeResponse{}
	prev := int64(-1)
	for range pairs {
		k, ok := r.key(&prev)
		if !ok || !r.responseField(n, k) {
			return nil, false
		}
	}
	return n, r.pos == len(b)
}

// responseField reads the value of key k into n.
func (r *natReader) responseField(n *nativeResponse, k uint64) bool {
	ok := true
	switch k {
	case 1:
		n.ProtocolVersion, ok = r.uint()
	case 2:
		n.SessionID, ok = r.text()
	case 3:
		n.CallID, ok = r.text()
	case 4:
		n.Status, ok = r.text()
	case 5:
		n.Result, ok = r.item()
	case 6:
		n.Error, ok = r.nativeError()
	case 7:
		n.TokensUsed, ok = r.uint()
	case 8:
		n.DurationMs, ok = r.uint()
	case 9:
		n.TraceID, ok = r.bytes()
	case 10:
		n.CreditsCharged, ok = r.uint()
	case 11:
		n.NodeID, ok = r.text()
	case 12:
		var v bool
		switch {
		case r.pos < len(r.in) && r.in[r.pos] == 0xf5:
			v = true
		case r.pos < len(r.in) && r.in[r.pos] == 0xf4:
		default:
			return false
		}
		r.pos++
		n.IsFinal = &v
	default:
		return false // lifecycle, the deployed dialect's keys, unknown keys
	}
	return ok
}

// nativeError reads the error map {1: code, 2: message}.
func (r *natReader) nativeError() (*NativeError, bool) {
	pairs, ok := r.mapHead()
	if !ok {
		return nil, false
	}
	e := &NativeError{}
	prev := int64(-1)
	for range pairs {
		k, ok := r.key(&prev)
		if !ok {
			return nil, false
		}
		switch k {
		case 1:
			e.Code, ok = r.text()
		case 2:
			e.Message, ok = r.text()
		default:
			return nil, false
		}
		if !ok {
			return nil, false
		}
	}
	return e, true
}

// bstrContent returns the content of a well-formed byte string item.
func bstrContent(item []byte) ([]byte, bool) {
	r := natReader{in: item}
	major, _, n, ok := r.head()
	if !ok || major != 2 {
		return nil, false
	}
	b, ok := r.span(n)
	return b, ok && r.pos == len(item)
}
