package wire

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// decodeCallFast decodes a JSON CALL in one walk, without scanJSON's pass,
// encoding/json's reflection and its second validity pass. It handles the
// common shape only: member names exactly as declared (or names that cannot
// match a field), strings without escapes, plain integers, no nulls in
// typed fields, no billing, no repeated members. Anything else returns
// ok=false and the caller decodes with encoding/json, so every unusual
// input keeps that decoder's exact result and error. The walk accepts
// only what scanJSON accepts (one object, nothing after it, nesting within
// MaxNesting, no repeated member name at the top two levels), so the
// caller need not run scanJSON first. FuzzDecodeCallFast proves both
// paths produce equal Calls, and that the walk never accepts what
// scanJSON rejects.
func decodeCallFast(b []byte, c *Call) bool {
	if len(b) > MaxCallBytes {
		return false
	}
	r := fastReader{b: b}
	var seen uint32
	ok := r.object(func(name []byte) bool {
		f, ok := callField(name, &seen)
		if !ok {
			return false
		}
		return r.callMember(f, c)
	})
	r.ws()
	return ok && r.i == len(b)
}

// Top-level CALL members the fast path knows, as bits of the seen mask.
const (
	cfTaskID = 1 << iota
	cfIntent
	cfPayload
	cfConstraints
	cfAuth
	cfTrace
	cfModel
	cfCallID
	cfSessionID
	cfIdempotencyKey
	cfConf
	cfUnknown = 0 // a member no field matches: skipped
)

var callFields = [...]struct {
	name string
	bit  uint32
}{
	{"task_id", cfTaskID}, {"intent", cfIntent}, {"payload", cfPayload},
	{"constraints", cfConstraints}, {"auth", cfAuth}, {"trace", cfTrace},
	{"model", cfModel}, {"call_id", cfCallID}, {"session_id", cfSessionID},
	{"idempotency_key", cfIdempotencyKey}, {"iicp_conf", cfConf},
	// billing is known to encoding/json but left to it (rare, has a float).
	{"billing", 1 << 31},
}

// callField maps a member name to its bit. ok=false (use encoding/json)
// for a name encoding/json would match case-insensitively, a repeated
// member, billing, or a name the fast path cannot compare (escapes,
// non-ASCII: encoding/json folds Unicode).
func callField(name []byte, seen *uint32) (uint32, bool) {
	for _, f := range callFields {
		if string(name) == f.name {
			if f.bit == 1<<31 || *seen&f.bit != 0 {
				return 0, false
			}
			*seen |= f.bit
			return f.bit, true
		}
	}
	if !plainName(name) {
		return 0, false
	}
	for _, f := range callFields {
		if bytes.EqualFold(name, []byte(f.name)) {
			return 0, false
		}
	}
	return cfUnknown, true
}

// plainName: printable ASCII without escapes.
func plainName(name []byte) bool {
	for _, c := range name {
		if c >= utf8.RuneSelf || c == '\\' {
			return false
		}
	}
	return true
}

func (r *fastReader) callMember(f uint32, c *Call) bool {
	var ok bool
	switch f {
	case cfTaskID:
		c.TaskID, ok = r.str()
	case cfIntent:
		c.Intent, ok = r.str()
	case cfModel:
		c.Model, ok = r.str()
	case cfCallID:
		c.CallID, ok = r.str()
	case cfSessionID:
		c.SessionID, ok = r.str()
	case cfIdempotencyKey:
		c.IdempotencyKey, ok = r.str()
	case cfPayload:
		c.Payload, ok = r.raw()
	case cfConf:
		c.Conf, ok = r.raw()
	case cfConstraints:
		ok = r.constraints(&c.Constraints)
	case cfAuth:
		c.Auth = &Auth{}
		ok = r.auth(c.Auth)
	case cfTrace:
		c.Trace = &Trace{}
		ok = r.trace(c.Trace)
	default:
		ok = r.skip()
	}
	return ok
}

func (r *fastReader) auth(a *Auth) bool {
	var seen uint32
	return r.object(func(name []byte) bool {
		switch f, ok := memberBit(name, &seen, "node_token"); {
		case !ok:
			return false
		case f == 1:
			a.NodeToken, ok = r.str()
			return ok
		}
		return r.skip()
	})
}

func (r *fastReader) trace(t *Trace) bool {
	var seen uint32
	return r.object(func(name []byte) bool {
		f, ok := memberBit(name, &seen, "trace_id", "origin_node")
		switch {
		case !ok:
			return false
		case f == 1:
			t.TraceID, ok = r.str()
		case f == 2:
			t.OriginNode, ok = r.str()
		default:
			ok = r.skip()
		}
		return ok
	})
}

