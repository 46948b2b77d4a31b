package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Native frame layout (iicp-framing.md §1): magic "IICP", version, type,
// flags, reserved, u32 big-endian payload length, then the CBOR payload.
const (
	HeaderLen        = 12
	Magic     uint32 = 0x49494350 // "IICP"
	// FramingVersion is the only framing version (iicp-framing.md §6.2).
	FramingVersion byte = 0x01
	// MaxFramePayload is the hard frame cap (iicp-framing.md §2), checked
	// before any payload buffer is allocated (§9.5).
	MaxFramePayload = 16 << 20
	// MaxCallPayloadCompressed caps a COMPRESSED CALL frame (§2).
	MaxCallPayloadCompressed = 1 << 20
	// MaxCallPayloadInflated caps a CALL after gzip inflation (§2).
	MaxCallPayloadInflated = 32 << 20
)

// MsgType is the frame type byte (iicp-framing.md §3).
type MsgType byte

// The 14 core message types.
const (
	TypeInit        MsgType = 0x01
	TypeAck         MsgType = 0x02
	TypeDiscover    MsgType = 0x03
	TypeSubProtocol MsgType = 0x04
	TypeCall        MsgType = 0x05
	TypeResponse    MsgType = 0x06
	TypeClose       MsgType = 0x07
	TypeFeedback    MsgType = 0x08
	TypePing        MsgType = 0x09
	TypePong        MsgType = 0x0A
	TypeControl     MsgType = 0x0B
	TypeAdvertise   MsgType = 0x0C
	TypeObserve     MsgType = 0x0D
	TypeTelemetry   MsgType = 0x0E

	TypeCustomFirst MsgType = 0xF0 // CUSTOM range 0xF0–0xFE (§7)
	TypeCustomLast  MsgType = 0xFE
)

var typeNames = [...]string{
	"", "INIT", "ACK", "DISCOVER", "SUB_PROTOCOL", "CALL", "RESPONSE", "CLOSE",
	"FEEDBACK", "PING", "PONG", "CONTROL", "ADVERTISE", "OBSERVE", "TELEMETRY",
}

func (t MsgType) String() string {
	switch {
	case t >= TypeInit && t <= TypeTelemetry:
		return typeNames[t]
	case t >= TypeCustomFirst && t <= TypeCustomLast:
		return "CUSTOM(0x" + strconv.FormatUint(uint64(t), 16) + ")"
	}
	return "RESERVED(0x" + strconv.FormatUint(uint64(t), 16) + ")"
}

// Core reports whether t is one of the 14 core types.
func (t MsgType) Core() bool { return t >= TypeInit && t <= TypeTelemetry }

// Custom reports whether t is in the CUSTOM range.
func (t MsgType) Custom() bool { return t >= TypeCustomFirst && t <= TypeCustomLast }

// CheckType applies the §9.6 disposition for the type byte. Type checking
// is outside the frame decoder (native-framing-v1.json decode_contract), so
// a session calls this after ReadFrame. customOK reports whether the
// CUSTOM type was negotiated in INIT/ACK.
func CheckType(t MsgType, customOK func(MsgType) bool) CloseReason {
	switch {
	case t.Core():
		return ""
	case t == 0x00 || t == 0xFF:
		return CloseInvalidType
	case t.Custom():
		if customOK != nil && customOK(t) {
			return ""
		}
		return CloseUnsupportedExtension
	}
	return CloseUnknownType
}

// Flags bits (iicp-framing.md §1.2). Unknown bits are ignored on receive and
// preserved in Header.Flags; senders never set them.
const (
	FlagCompressed byte = 1 << 0
	FlagFragmented byte = 1 << 1
	// FlagConfEncrypted marks an IICP-CX CALL (iicp-confidentiality.md §4.2).
	FlagConfEncrypted byte = 1 << 2
)

// CloseReason is a CLOSE frame reason code (iicp-framing.md §4.8, §9.6, §9.7).
type CloseReason string

