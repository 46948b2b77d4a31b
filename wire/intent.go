package wire

import "strings"

// Intent URN grammar (decision recorded in docs/spec-decisions.md, "wire:
// intent URN grammar"). The spec carries five mutually inconsistent grammars
// (iicp-semantics.md §1.1 ABNF, §1.5 ABNF, schemas/task.json, schemas/nodelist.json,
// registry/schemas/intent-registry-v1.4.json). meshnode accepts:
//
//	intent   = "urn:iicp:intent:" ( domain / "x." vendor ) ":" action ":v" version
//	domain   = 1*seg-char               ; seg-char = %x61-7A / DIGIT / "-" / "_"
//	vendor   = 1*seg-char
//	action   = seg-char [ *( seg-char / "/" ) seg-char ]   ; "/" per ADR-007 (MCP)
//	version  = 1*DIGIT
//
// Lowercase only (§1.1 "Domains and actions are lowercase ASCII"; every
// schema pattern is lowercase). "+modifier" suffixes are rejected fail-closed
// (§1.5: deprecated, unknown modifiers MUST be rejected, +attested reserved).
const (
	intentPrefix = "urn:iicp:intent:"
	// MaxIntentLen bounds an intent URN. No spec limit exists; 256 bytes is far
	// above every registered URN (< 50) while keeping hostile input cheap.
	MaxIntentLen = 256
)

// Intent is a parsed intent URN. Domain is empty for custom intents, Vendor
// is empty for standard ones. Version is the decimal digits after ":v".
type Intent struct {
	Domain  string
	Vendor  string
	Action  string
	Version string
}

// Custom reports whether the intent is in the vendor-controlled x.<vendor> tier.
func (i Intent) Custom() bool { return i.Vendor != "" }

// String re-assembles the URN.
func (i Intent) String() string {
	head := i.Domain
	if i.Custom() {
		head = "x." + i.Vendor
	}
	return intentPrefix + head + ":" + i.Action + ":v" + i.Version
}

// ValidIntent reports whether s is a well-formed intent URN.
func ValidIntent(s string) bool {
	_, err := ParseIntent(s)
	return err == nil
}

// ParseIntent parses an intent URN. On failure it returns a validation_error
// with Field "intent", or IICP-E028 for a "+modifier" suffix (iicp-semantics.md
// §1.5: implementations SHOULD report IICP-E028 for rejected modifiers).
// The message never echoes the input.
func ParseIntent(s string) (Intent, *Error) {
	bad := func(why string) (Intent, *Error) {
		return Intent{}, NewError(CodeValidationError, "intent "+why).WithField("intent")
	}
	if len(s) > MaxIntentLen {
		return bad("is longer than 256 bytes")
	}
	rest, ok := strings.CutPrefix(s, intentPrefix)
	if !ok {
		return bad("must begin with urn:iicp:intent: (PROTO-URN-01)")
	}
	if strings.IndexByte(rest, '+') >= 0 {
		return Intent{}, NewError(CodeE028, "intent modifiers (+suffix) are not supported; use a required profile").WithField("intent")
	}
	if strings.Count(rest, ":") != 2 {
		return bad("must have the form urn:iicp:intent:<domain>:<action>:v<N>")
	}
	head, tail, _ := strings.Cut(rest, ":")
	action, ver, _ := strings.Cut(tail, ":")
	var in Intent
	if vendor, custom := strings.CutPrefix(head, "x."); custom {
		if !validSegment(vendor) {
			return bad("has an invalid vendor label")
		}
		in.Vendor = vendor
	} else {
		if !validSegment(head) {
			return bad("has an invalid domain")
		}
		in.Domain = head
	}
	if !validAction(action) {
		return bad("has an invalid action")
	}
	digits, ok := strings.CutPrefix(ver, "v")
	if !ok || digits == "" || !allDigits(digits) {
		return bad("must end with :v<N> (PROTO-URN-02)")
	}
	in.Action, in.Version = action, digits
	return in, nil
}

func segChar(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'
}

func validSegment(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !segChar(s[i]) {
			return false
		}
	}
	return true
}

// validAction is validSegment plus interior "/" (MCP tool paths such as
// "tools/call", iicp-mcp-binding.md §3), never leading, trailing or doubled.
func validAction(s string) bool {
	if s == "" || s[0] == '/' || s[len(s)-1] == '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '/' {
			if s[i-1] == '/' {
				return false
			}
			continue
		}
		if !segChar(c) {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