func (r *fastReader) constraints(k *Constraints) bool {
	var seen uint32
	return r.object(func(name []byte) bool {
		f, ok := memberBit(name, &seen, "timeout_ms", "qos", "priority", "consensus",
			"region", "max_tokens", "required_profiles", "optional_profiles")
		switch {
		case !ok:
			return false
		case f == 1:
			k.TimeoutMs, ok = r.int64()
		case f == 2:
			k.QoS, ok = r.str()
		case f == 4:
			k.Priority, ok = r.str()
		case f == 8:
			k.Consensus, ok = r.str()
		case f == 16:
			k.Region, ok = r.str()
		case f == 32:
			k.MaxTokens, ok = r.int64()
		case f == 64:
			k.RequiredProfiles, ok = r.strings()
		case f == 128:
			k.OptionalProfiles, ok = r.strings()
		default:
			ok = r.skip()
		}
		return ok
	})
}

// memberBit is callField for a nested object: bit 1<<i for names[i], 0 for
// a name no field matches, ok=false for what encoding/json must decide.
func memberBit(name []byte, seen *uint32, names ...string) (uint32, bool) {
	for i, n := range names {
		if string(name) == n {
			bit := uint32(1) << i
			if *seen&bit != 0 {
				return 0, false
			}
			*seen |= bit
			return bit, true
		}
	}
	if !plainName(name) {
		return 0, false
	}
	for _, n := range names {
		if bytes.EqualFold(name, []byte(n)) {
			return 0, false
		}
	}
	return 0, true
}

// fastReader walks JSON strictly: what it accepts, encoding/json and
// scanJSON accept (literal grammar, string escapes, nesting within
// MaxNesting, no repeated member name in an object at depth ≤ 2, compared
// as raw bytes like scanJSON does).
type fastReader struct {
	b     []byte
	i     int
	depth int // objects and arrays open around r.i
	// names holds the member names (bounds in b) of the open objects at
	// depth 1 and 2, for the repeated-member check.
	// int32 bounds: a CALL is at most MaxCallBytes (4 MiB); small, as
	// the walk runs on the request goroutine's stack.
	names  [2][maxFastNames][2]int32
	nNames [2]int
}

// maxFastNames bounds the members of an object at depth ≤ 2 the walk
// checks for repeats; a larger object is left to scanJSON and
// encoding/json.
const maxFastNames = 16

// enter opens an object or array; false beyond MaxNesting.
func (r *fastReader) enter() bool {
	r.depth++
	return r.depth <= MaxNesting
}

// newName records an object member's name at depth ≤ 2: false if the
// object already has it, or more members than the walk checks.
func (r *fastReader) newName(start, end int) bool {
	if r.depth > 2 {
		return true
	}
	d := r.depth - 1
	name := r.b[start:end]
	for _, nb := range r.names[d][:r.nNames[d]] {
		if string(r.b[nb[0]:nb[1]]) == string(name) {
			return false
		}
	}
	if r.nNames[d] == maxFastNames {
		return false
	}
	r.names[d][r.nNames[d]] = [2]int32{int32(start), int32(end)}
	r.nNames[d]++
	return true
}

