package wire

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Direct JSON ↔ CBOR transcoders for result payloads (the mesh's hot
// path): they walk the input once and write the output, with no `any` tree
// and no reflection. They handle the plain, well-formed documents real
// payloads are; anything else — duplicate keys, lone surrogates, tags,
// undefined, trailing data, extreme depth — makes them give up (ok false)
// and the reference transcoders in cbor.go decide, so the accepted inputs,
// the errors and the output bytes are the reference's by construction
// (FuzzTranscodeMatchesReference checks the fast paths against them).

// fastDepth is where the fast paths give up on nesting, below MaxNesting.
const fastDepth = MaxNesting - 2

// span is one map member in the output buffer: key bytes [k0,k1), the
// whole member [k0,end).
type span struct{ k0, k1, end int }

// sortMembers reorders out[start:] (members back to back, as spans
// describe) by key with less; dup reports equal keys (ok false).
func sortMembers(out []byte, start int, spans []span, key func(s span) []byte) bool {
	if len(spans) < 2 {
		return true
	}
	sorted := true
	for i := 1; i < len(spans); i++ {
		c := bytes.Compare(key(spans[i-1]), key(spans[i]))
		if c == 0 {
			return false
		}
		if c > 0 {
			sorted = false
		}
	}
	if sorted {
		return true
	}
	slices.SortFunc(spans, func(a, b span) int { return bytes.Compare(key(a), key(b)) })
	for i := 1; i < len(spans); i++ {
		if bytes.Equal(key(spans[i-1]), key(spans[i])) {
			return false
		}
	}
	var buf [512]byte // small objects are reordered on the stack
	tmp := buf[:0]
	for _, s := range spans {
		tmp = append(tmp, out[s.k0:s.end]...)
	}
	copy(out[start:], tmp)
	return true
}

// ---- JSON → CBOR ----------------------------------------------------------

type j2c struct {
	in  []byte
	pos int
	out []byte
}

// fastJSONToCBOR is jsonToCBOR for plain documents; ok false defers to
// the reference.
func fastJSONToCBOR(raw []byte) ([]byte, bool) {
	p := j2c{in: raw, out: make([]byte, 0, len(raw))}
	p.ws()
	if !p.value(0) {
		return nil, false
	}
	p.ws()
	if p.pos != len(p.in) {
		return nil, false
	}
	return p.out, true
}

func (p *j2c) ws() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *j2c) lit(s string) bool {
	if !bytes.HasPrefix(p.in[p.pos:], []byte(s)) {
		return false
	}
	p.pos += len(s)
	return true
}

func (p *j2c) value(depth int) bool {
	if p.pos >= len(p.in) || depth > fastDepth {
		return false
	}
	switch c := p.in[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.str()
	case c == 't':
		p.out = append(p.out, 0xf5)
		return p.lit("true")
	case c == 'f':
		p.out = append(p.out, 0xf4)
		return p.lit("false")
	case c == 'n':
		p.out = append(p.out, 0xf6)
		return p.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return false
}

func (p *j2c) object(depth int) bool {
	p.pos++
	start := len(p.out)
	var spanBuf [8]span // small objects (most of them) sort on the stack
	spans := spanBuf[:0]
	p.ws()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		p.out = append(p.out, 0xa0)
		return true
	}
	for {
		p.ws()
		if p.pos >= len(p.in) || p.in[p.pos] != '"' {
			return false
		}
		k0 := len(p.out)
		if !p.str() {
			return false
		}
		k1 := len(p.out)
		p.ws()
		if p.pos >= len(p.in) || p.in[p.pos] != ':' {
			return false
		}
		p.pos++
		p.ws()
		if !p.value(depth + 1) {
			return false
		}
		spans = append(spans, span{k0, k1, len(p.out)})
		more, ok := p.sep('}')
		if !ok {
			return false
		}
		if !more {
			break
		}
	}
	if len(spans) > MaxCBORMap {
		return false
	}
	out := p.out
	if !sortMembers(out, start, spans, func(s span) []byte { return out[s.k0:s.k1] }) {
		return false // duplicate keys: the reference keeps the last
	}
	p.out = insertHead(p.out, start, 5, uint64(len(spans)))
	return true
}

// sep reads what follows a member or an element: ',' (more) or the
// closing byte of its object or array; anything else is not ok.
func (p *j2c) sep(closing byte) (more, ok bool) {
	p.ws()
	if p.pos >= len(p.in) {
		return false, false
	}
	switch p.in[p.pos] {
	case ',':
		p.pos++
		return true, true
	case closing:
		p.pos++
		return false, true
	}
	return false, false
}