// Close reasons.
const (
	CloseGraceful                CloseReason = "graceful"
	CloseUnknownType             CloseReason = "unknown_type"
	CloseUnsupportedExtension    CloseReason = "unsupported_extension"
	CloseFrameTooLarge           CloseReason = "frame_too_large"
	ClosePayloadTooLarge         CloseReason = "payload_too_large"
	CloseVersionMismatch         CloseReason = "version_mismatch"
	CloseVersionTooOld           CloseReason = "version_too_old"
	CloseAuthFailed              CloseReason = "auth_failed"
	CloseIdleTimeout             CloseReason = "idle_timeout"
	CloseProtocolError           CloseReason = "protocol_error"
	CloseInvalidFrame            CloseReason = "invalid_frame"
	CloseReadTimeout             CloseReason = "read_timeout"
	CloseInvalidVersion          CloseReason = "invalid_version"
	CloseInvalidType             CloseReason = "invalid_type"
	CloseCBORDecodeError         CloseReason = "cbor_decode_error"
	CloseInvalidPayload          CloseReason = "invalid_payload"
	CloseFragmentTimeout         CloseReason = "fragment_timeout"
	CloseFragmentLimitExceeded   CloseReason = "fragment_limit_exceeded"
	CloseReassemblyLimitExceeded CloseReason = "reassembly_limit_exceeded"
	CloseInitTimeout             CloseReason = "init_timeout"
)

// Header is the decoded 12-byte frame header.
type Header struct {
	Version  byte
	Type     MsgType
	Flags    byte
	Reserved byte
	Length   uint32
}

// Frame decoding errors. Each FrameError carries the §9.6 CLOSE reason a
// session should send (none for bad magic: close silently).
var (
	ErrBadMagic        = &FrameError{Reason: "", msg: "invalid_magic"}
	ErrTruncatedHeader = &FrameError{Reason: CloseProtocolError, msg: "truncated_header"}
	ErrTruncatedBody   = &FrameError{Reason: CloseReadTimeout, msg: "truncated_payload"}
	ErrFrameTooLarge   = &FrameError{Reason: CloseFrameTooLarge, msg: "frame_too_large"}
)

// FrameError is a frame-level protocol violation. Error() is the fixture
// reason name (native-framing-v1.json "reason").
type FrameError struct {
	Reason CloseReason
	msg    string
}

func (e *FrameError) Error() string { return e.msg }

// PutHeader writes h into dst[0:12] with magic and a zero reserved byte.
// It does not allocate.
func PutHeader(dst []byte, h Header) {
	_ = dst[HeaderLen-1]
	binary.BigEndian.PutUint32(dst[0:4], Magic)
	dst[4] = h.Version
	dst[5] = byte(h.Type)
	dst[6] = h.Flags
	dst[7] = 0 // reserved: MUST be zero on send (§1.2)
	binary.BigEndian.PutUint32(dst[8:12], h.Length)
}

// ParseHeader decodes a 12-byte header without allocating. It checks magic
// and the 16 MiB cap; version and type policy are left to CheckVersion and
// CheckType (native-framing-v1.json decode_contract). Unknown flag bits and
// the reserved byte are reported as received (§9.6: ignored).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrTruncatedHeader
	}
	if binary.BigEndian.Uint32(b[0:4]) != Magic {
		return Header{}, ErrBadMagic
	}
	h := Header{Version: b[4], Type: MsgType(b[5]), Flags: b[6], Reserved: b[7],
		Length: binary.BigEndian.Uint32(b[8:12])}
	if h.Length > MaxFramePayload {
		return h, ErrFrameTooLarge
	}
	return h, nil
}

// CheckVersion applies §1.2/§6.3/§9.6 to the version byte: 0 is invalid, a
// higher version than ours is a mismatch. The upper 4 bits are reserved and
// ignored on receive.
func CheckVersion(v byte) CloseReason {
	switch lo := v & 0x0F; {
	case lo == 0:
		return CloseInvalidVersion
	case lo > FramingVersion:
		return CloseVersionMismatch
	}
	return ""
}

// Check applies the receive-side header policy that the frame decoder leaves
// out: version (CheckVersion), type (CheckType) and the empty CALL/RESPONSE
// rule (§9.6 "Length = 0 on CALL/RESPONSE": invalid_frame). It returns ""
// when the frame may be processed.
func (h Header) Check(customOK func(MsgType) bool) CloseReason {
	if r := CheckVersion(h.Version); r != "" {
		return r
	}
	if r := CheckType(h.Type, customOK); r != "" {
		return r
	}
	if h.Length == 0 && (h.Type == TypeCall || h.Type == TypeResponse) {
		return CloseInvalidFrame
	}
	return ""
}

// DecodeFrame decodes one frame from the front of b, returning the header,
// the payload (a sub-slice of b, not a copy) and the bytes consumed.
func DecodeFrame(b []byte) (Header, []byte, int, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, nil, 0, err
	}
	end := HeaderLen + int(h.Length)
	if len(b) < end {
		return h, nil, 0, ErrTruncatedBody
	}
	return h, b[HeaderLen:end], end, nil
}

