package wire

import (
	"encoding/base64"
	"math"
	"strconv"
	"unicode/utf8"
)

// The direct CBOR → JSON transcoder (see cbor_fast.go).

// ---- CBOR → JSON ----------------------------------------------------------

type c2j struct {
	in  []byte
	pos int
	out []byte
}

// fastCBORToJSON is cborToJSON for plain items; ok false defers to the
// reference.
func fastCBORToJSON(item []byte) ([]byte, bool) {
	p := c2j{in: item, out: make([]byte, 0, len(item)+len(item)/4+8)}
	if !p.value(0) || p.pos != len(p.in) {
		return nil, false
	}
	return p.out, true
}

// head reads a definite-length head: major type, additional info, argument.
func (p *c2j) head() (major, ai byte, arg uint64, ok bool) {
	major, ai, arg, p.pos, ok = cborHead(p.in, p.pos)
	return major, ai, arg, ok
}

// cborHead reads the definite-length CBOR head at in[pos]: major type,
// additional info, argument and the position after it. Reserved values
// and indefinite lengths are not ok (the fast codecs decline them and the
// reflective path decides).
func cborHead(in []byte, pos int) (major, ai byte, arg uint64, next int, ok bool) {
	if pos >= len(in) {
		return 0, 0, 0, pos, false
	}
	b := in[pos]
	pos++
	major, ai = b>>5, b&0x1f
	if ai < 24 {
		return major, ai, uint64(ai), pos, true
	}
	n := 0
	switch ai {
	case 24:
		n = 1
	case 25:
		n = 2
	case 26:
		n = 4
	case 27:
		n = 8
	default:
		return 0, 0, 0, pos, false
	}
	if pos+n > len(in) {
		return 0, 0, 0, pos, false
	}
	for _, c := range in[pos : pos+n] {
		arg = arg<<8 | uint64(c)
	}
	return major, ai, arg, pos + n, true
}

func (p *c2j) value(depth int) bool {
	if depth > fastDepth {
		return false
	}
	major, ai, arg, ok := p.head()
	if !ok {
		return false
	}
	switch major {
	case 0:
		p.out = strconv.AppendUint(p.out, arg, 10)
	case 1:
		if arg > math.MaxInt64 {
			return false
		}
		p.out = strconv.AppendInt(p.out, -1-int64(arg), 10)
	case 2:
		b, ok := p.bytes(arg)
		if !ok {
			return false
		}
		p.out = append(p.out, '"')
		p.out = base64.StdEncoding.AppendEncode(p.out, b)
		p.out = append(p.out, '"')
	case 3:
		s, ok := p.bytes(arg)
		if !ok || !utf8.Valid(s) {
			return false
		}
		p.out = appendJSONString(p.out, s)
	case 4:
		return p.array(arg, depth)
	case 5:
		return p.object(arg, depth)
	case 7:
		return p.simple(ai, arg)
	default:
		return false // tags
	}
	return true
}

func (p *c2j) bytes(n uint64) ([]byte, bool) {
	if n > uint64(len(p.in)-p.pos) {
		return nil, false
	}
	b := p.in[p.pos : p.pos+int(n)]
	p.pos += int(n)
	return b, true
}

func (p *c2j) array(n uint64, depth int) bool {
	if n > MaxCBORArray {
		return false
	}
	p.out = append(p.out, '[')
	for i := uint64(0); i < n; i++ {
		if i > 0 {
			p.out = append(p.out, ',')
		}
		if !p.value(depth + 1) {
			return false
		}
	}
	p.out = append(p.out, ']')
	return true
}

// object writes a text-keyed map with its members sorted by key, as
// encoding/json orders a map[string]any; raw key bytes are kept per
// member so the sort compares keys, not their escaped forms.
func (p *c2j) object(n uint64, depth int) bool {
	if n > MaxCBORMap {
		return false
	}
	p.out = append(p.out, '{')
	start := len(p.out)
	// Small objects (most of them) sort on the stack.
	var spanBuf [8]span
	var keyBuf [8][]byte
	spans, keys := spanBuf[:0], keyBuf[:0]
	if n > uint64(len(spanBuf)) {
		spans, keys = make([]span, 0, n), make([][]byte, 0, n)
	}
	for i := uint64(0); i < n; i++ {
		major, _, arg, ok := p.head()
		if !ok || major != 3 {
			return false
		}
		k, ok := p.bytes(arg)
		if !ok || !utf8.Valid(k) {
			return false
		}
		k0 := len(p.out)
		p.out = appendJSONString(p.out, k)
		p.out = append(p.out, ':')
		if !p.value(depth + 1) {
			return false
		}
		p.out = append(p.out, ',')
		spans = append(spans, span{k0: k0, k1: len(keys), end: len(p.out)})
		keys = append(keys, k)
	}
	out := p.out
	if !sortMembers(out, start, spans, func(s span) []byte { return keys[s.k1] }) {
		return false // duplicate keys: the reference refuses them
	}
	if n > 0 {
		p.out = p.out[:len(p.out)-1] // the last member's comma
	}
	p.out = append(p.out, '}')
	return true
}

func (p *c2j) simple(ai byte, arg uint64) bool {
	var f float64
	switch ai {
	case 20:
		p.out = append(p.out, "false"...)
		return true
	case 21:
		p.out = append(p.out, "true"...)
		return true
	case 22:
		p.out = append(p.out, "null"...)
		return true
	case 25:
		f = float16to64(uint16(arg))
	case 26:
		f = float64(math.Float32frombits(uint32(arg)))
	case 27:
		f = math.Float64frombits(arg)
	default:
		return false // undefined and other simple values
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return false
	}
	p.out = appendJSONFloat(p.out, f)
	return true
}

// float16to64 widens an IEEE 754 half-precision value.
func float16to64(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, frac := int(h>>10&0x1f), float64(h&0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(1024+frac, exp-25)
}

// appendJSONFloat formats f as encoding/json formats a float64.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendJSONString quotes valid UTF-8 s as encoding/json does with HTML
// escaping off.
func appendJSONString(b, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == '\u2028' || r == '\u2029' {
				b = append(b, s[start:i]...)
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
				start = i + size
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