func (p *j2c) array(depth int) bool {
	p.pos++
	start := len(p.out)
	n := 0
	p.ws()
	if p.pos < len(p.in) && p.in[p.pos] == ']' {
		p.pos++
		p.out = append(p.out, 0x80)
		return true
	}
	for {
		p.ws()
		if !p.value(depth + 1) {
			return false
		}
		n++
		more, ok := p.sep(']')
		if !ok {
			return false
		}
		if !more {
			break
		}
	}
	if n > MaxCBORArray {
		return false
	}
	p.out = insertHead(p.out, start, 4, uint64(n))
	return true
}

// insertHead inserts a CBOR head before out[start:].
func insertHead(out []byte, start int, major byte, n uint64) []byte {
	var h [9]byte
	head := appendHead(h[:0], major, n)
	out = append(out, head...)
	copy(out[start+len(head):], out[start:len(out)-len(head)])
	copy(out[start:], head)
	return out
}

// appendHead appends the shortest CBOR head for major type major, argument n.
func appendHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return append(b, m|25, byte(n>>8), byte(n))
	case n <= math.MaxUint32:
		return append(b, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// str appends a JSON string as CBOR text: valid UTF-8 only, escapes
// decoded; a lone surrogate defers to the reference.
func (p *j2c) str() bool {
	p.pos++
	start := p.pos
	for p.pos < len(p.in) {
		c := p.in[p.pos]
		switch {
		case c == '"':
			s := p.in[start:p.pos]
			p.pos++
			if !utf8.Valid(s) {
				return false
			}
			p.out = appendHead(p.out, 3, uint64(len(s)))
			p.out = append(p.out, s...)
			return true
		case c == '\\':
			p.pos = start - 1
			return p.escapedStr()
		case c < 0x20:
			return false
		}
		p.pos++
	}
	return false
}

// escapedStr decodes a string with escapes (p.pos at its opening quote).
func (p *j2c) escapedStr() bool {
	p.pos++
	var buf []byte
	for p.pos < len(p.in) {
		c := p.in[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !utf8.Valid(buf) {
				return false
			}
			p.out = appendHead(p.out, 3, uint64(len(buf)))
			p.out = append(p.out, buf...)
			return true
		case c < 0x20:
			return false
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(p.in) {
			return false
		}
		e := p.in[p.pos+1]
		p.pos += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return false
			}
			if utf16.IsSurrogate(r) {
				if !p.lit(`\u`) {
					return false
				}
				r2, ok := p.hex4()
				if r = utf16.DecodeRune(r, r2); !ok || r == utf8.RuneError {
					return false
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return false
		}
	}
	return false
}

func (p *j2c) hex4() (rune, bool) {
	if p.pos+4 > len(p.in) {
		return 0, false
	}
	var r rune
	for _, c := range p.in[p.pos : p.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.pos += 4
	return r, true
}

// number appends a JSON number as the reference does: an integer if it
// parses as int64 or uint64, else the shortest exact float.
func (p *j2c) number() bool {
	start := p.pos
	if p.in[p.pos] == '-' {
		p.pos++
	}
	intStart := p.pos
	p.digits()
	if p.pos == intStart || (p.in[intStart] == '0' && p.pos-intStart > 1) {
		return false
	}
	integer := true
	if p.pos < len(p.in) && p.in[p.pos] == '.' {
		p.pos++
		d := p.pos
		if p.digits(); p.pos == d {
			return false
		}
		integer = false
	}
	if p.pos < len(p.in) && (p.in[p.pos] == 'e' || p.in[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.in) && (p.in[p.pos] == '+' || p.in[p.pos] == '-') {
			p.pos++
		}
		d := p.pos
		if p.digits(); p.pos == d {
			return false
		}
		integer = false
	}
	text := string(p.in[start:p.pos])
	if integer {
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			if i >= 0 {
				p.out = appendHead(p.out, 0, uint64(i))
			} else {
				p.out = appendHead(p.out, 1, uint64(-1-i))
			}
			return true
		}
		if u, err := strconv.ParseUint(text, 10, 64); err == nil {
			p.out = appendHead(p.out, 0, u)
			return true
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return false
	}
	b, err := encMode.Marshal(f)
	if err != nil {
		return false
	}
	p.out = append(p.out, b...)
	return true
}

func (p *j2c) digits() {
	for p.pos < len(p.in) && p.in[p.pos] >= '0' && p.in[p.pos] <= '9' {
		p.pos++
	}
}
