package wire

import (
	"bytes"
	"encoding/binary"
	"math"
)

// checkDeterministic verifies that b is exactly one well-formed CBOR data
// item in RFC 8949 §4.2.1 core deterministic form: shortest argument
// encodings, shortest exact floats (NaN as f97e00), definite lengths only,
// map keys in strictly increasing bytewise order (which also excludes
// duplicates), within the nesting and count caps. iicp-framing.md §4.1 and
// iicp-cbor-wire.md §1.1 require receivers to reject anything else. The walk
// does not allocate.
func checkDeterministic(b []byte) *Error {
	n, err := detItem(b, 0)
	if err != nil {
		return err
	}
	if n != len(b) {
		return cborErr("has trailing bytes after the CBOR item")
	}
	return nil
}

func notDet(msg string) *Error {
	e := invalid("body", "is not deterministic CBOR: "+msg)
	e.close = CloseInvalidPayload
	return e
}

// detHead decodes an item head, returning major type, additional info,
// argument and head length, and checks the shortest-form rule for integer
// arguments (floats are checked by the caller).
func detHead(b []byte) (major, ai byte, arg uint64, n int, err *Error) {
	if len(b) == 0 {
		return 0, 0, 0, 0, cborErr("is truncated")
	}
	major, ai = b[0]>>5, b[0]&0x1f
	switch {
	case ai < 24:
		return major, ai, uint64(ai), 1, nil
	case ai == 31 && major >= 2 && major <= 5:
		return 0, 0, 0, 0, notDet("indefinite length")
	case ai == 31: // stray break or indefinite int/tag: malformed
		return 0, 0, 0, 0, cborErr("is malformed")
	case ai > 27:
		return 0, 0, 0, 0, cborErr("uses a reserved additional-information value")
	}
	size := 1 << (ai - 24)
	if len(b) < 1+size {
		return 0, 0, 0, 0, cborErr("is truncated")
	}
	switch size {
	case 1:
		arg = uint64(b[1])
	case 2:
		arg = uint64(binary.BigEndian.Uint16(b[1:]))
	case 4:
		arg = uint64(binary.BigEndian.Uint32(b[1:]))
	default:
		arg = binary.BigEndian.Uint64(b[1:])
	}
	if major != 7 {
		min := [4]uint64{24, 1 << 8, 1 << 16, 1 << 32}[ai-24]
		if arg < min {
			return 0, 0, 0, 0, notDet("non-shortest integer or length")
		}
	}
	return major, ai, arg, 1 + size, nil
}

// detItem checks one item at the front of b and returns its length.
func detItem(b []byte, depth int) (int, *Error) {
	if depth > MaxNesting {
		return 0, invalid("body", "nests deeper than 64 levels")
	}
	major, ai, arg, n, err := detHead(b)
	if err != nil {
		return 0, err
	}
	switch major {
	case 0, 1:
		return n, nil
	case 2, 3:
		if arg > uint64(len(b)-n) {
			return 0, cborErr("is truncated")
		}
		return n + int(arg), nil
	case 4:
		return detArray(b, n, arg, depth)
	case 5:
		return detMap(b, n, arg, depth)
	case 6:
		m, err := detItem(b[n:], depth+1)
		return n + m, err
	default:
		return detSimple(b, ai, arg, n)
	}
}

func detArray(b []byte, n int, count uint64, depth int) (int, *Error) {
	if count > MaxCBORArray || count > uint64(len(b)-n) {
		return 0, cborErr("array is too large or truncated")
	}
	for i := uint64(0); i < count; i++ {
		m, err := detItem(b[n:], depth+1)
		if err != nil {
			return 0, err
		}
		n += m
	}
	return n, nil
}

func detMap(b []byte, n int, pairs uint64, depth int) (int, *Error) {
	if pairs > MaxCBORMap || pairs > uint64(len(b)-n)/2 {
		return 0, cborErr("map is too large or truncated")
	}
	var prev []byte
	for i := uint64(0); i < pairs; i++ {
		k, err := detItem(b[n:], depth+1)
		if err != nil {
			return 0, err
		}
		key := b[n : n+k]
		if prev != nil && bytes.Compare(prev, key) >= 0 {
			if bytes.Equal(prev, key) {
				return 0, cborErr("repeats a map key")
			}
			return 0, notDet("map keys out of order")
		}
		prev = key
		n += k
		v, err := detItem(b[n:], depth+1)
		if err != nil {
			return 0, err
		}
		n += v
	}
	return n, nil
}

// detSimple checks major type 7: simple values and floats in shortest form.
func detSimple(b []byte, ai byte, arg uint64, n int) (int, *Error) {
	switch ai {
	case 24:
		if arg < 32 {
			return 0, cborErr("uses an invalid simple value")
		}
	case 25:
		h := uint16(arg)
		if h&0x7c00 == 0x7c00 && h&0x03ff != 0 && h != 0x7e00 {
			return 0, notDet("non-canonical NaN")
		}
	case 26:
		f := math.Float32frombits(uint32(arg))
		if f != f || fitsFloat16(f) {
			return 0, notDet("float32 that fits a shorter form")
		}
	case 27:
		f := math.Float64frombits(arg)
		if f != f || float64(float32(f)) == f {
			return 0, notDet("float64 that fits a shorter form")
		}
	}
	return n, nil
}

// fitsFloat16 reports whether a non-NaN float32 is exactly representable as
// an IEEE 754 half (normal, subnormal, zero or infinity).
func fitsFloat16(f float32) bool {
	bits := math.Float32bits(f)
	exp := int(bits>>23&0xff) - 127
	mant := bits & 0x7fffff
	switch {
	case bits&0x7fffffff == 0, exp == 128: // ±0, ±Inf
		return true
	case exp == -127: // float32 subnormal: far below the half range
		return false
	case exp >= -14 && exp <= 15: // half normal: 10 mantissa bits
		return mant&0x1fff == 0
	case exp >= -24 && exp < -14: // half subnormal: value = k·2⁻²⁴, k < 1024
		m := mant | 1<<23
		shift := uint(-(exp + 1)) // k = m >> shift must be exact
		return m&(1<<shift-1) == 0
	}
	return false
}