// AppendFrame appends a frame of type t with payload to dst.
func AppendFrame(dst []byte, t MsgType, flags byte, payload []byte) ([]byte, error) {
	if len(payload) > MaxFramePayload {
		return dst, ErrFrameTooLarge
	}
	var hdr [HeaderLen]byte
	PutHeader(hdr[:], Header{Version: FramingVersion, Type: t, Flags: flags, Length: uint32(len(payload))})
	dst = append(dst, hdr[:]...)
	return append(dst, payload...), nil
}

// FrameReader reads frames from a stream. The payload slice returned by
// ReadFrame aliases an internal buffer that is reused by the next call.
// Not safe for concurrent use.
type FrameReader struct {
	r   io.Reader
	hdr [HeaderLen]byte
	buf []byte
	max int
}

// NewFrameReader returns a reader enforcing MaxFramePayload.
func NewFrameReader(r io.Reader) *FrameReader { return &FrameReader{r: r, max: MaxFramePayload} }

// SetMaxPayload lowers the payload cap (e.g. to a negotiated max_frame_size);
// values outside (0, MaxFramePayload] are ignored.
func (fr *FrameReader) SetMaxPayload(n int) {
	if n > 0 && n <= MaxFramePayload {
		fr.max = n
	}
}

// ReadFrame reads one frame. At a clean frame boundary it returns io.EOF;
// a partial header or payload is ErrTruncatedHeader/ErrTruncatedBody. The
// length is checked against the cap before the payload buffer grows (§9.5);
// the buffer grows in steps so a peer that announces 16 MiB and sends
// nothing pins no more than one step.
func (fr *FrameReader) ReadFrame() (Header, []byte, error) {
	n, err := io.ReadFull(fr.r, fr.hdr[:])
	if err != nil {
		if err == io.EOF && n == 0 {
			return Header{}, nil, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Header{}, nil, ErrTruncatedHeader
		}
		return Header{}, nil, fmt.Errorf("reading frame header: %w", err)
	}
	h, err := ParseHeader(fr.hdr[:])
	if err != nil {
		return h, nil, err
	}
	if int(h.Length) > fr.max {
		return h, nil, ErrFrameTooLarge
	}
	payload, err := fr.readPayload(int(h.Length))
	return h, payload, err
}

// readStep is the growth step of the payload buffer while reading.
const readStep = 64 << 10

func (fr *FrameReader) readPayload(n int) ([]byte, error) {
	fr.buf = fr.buf[:0]
	for len(fr.buf) < n {
		chunk := min(n-len(fr.buf), readStep)
		if cap(fr.buf)-len(fr.buf) < chunk {
			grown := make([]byte, len(fr.buf), min(n, max(2*cap(fr.buf), len(fr.buf)+chunk)))
			copy(grown, fr.buf)
			fr.buf = grown
		}
		start := len(fr.buf)
		fr.buf = fr.buf[:start+chunk]
		if _, err := io.ReadFull(fr.r, fr.buf[start:]); err != nil {
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, ErrTruncatedBody
			}
			return nil, fmt.Errorf("reading frame payload: %w", err)
		}
	}
	return fr.buf, nil
}

// FrameWriter writes frames to a stream, one Write per frame. Not safe for
// concurrent use.
type FrameWriter struct {
	w   io.Writer
	buf []byte
}

// NewFrameWriter returns a FrameWriter on w.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// coalesceMax is the largest payload copied next to its header so the frame
// leaves in one Write; larger payloads are written after the header without
// a copy, so the writer never retains a buffer above this size.
const coalesceMax = 64 << 10

// WriteFrame writes a version-1 frame of type t.
func (fw *FrameWriter) WriteFrame(t MsgType, flags byte, payload []byte) error {
	if len(payload) > MaxFramePayload {
		return ErrFrameTooLarge
	}
	if len(payload) <= coalesceMax {
		b, _ := AppendFrame(fw.buf[:0], t, flags, payload)
		fw.buf = b
		if _, err := fw.w.Write(b); err != nil {
			return fmt.Errorf("writing %s frame: %w", t, err)
		}
		return nil
	}
	var hdr [HeaderLen]byte
	PutHeader(hdr[:], Header{Version: FramingVersion, Type: t, Flags: flags, Length: uint32(len(payload))})
	if _, err := fw.w.Write(hdr[:]); err != nil {
		return fmt.Errorf("writing %s frame header: %w", t, err)
	}
	if _, err := fw.w.Write(payload); err != nil {
		return fmt.Errorf("writing %s frame payload: %w", t, err)
	}
	return nil
}