func (r *fastReader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// object walks an object, calling member with each name (raw bytes
// between the quotes) positioned at the member's value.
func (r *fastReader) object(member func(name []byte) bool) bool {
	r.ws()
	if r.i >= len(r.b) || r.b[r.i] != '{' || !r.enter() {
		return false
	}
	if r.depth <= 2 {
		r.nNames[r.depth-1] = 0
	}
	r.i++
	r.ws()
	if r.i < len(r.b) && r.b[r.i] == '}' {
		r.i++
		r.depth--
		return true
	}
	for {
		r.ws()
		start, end, ok := r.rawString()
		if !ok || !r.newName(start, end) {
			return false
		}
		r.ws()
		if r.i >= len(r.b) || r.b[r.i] != ':' {
			return false
		}
		r.i++
		r.ws()
		if !member(r.b[start:end]) {
			return false
		}
		r.ws()
		if r.i >= len(r.b) {
			return false
		}
		switch r.b[r.i] {
		case ',':
			r.i++
		case '}':
			r.i++
			r.depth--
			return true
		default:
			return false
		}
	}
}

// rawString consumes a string at r.i with strictly valid escapes and
// returns the content bounds.
func (r *fastReader) rawString() (start, end int, ok bool) {
	if r.i >= len(r.b) || r.b[r.i] != '"' {
		return 0, 0, false
	}
	r.i++
	start = r.i
	for r.i < len(r.b) {
		switch c := r.b[r.i]; {
		case c == '"':
			end = r.i
			r.i++
			return start, end, true
		case c < 0x20:
			return 0, 0, false
		case c == '\\':
			if !r.escape() {
				return 0, 0, false
			}
		default:
			r.i++
		}
	}
	return 0, 0, false
}

// escape consumes one escape sequence as encoding/json accepts it.
func (r *fastReader) escape() bool {
	if r.i+1 >= len(r.b) {
		return false
	}
	switch r.b[r.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		r.i += 2
		return true
	case 'u':
		if r.i+6 > len(r.b) {
			return false
		}
		for _, h := range r.b[r.i+2 : r.i+6] {
			if !isHex(h) {
				return false
			}
		}
		r.i += 6
		return true
	}
	return false
}

// str decodes a string without escapes whose bytes are valid UTF-8
// (encoding/json would rewrite either).
func (r *fastReader) str() (string, bool) {
	start, end, ok := r.rawString()
	if !ok {
		return "", false
	}
	s := r.b[start:end]
	if bytes.IndexByte(s, '\\') >= 0 || !utf8.Valid(s) {
		return "", false
	}
	return string(s), true
}

// strings decodes an array of plain strings ([] is an empty, non-nil slice
// as with encoding/json).
func (r *fastReader) strings() ([]string, bool) {
	if r.i >= len(r.b) || r.b[r.i] != '[' {
		return nil, false
	}
	r.i++
	out := []string{}
	r.ws()
	if r.i < len(r.b) && r.b[r.i] == ']' {
		r.i++
		return out, true
	}
	for {
		r.ws()
		s, ok := r.str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		r.ws()
		if r.i >= len(r.b) {
			return nil, false
		}
		switch r.b[r.i] {
		case ',':
			r.i++
		case ']':
			r.i++
			return out, true
		default:
			return nil, false
		}
	}
}

// int64 decodes -?(0|[1-9][0-9]*) of at most 18 digits (always in range).
func (r *fastReader) int64() (int64, bool) {
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	digits := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	n := r.i - digits
	if n == 0 || n > 18 || n > 1 && r.b[digits] == '0' {
		return 0, false
	}
	if r.i < len(r.b) {
		if c := r.b[r.i]; c == '.' || c == 'e' || c == 'E' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(r.b[start:r.i]), 10, 64)
	return v, err == nil
}

// raw copies one strictly valid JSON value, as json.RawMessage keeps it.
func (r *fastReader) raw() (json.RawMessage, bool) {
	start := r.i
	if !r.skip() {
		return nil, false
	}
	return append(json.RawMessage(nil), r.b[start:r.i]...), true
}

// skip consumes one JSON value, checking the grammar encoding/json checks
// and the nesting bound.
func (r *fastReader) skip() bool {
	if r.i >= len(r.b) {
		return false
	}
	switch c := r.b[r.i]; {
	case c == '{':
		return r.object(func([]byte) bool { return r.skip() })
	case c == '[':
		return r.array()
	case c == '"':
		_, _, ok := r.rawString()
		return ok
	case c == 't':
		return r.word("true")
	case c == 'f':
		return r.word("false")
	case c == 'n':
		return r.word("null")
	}
	return r.number()
}

func (r *fastReader) array() bool {
	if !r.enter() {
		return false
	}
	r.i++ // '['
	r.ws()
	if r.i < len(r.b) && r.b[r.i] == ']' {
		r.i++
		r.depth--
		return true
	}
	for {
		r.ws()
		if !r.skip() {
			return false
		}
		r.ws()
		if r.i >= len(r.b) {
			return false
		}
		switch r.b[r.i] {
		case ',':
			r.i++
		case ']':
			r.i++
			r.depth--
			return true
		default:
			return false
		}
	}
}

func (r *fastReader) word(w string) bool {
	if !bytes.HasPrefix(r.b[r.i:], []byte(w)) {
		return false
	}
	r.i += len(w)
	return true
}

// number consumes -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?.
func (r *fastReader) number() bool {
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	switch {
	case r.i < len(r.b) && r.b[r.i] == '0':
		r.i++
	case r.digits() == 0:
		return false
	}
	if r.i < len(r.b) && r.b[r.i] == '.' {
		r.i++
		if r.digits() == 0 {
			return false
		}
	}
	if r.i < len(r.b) && (r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		r.i++
		if r.i < len(r.b) && (r.b[r.i] == '+' || r.b[r.i] == '-') {
			r.i++
		}
		if r.digits() == 0 {
			return false
		}
	}
	return true
}

func (r *fastReader) digits() int {
	start := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	return r.i - start
}
