package httpapi

// compactResult appends src to dst the way json.Marshal writes a
// json.RawMessage: validated, without insignificant whitespace. It takes
// only what that copy leaves byte for byte (no '<', '>', '&', U+2028 or
// U+2029 to escape) and nests at most maxCompactDepth deep; ok=false for
// anything else, invalid JSON included, and the caller then uses the
// general encoder. One pass replaces the HTML-escape check and
// json.Compact's state machine (issue 11 item 9); FuzzCompactResult holds
// it to json.Compact.
func compactResult(dst, src []byte) ([]byte, bool) {
	c := compactor{src: src, dst: dst}
	c.ws()
	if !c.value(0) {
		return dst, false
	}
	if c.ws(); c.i != len(src) {
		return dst, false
	}
	return c.dst, true
}

// maxCompactDepth bounds the fast path's recursion; deeper results (rare)
// go to encoding/json, whose own limit is 10000.
const maxCompactDepth = 64

type compactor struct {
	src, dst []byte
	i        int
}

// ws skips insignificant whitespace.
func (c *compactor) ws() {
	for c.i < len(c.src) {
		switch c.src[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

// value copies one value starting at src[i] (whitespace already skipped).
func (c *compactor) value(depth int) bool {
	if c.i >= len(c.src) {
		return false
	}
	switch b := c.src[c.i]; {
	case b == '{' || b == '[':
		return depth < maxCompactDepth && c.container(depth)
	case b == '"':
		return c.str()
	case b == 't':
		return c.lit("true")
	case b == 'f':
		return c.lit("false")
	case b == 'n':
		return c.lit("null")
	case b == '-' || b >= '0' && b <= '9':
		return c.num()
	}
	return false
}

// container copies an object or array.
func (c *compactor) container(depth int) bool {
	open := c.src[c.i]
	closing := byte(']')
	if open == '{' {
		closing = '}'
	}
	c.dst = append(c.dst, open)
	c.i++
	c.ws()
	if c.i < len(c.src) && c.src[c.i] == closing {
		c.dst = append(c.dst, closing)
		c.i++
		return true
	}
	for {
		if open == '{' {
			if c.i >= len(c.src) || c.src[c.i] != '"' || !c.str() {
				return false
			}
			if c.ws(); c.i >= len(c.src) || c.src[c.i] != ':' {
				return false
			}
			c.dst = append(c.dst, ':')
			c.i++
			c.ws()
		}
		if !c.value(depth + 1) {
			return false
		}
		if c.ws(); c.i >= len(c.src) {
			return false
		}
		switch c.src[c.i] {
		case ',':
			c.dst = append(c.dst, ',')
			c.i++
			c.ws()
		case closing:
			c.dst = append(c.dst, closing)
			c.i++
			return true
		default:
			return false
		}
	}
}

// str copies a string literal: control characters unescaped, bad escapes
// and anything json.Marshal would HTML-escape decline.
func (c *compactor) str() bool {
	start := c.i
	for c.i++; c.i < len(c.src); c.i++ {
		switch b := c.src[c.i]; {
		case b == '"':
			c.i++
			c.dst = append(c.dst, c.src[start:c.i]...)
			return true
		case b == '\\':
			if !c.escape() {
				return false
			}
		case b < 0x20 || b == '<' || b == '>' || b == '&':
			return false
		case b == 0xE2 && c.i+2 < len(c.src) && c.src[c.i+1] == 0x80 && (c.src[c.i+2] == 0xA8 || c.src[c.i+2] == 0xA9):
			return false // U+2028, U+2029
		}
	}
	return false
}

// escape checks the escape sequence at src[i] ('\\') and leaves i on its
// last byte.
func (c *compactor) escape() bool {
	c.i++
	if c.i >= len(c.src) {
		return false
	}
	switch c.src[c.i] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return true
	case 'u':
		if c.i+4 >= len(c.src) {
			return false
		}
		for _, h := range c.src[c.i+1 : c.i+5] {
			if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
				return false
			}
		}
		c.i += 4
		return true
	}
	return false
}

// lit copies a literal (true, false, null).
func (c *compactor) lit(s string) bool {
	if len(c.src)-c.i < len(s) || string(c.src[c.i:c.i+len(s)]) != s {
		return false
	}
	c.dst = append(c.dst, s...)
	c.i += len(s)
	return true
}

// num copies a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (c *compactor) num() bool {
	start := c.i
	if c.src[c.i] == '-' {
		c.i++
	}
	switch {
	case c.i < len(c.src) && c.src[c.i] == '0':
		c.i++
	case c.digits() == 0:
		return false
	}
	if c.i < len(c.src) && c.src[c.i] == '.' {
		c.i++
		if c.digits() == 0 {
			return false
		}
	}
	if c.i < len(c.src) && (c.src[c.i] == 'e' || c.src[c.i] == 'E') {
		c.i++
		if c.i < len(c.src) && (c.src[c.i] == '+' || c.src[c.i] == '-') {
			c.i++
		}
		if c.digits() == 0 {
			return false
		}
	}
	c.dst = append(c.dst, c.src[start:c.i]...)
	return true
}

// digits skips [0-9]* and returns how many.
func (c *compactor) digits() int {
	n := 0
	for c.i < len(c.src) && c.src[c.i] >= '0' && c.src[c.i] <= '9' {
		c.i++
		n++
	}
	return n
}
