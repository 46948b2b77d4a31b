package jsonscan

import "encoding/json"

// AppendCompact appends src to dst the way json.Marshal writes a
// json.RawMessage: validated, without insignificant whitespace. It takes
// only what that copy leaves byte for byte (no '<', '>', '&', U+2028 or
// U+2029 to escape) and nests at most maxDepth deep; ok=false for anything
// else, invalid JSON included, with dst unchanged: the caller then uses
// the general encoder. One pass replaces an HTML-escape check and
// json.Compact's state machine.
func AppendCompact(dst, src []byte) ([]byte, bool) {
	c := compactor{src: src, dst: dst, out: true, html: true}
	if !c.run() {
		return dst, false
	}
	return c.dst, true
}

// Valid reports whether src is one valid JSON value, exactly as json.Valid
// does (a value nested deeper than maxDepth is left to json.Valid).
func Valid(src []byte) bool {
	c := compactor{src: src}
	if c.run() {
		return true
	}
	if c.deep {
		return json.Valid(src)
	}
	return false
}

// maxDepth bounds the fast path's recursion; deeper values (rare) go to
// encoding/json, whose own limit is 10000.
const maxDepth = 64

// run scans the whole of src as one value.
func (c *compactor) run() bool {
	c.ws()
	if !c.value(0) {
		return false
	}
	c.ws()
	return c.i == len(c.src)
}

// compactor walks src; with out set it appends what it took to dst, with
// html set it declines what json.Marshal would HTML-escape.
type compactor struct {
	src, dst  []byte
	i         int
	out, html bool
	deep      bool // declined only for nesting beyond maxDepth
}

// emit appends b when output is on.
func (c *compactor) emit(b byte) {
	if c.out {
		c.dst = append(c.dst, b)
	}
}

// emitSpan appends src[from:c.i] when output is on.
func (c *compactor) emitSpan(from int) {
	if c.out {
		c.dst = append(c.dst, c.src[from:c.i]...)
	}
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
		if depth >= maxDepth {
			c.deep = true
			return false
		}
		return c.container(depth)
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
	c.emit(open)
	c.i++
	c.ws()
	if c.i < len(c.src) && c.src[c.i] == closing {
		c.emit(closing)
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
			c.emit(':')
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
			c.emit(',')
			c.i++
			c.ws()
		case closing:
			c.emit(closing)
			c.i++
			return true
		default:
			return false
		}
	}
}

// str copies a string literal: unescaped control characters and bad
// escapes decline, and with html set anything json.Marshal would escape.
func (c *compactor) str() bool {
	start := c.i
	for c.i++; c.i < len(c.src); c.i++ {
		switch b := c.src[c.i]; {
		case b == '"':
			c.i++
			c.emitSpan(start)
			return true
		case b == '\\':
			if !c.escape() {
				return false
			}
		case b < 0x20:
			return false
		case !c.html:
		case b == '<' || b == '>' || b == '&':
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
	if c.out {
		c.dst = append(c.dst, s...)
	}
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
	c.emitSpan(start)
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
