// Package wire owns the IICP vocabulary: message types, validation, the error
// catalogue, the JSON and CBOR codecs (string-keyed for HTTP, integer-keyed for
// native frames) and the 12-byte binary frame.
//
// wire is pure: it must not import net, net/http, libp2p, log/slog, or read the
// clock. It encodes and decodes on byte slices and io.Reader/io.Writer only;
// every limit is a named constant and every decoder checks sizes before it
// allocates.
//
// Layout:
//
//	messages.go, errors.go   types and the Code catalogue (HTTP statuses)
//	intent.go, validate.go   intent URN grammar; ValidateCall/Register/Heartbeat
//	json.go                  DecodeCallJSON & co: size cap, nesting bound,
//	                         duplicate members rejected, unknown members ignored
//	json_call.go             the CALL's common shape decoded without reflection;
//	                         anything unusual falls back to encoding/json
//	cbor.go, cbor_det.go     the one DecMode/EncMode, the RFC 8949 §4.2.1
//	                         determinism check, string-keyed CBOR (application/iicp+cbor)
//	cbor_native*.go          integer-keyed CALL/RESPONSE/INIT/ACK/PING/CLOSE;
//	                         cbor_native_fast*.go write and read the plain CALL
//	                         and RESPONSE maps without reflection, anything
//	                         else falls back to the reflective reference
//	cbor_fast*.go            JSON ↔ CBOR result transcoders, same fallback rule
//	frame.go, compress.go    12-byte header, FrameReader/FrameWriter, §9.6 checks, gzip
//
// Native decoders come in two flavours. The strict ones (DecodeCallNative,
// DecodeResponseNative, DecodeNative(..., true)) enforce iicp-framing.md §4.1
// deterministic CBOR and the spec's required keys; the Compat ones accept
// what deployed IICP SDK nodes send (unsorted maps, CALL keys 2/3/5/15,
// RESPONSE errors under 100/101). Encoders always emit the strict form.
// Decision record: docs/spec-decisions.md, section "wire".
package wire
