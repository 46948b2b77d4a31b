package wire

import (
	"slices"
	"unicode/utf8"
)

// Direct writers of the native CALL and RESPONSE maps (the mesh's hot
// path). They emit exactly what the reflective encoder (encodeNativeRef,
// RFC 8949 §4.2.1 core deterministic) emits for the same nativeCall or
// nativeResponse: keys in increasing order, shortest heads, omitempty
// fields left out. What they do not handle — invalid UTF-8 in a text field,
// a retry policy, a lifecycle envelope — makes them give up (ok false) and
// the reference encodes. FuzzNativeEncodeMatchesReference holds them to
// the reference byte for byte.

// nativeMap writes one integer-keyed map: the head, then key/value pairs
// in increasing key order.
type nativeMap struct {
	out []byte
	ok  bool
}

func (w *nativeMap) key(k uint64) { w.out = appendHead(w.out, 0, k) }

func (w *nativeMap) text(k uint64, s string) {
	if s == "" {
		return
	}
	if !utf8.ValidString(s) {
		w.ok = false
		return
	}
	w.key(k)
	w.out = append(appendHead(w.out, 3, uint64(len(s))), s...)
}

func (w *nativeMap) uint(k uint64, v *uint64) {
	if v != nil {
		w.key(k)
		w.out = appendHead(w.out, 0, *v)
	}
}

func (w *nativeMap) bytes(k uint64, b []byte) {
	if len(b) > 0 {
		w.key(k)
		w.out = append(appendHead(w.out, 2, uint64(len(b))), b...)
	}
}

// raw writes an already encoded item (a RawMessage field).
func (w *nativeMap) raw(k uint64, item []byte) {
	if len(item) > 0 {
		w.key(k)
		w.out = append(w.out, item...)
	}
}

// count returns how many of the fields are set (omitempty's test).
func count(set ...bool) uint64 {
	var n uint64
	for _, s := range set {
		if s {
			n++
		}
	}
	return n
}

// appendNativeCall appends n as the reference encodes it; ok false when
// the reference must encode it.
func appendNativeCall(dst []byte, n *nativeCall) ([]byte, bool) {
	if n.RetryPolicy != nil {
		return nil, false
	}
	size := 64 + len(n.Payload) + len(n.SessionID) + len(n.Intent) + len(n.CallID) + len(n.TaskID) + len(n.AuthToken)
	if dst == nil {
		dst = make([]byte, 0, size)
	}
	pairs := count(n.ProtocolVersion != nil, n.SessionID != "", n.Intent != "", n.ProviderID != "",
		len(n.Payload) > 0, n.Timeout != nil, n.Priority != nil, n.Credits != nil, n.RoutingHint != "",
		n.SchedulingHint != "", n.AuthToken != "", len(n.TraceID) > 0, len(n.ParentSpan) > 0,
		n.CallID != "", n.IdempotencyKey != "", n.MaxTokens != nil, n.QoS != "", n.Region != "",
		len(n.Capabilities) > 0, n.TTL != nil, len(n.Metadata) > 0, n.TaskID != "")
	w := nativeMap{out: appendHead(dst, 5, pairs), ok: true}
	w.uint(1, n.ProtocolVersion)
	w.text(2, n.SessionID)
	w.text(3, n.Intent)
	w.text(4, n.ProviderID)
	w.raw(5, n.Payload)
	w.uint(6, n.Timeout)
	w.uint(7, n.Priority)
	w.uint(8, n.Credits)
	w.text(9, n.RoutingHint)
	w.text(10, n.SchedulingHint)
	w.text(11, n.AuthToken)
	w.bytes(13, n.TraceID)
	w.bytes(14, n.ParentSpan)
	w.text(15, n.CallID)
	w.text(16, n.IdempotencyKey)
	w.uint(17, n.MaxTokens)
	w.text(18, n.QoS)
	w.text(20, n.Region)
	if len(n.Capabilities) > 0 {
		w.key(21)
		w.out = appendHead(w.out, 4, uint64(len(n.Capabilities)))
		for _, c := range n.Capabilities {
			w.textItem(c)
		}
	}
	w.uint(22, n.TTL)
	if len(n.Metadata) > 0 {
		w.key(23)
		w.stringMap(n.Metadata)
	}
	w.text(24, n.TaskID)
	return w.out, w.ok
}

// textItem writes a text string item (no key).
func (w *nativeMap) textItem(s string) {
	if !utf8.ValidString(s) {
		w.ok = false
	}
	w.out = append(appendHead(w.out, 3, uint64(len(s))), s...)
}

// stringMap writes a text→text map with its keys in core deterministic
// order: bytewise by encoded key, which for text keys is by length, then
// by content (the head grows with the length).
func (w *nativeMap) stringMap(m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	})
	w.out = appendHead(w.out, 5, uint64(len(keys)))
	for _, k := range keys {
		w.textItem(k)
		w.textItem(m[k])
	}
}

// appendNativeResponse appends n as the reference encodes it; ok false
// when the reference must encode it.
func appendNativeResponse(dst []byte, n *nativeResponse) ([]byte, bool) {
	if len(n.Lifecycle) > 0 || n.LegacyCallID != "" || len(n.LegacyErrCode) > 0 || n.LegacyErrMsg != "" {
		return nil, false
	}
	if dst == nil {
		dst = make([]byte, 0, 96+len(n.Result)+len(n.SessionID)+len(n.CallID)+len(n.NodeID))
	}
	pairs := count(n.ProtocolVersion != nil, n.SessionID != "", n.CallID != "", n.Status != "",
		len(n.Result) > 0, n.Error != nil, n.TokensUsed != nil, n.DurationMs != nil, len(n.TraceID) > 0,
		n.CreditsCharged != nil, n.NodeID != "", n.IsFinal != nil)
	w := nativeMap{out: appendHead(dst, 5, pairs), ok: true}
	w.uint(1, n.ProtocolVersion)
	w.text(2, n.SessionID)
	w.text(3, n.CallID)
	w.text(4, n.Status)
	w.raw(5, n.Result)
	if e := n.Error; e != nil {
		w.key(6)
		// Code has no omitempty: key 1 is always there.
		w.out = appendHead(w.out, 5, count(true, e.Message != ""))
		w.key(1)
		w.textItem(e.Code)
		w.text(2, e.Message)
	}
	w.uint(7, n.TokensUsed)
	w.uint(8, n.DurationMs)
	w.bytes(9, n.TraceID)
	w.uint(10, n.CreditsCharged)
	w.text(11, n.NodeID)
	if n.IsFinal != nil {
		w.key(12)
		if *n.IsFinal {
			w.out = append(w.out, 0xf5)
		} else {
			w.out = append(w.out, 0xf4)
		}
	}
	return w.out, w.ok
}
