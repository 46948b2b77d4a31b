package wire

import (
	"bytes"
	"compress/gzip"
	"io"
)

// InflateFrame returns the CBOR payload of a frame, gunzipping it when the
// COMPRESSED flag (iicp-framing.md §1.2 bit 0) is set. A compressed CALL may
// be at most MaxCallPayloadCompressed on the wire and MaxCallPayloadInflated
// inflated (§2); other types inflate to at most MaxFramePayload. Inflation
// stops one byte past the limit, so a gzip bomb costs at most the limit.
// Errors carry CLOSE reason payload_too_large or invalid_payload.
func InflateFrame(h Header, p []byte) ([]byte, *Error) {
	if h.Flags&FlagCompressed == 0 {
		return p, nil
	}
	limit := MaxFramePayload
	if h.Type == TypeCall {
		if len(p) > MaxCallPayloadCompressed {
			return nil, tooLarge("compressed CALL exceeds 1 MiB")
		}
		limit = MaxCallPayloadInflated
	}
	zr, err := gzip.NewReader(bytes.NewReader(p))
	if err != nil {
		return nil, nativeInvalid("body", "is not valid gzip")
	}
	var out bytes.Buffer
	n, err := io.Copy(&out, io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		return nil, nativeInvalid("body", "is not valid gzip")
	}
	if n > int64(limit) {
		return nil, tooLarge("payload inflates beyond the limit")
	}
	return out.Bytes(), nil
}

func tooLarge(msg string) *Error {
	e := NewError(CodePayloadTooLarge, msg)
	e.close = ClosePayloadTooLarge
	return e
}

// DeflatePayload gzips a frame payload for sending with FlagCompressed.
func DeflatePayload(p []byte) ([]byte, error) {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(p); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
