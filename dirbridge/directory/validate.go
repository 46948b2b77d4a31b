package directory

import (
	"bytes"
	"encoding/json"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/wire"
)

// registerBody is REGISTER as the directory decodes it: the shared wire
// shape plus fields the directory stores verbatim. CXPublicKey shadows the
// typed wire field so the key object passes through unchanged.
type registerBody struct {
	wire.RegisterRequest
	CXPublicKey         json.RawMessage `json:"cx_public_key"`
	CIPConformanceLevel string          `json:"cip_conformance_level"`
	CIPPolicy           *struct {
		AllowRemoteInference bool `json:"allow_remote_inference"`
	} `json:"cip_policy"`
	Backend         string `json:"backend"`
	TransportMethod string `json:"transport_method"`
	// OperatorDelegation binds the node to an operator key (operator.go).
	OperatorDelegation *wire.OperatorDelegation `json:"operator_delegation"`
}

// Limits on REGISTER content (iicp-core.md §2.1, iicp-dir.md §3.1).
const (
	maxRegionLen        = 64
	maxEndpointLen      = 2048
	maxCapabilities     = 64
	maxModelsPerCap     = 256
	maxIntentLen        = 256
	maxExtensions       = 16
	maxExtensionKeyLen  = 64
	minMaxConcurrent    = 1
	maxMaxConcurrent    = 256
	nativeHTTPPort      = "9484" // iicp-core.md §8 http:// exception
	maxAvailabilityWins = 24
)

