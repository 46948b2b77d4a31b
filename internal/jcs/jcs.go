package jcs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxCanonicalDepth bounds nesting; federation event payloads are two or
// three levels deep, so 64 only exists to stop stack-depth abuse.
const maxCanonicalDepth = 64

// ErrNotCanonicalizable reports input that has no RFC 8785 form.
var ErrNotCanonicalizable = errors.New("json not canonicalizable")

// Canonicalize returns the RFC 8785 form of the JSON document in b.
func Canonicalize(b []byte) ([]byte, error) {
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%w: invalid UTF-8", ErrNotCanonicalizable)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out bytes.Buffer
	out.Grow(len(b))
	if err := canonValue(dec, &out, 0); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data", ErrNotCanonicalizable)
	}
	return out.Bytes(), nil
}

// canonValue writes the next JSON value from dec.
func canonValue(dec *json.Decoder, out *bytes.Buffer, depth int) error {
	if depth > maxCanonicalDepth {
		return fmt.Errorf("%w: nesting deeper than %d", ErrNotCanonicalizable, maxCanonicalDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotCanonicalizable, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return canonObject(dec, out, depth)
		}
		if t == '[' {
			return canonArray(dec, out, depth)
		}
		return fmt.Errorf("%w: unexpected %q", ErrNotCanonicalizable, t)
	case string:
		writeCanonString(out, t)
	case json.Number:
		s, err := canonNumber(t)
		if err != nil {
			return err
		}
		out.WriteString(s)
	case bool:
		out.WriteString(strconv.FormatBool(t))
	case nil:
		out.WriteString("null")
	default:
		return fmt.Errorf("%w: unexpected token", ErrNotCanonicalizable)
	}
	return nil
}

type member struct {
	key   string
	units []uint16 // sort key: RFC 8785 §3.2.3 orders by UTF-16 code units
	val   []byte
}

func canonObject(dec *json.Decoder, out *bytes.Buffer, depth int) error {
	var members []member
	seen := map[string]struct{}{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNotCanonicalizable, err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%w: object key is not a string", ErrNotCanonicalizable)
		}
		if _, dup := seen[key]; dup {
			return fmt.Errorf("%w: duplicate member name", ErrNotCanonicalizable)
		}
		seen[key] = struct{}{}
		var val bytes.Buffer
		if err := canonValue(dec, &val, depth+1); err != nil {
			return err
		}
		members = append(members, member{key: key, units: utf16.Encode([]rune(key)), val: val.Bytes()})
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return fmt.Errorf("%w: %v", ErrNotCanonicalizable, err)
	}
	slices.SortFunc(members, func(a, b member) int { return slices.Compare(a.units, b.units) })
	out.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			out.WriteByte(',')
		}
		writeCanonString(out, m.key)
		out.WriteByte(':')
		out.Write(m.val)
	}
	out.WriteByte('}')
	return nil
}

func canonArray(dec *json.Decoder, out *bytes.Buffer, depth int) error {
	out.WriteByte('[')
	for i := 0; dec.More(); i++ {
		if i > 0 {
			out.WriteByte(',')
		}
		if err := canonValue(dec, out, depth+1); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // closing ']'
		return fmt.Errorf("%w: %v", ErrNotCanonicalizable, err)
	}
	out.WriteByte(']')
	return nil
}

// writeCanonString writes s as ECMAScript JSON.stringify does (RFC 8785
// §3.2.2.2): only '"', '\\' and control characters are escaped, with the
// short forms where they exist and lowercase \u00xx otherwise.
func writeCanonString(out *bytes.Buffer, s string) {
	const hexDigits = "0123456789abcdef"
	out.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			out.WriteString(`\"`)
		case c == '\\':
			out.WriteString(`\\`)
		case c == '\b':
			out.WriteString(`\b`)
		case c == '\f':
			out.WriteString(`\f`)
		case c == '\n':
			out.WriteString(`\n`)
		case c == '\r':
			out.WriteString(`\r`)
		case c == '\t':
			out.WriteString(`\t`)
		case c < 0x20:
			out.WriteString(`\u00`)
			out.WriteByte(hexDigits[c>>4])
			out.WriteByte(hexDigits[c&0xf])
		default:
			out.WriteByte(c)
		}
	}
	out.WriteByte('"')
}

// canonNumber renders n as ECMAScript Number.prototype.toString does
// (RFC 8785 §3.2.2.3): shortest round-trip digits, plain notation for
// exponents in [-7, 21), otherwise d.ddde±x.
func canonNumber(n json.Number) (string, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("%w: number out of IEEE 754 range", ErrNotCanonicalizable)
	}
	if f == 0 {
		return "0", nil // also -0
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// 'e' with precision -1 gives the shortest digits that round-trip:
	// "d.dddde±XX".
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expStr, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expStr)
	k, pt := len(digits), exp+1 // pt: decimal point position
	var s string
	switch {
	case k <= pt && pt <= 21:
		s = digits + strings.Repeat("0", pt-k)
	case 0 < pt && pt <= 21:
		s = digits[:pt] + "." + digits[pt:]
	case -6 < pt && pt <= 0:
		s = "0." + strings.Repeat("0", -pt) + digits
	default:
		expSign := "+"
		if pt-1 < 0 {
			expSign = "-"
		}
		frac := ""
		if k > 1 {
			frac = "." + digits[1:]
		}
		s = digits[:1] + frac + "e" + expSign + strconv.Itoa(abs(pt-1))
	}
	return sign + s, nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