var (
	// intentRe is the §1.1 grammar without "+modifier": modifiers are
	// deprecated, unknown ones MUST be rejected and +attested is reserved
	// (iicp-semantics.md §1.5).
	intentRe   = regexp.MustCompile(`^urn:iicp:intent:(x\.)?[A-Za-z0-9-]+:[A-Za-z0-9-]+:v[0-9]+$`)
	regionRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	uuidRe     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	implNameRe = regexp.MustCompile(`^[A-Za-z0-9@][A-Za-z0-9._/@+-]{0,63}$`)
	versionRe  = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]{0,31}$`)
	hhmmRe     = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	extKeyRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

var (
	validModalities = map[string]bool{"text": true, "image": true, "audio": true, "video": true}
	validCIPLevels  = map[string]bool{"CIP-None": true, "CIP-Consumer": true, "CIP-Provider": true, "CIP-Full": true}
)

func verr(field, msg string) *wire.Error {
	return wire.NewError(wire.CodeValidationError, msg).WithField(field)
}

// validIntent reports whether s is a well-formed intent URN.
func validIntent(s string) bool { return len(s) <= maxIntentLen && intentRe.MatchString(s) }

// validateRegister checks REGISTER. Per iicp-dir.md §3.1 only endpoint,
// region, capabilities[].intent and limits.max_concurrent are required;
// optional fields are checked when present. Advisory values
// (quantization, inference_engine) are never rejected (DIR-REG-08/09).
func validateRegister(b *registerBody, dev bool) *wire.Error {
	// The shared wire rules first (syntax, required fields, conditional
	// llm fields), then the directory's own policy on top.
	if e := wire.ValidateRegister(&b.RegisterRequest); e != nil {
		return e
	}
	if e := validateEndpoint(b.Endpoint, dev); e != nil {
		return e
	}
	if !regionRe.MatchString(b.Region) {
		return verr("region", "region must be a tag of at most 64 letters, digits, '.', '_' or '-'")
	}
	if e := validateCapabilities(b.Capabilities); e != nil {
		return e
	}
	if e := validateAvailability(b.Availability); e != nil {
		return e
	}
	if e := validateProvenance(b); e != nil {
		return e
	}
	return validateExtras(b)
}

func validateEndpoint(ep string, dev bool) *wire.Error {
	if ep == "" {
		return verr("endpoint", "endpoint is required")
	}
	u, err := url.Parse(ep)
	if err != nil || len(ep) > maxEndpointLen || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return verr("endpoint", "endpoint must be an absolute http(s) URL without credentials, query or fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		// Plain HTTP only in dev or for the native-port exception (iicp-core.md §8).
		if !dev && u.Port() != nativeHTTPPort {
			return verr("endpoint", "endpoint must use https (http:// only on the native port 9484)")
		}
	default:
		return verr("endpoint", "endpoint scheme must be https")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return verr("endpoint", "endpoint port out of range")
		}
	}
	return nil
}

func validateCapabilities(caps []wire.Capability) *wire.Error {
	if len(caps) == 0 {
		return verr("capabilities", "capabilities must contain at least one capability")
	}
	if len(caps) > maxCapabilities {
		return verr("capabilities", "too many capabilities")
	}
	for i, c := range caps {
		f := "capabilities[" + strconv.Itoa(i) + "]"
		if c.Intent == "" {
			return verr(f+".intent", "capability intent is required")
		}
		if !validIntent(c.Intent) {
			return verr(f+".intent", "intent must be urn:iicp:intent:<domain>:<action>:v<N> (no +modifiers)")
		}
		if len(c.Models) > maxModelsPerCap {
			return verr(f+".models", "too many models")
		}
		for _, m := range c.Models {
			if strings.TrimSpace(m) == "" || len(m) > 256 {
				return verr(f+".models", "model names must be non-empty strings of at most 256 bytes")
			}
		}
		if c.MaxTokens < 0 {
			return verr(f+".max_tokens", "max_tokens must be > 0 when present")
		}
		for _, m := range c.InputModalities {
			if !validModalities[m] {
				return verr(f+".input_modalities", "input_modalities entries must be text, image, audio or video")
			}
		}
	}
	return nil
}

func validateAvailability(wins []wire.AvailabilityWindow) *wire.Error {
	if len(wins) > maxAvailabilityWins {
		return verr("availability", "too many availability windows")
	}
	for _, w := range wins {
		if !hhmmRe.MatchString(w.Start) || !hhmmRe.MatchString(w.End) || w.Share < 0 || w.Share > 1 {
			return verr("availability", "availability windows need start/end as HH:MM and share in [0,1]")
		}
	}
	return nil
}

func validateProvenance(b *registerBody) *wire.Error {
	if b.ImplementationName != "" && !implNameRe.MatchString(b.ImplementationName) {
		return verr("implementation_name", "implementation_name does not match the §3.1 grammar")
	}
	if b.ImplementationVersion != "" && !versionRe.MatchString(b.ImplementationVersion) {
		return verr("implementation_version", "implementation_version does not match the §3.1 grammar")
	}
	if b.SDKCompatibilityVersion != "" && !versionRe.MatchString(b.SDKCompatibilityVersion) {
		return verr("sdk_compatibility_version", "sdk_compatibility_version does not match the §3.1 grammar")
	}
	if b.SDKVersion != "" && b.SDKCompatibilityVersion != "" && b.SDKVersion != b.SDKCompatibilityVersion {
		return verr("sdk_compatibility_version", "sdk_version and sdk_compatibility_version conflict")
	}
	if len(b.SDKLanguage) > 32 || len(b.SDKVersion) > 64 || len(b.Backend) > 32 || len(b.TransportMethod) > 32 {
		return verr("sdk_language", "provenance fields too long")
	}
	return nil
}

func validateExtras(b *registerBody) *wire.Error {
	if raw := bytes.TrimSpace(b.CXPublicKey); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		var k struct {
			KeyID string `json:"key_id"`
		}
		if raw[0] != '{' || json.Unmarshal(raw, &k) != nil || k.KeyID == "" {
			return verr("cx_public_key", "cx_public_key must be an object with a key_id")
		}
	}
	if b.CIPConformanceLevel != "" && !validCIPLevels[b.CIPConformanceLevel] {
		return verr("cip_conformance_level", "cip_conformance_level must be CIP-None, CIP-Consumer, CIP-Provider or CIP-Full")
	}
	if len(b.Extensions) > maxExtensions {
		return verr("extensions", "too many extensions")
	}
	for k, v := range b.Extensions {
		if len(k) > maxExtensionKeyLen || !extKeyRe.MatchString(k) {
			return verr("extensions", "extension keys must be short namespaced names")
		}
		if !json.Valid(v) {
			return verr("extensions", "extension values must be JSON")
		}
	}
	if len(b.PublicKey) > 512 {
		return verr("public_key", "public_key too long")
	}
	return nil
}

// endpointHost returns the host of a validated endpoint URL.
func endpointHost(ep string) string {
	u, err := url.Parse(ep)
	if err != nil {
		return ""
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); ip != nil {
		return ip.String()
	}
	return h
}
