package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshnode/meshnode/internal/spectest"
)

var specDir = spectest.Dir()

// readSpec reads a file from the shared spec checkout and fails (never
// skips) when it is missing: the fixtures are the test vectors.
func readSpec(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(specDir, rel))
	if err != nil {
		t.Fatalf("spec fixture missing: %v", err)
	}
	return b
}

type framingFixture struct {
	Frame struct {
		HeaderBytes    int `json:"header_bytes"`
		DecodeContract struct {
			ReservedByte          string `json:"reserved_byte"`
			UnknownFlagBits       string `json:"unknown_flag_bits"`
			MessageTypeValidation string `json:"message_type_validation"`
		} `json:"decode_contract"`
	} `json:"frame"`
	Scenarios []struct {
		Name     string `json:"name"`
		WireHex  string `json:"wire_hex"`
		Expected struct {
			Outcome     string `json:"outcome"`
			Reason      string `json:"reason"`
			Version     *int   `json:"version"`
			MessageType *int   `json:"message_type"`
			Flags       *int   `json:"flags"`
			PayloadHex  string `json:"payload_hex"`
			Consumed    int    `json:"consumed"`
		} `json:"expected"`
	} `json:"scenarios"`
}

// TestNATIVE_FRAME_BASE_01to04_Fixture runs every scenario of
// native-framing-v1.json through both DecodeFrame (byte slice) and
// FrameReader (stream), after checking the manifest digest pins this file.
func TestNATIVE_FRAME_BASE_01to04_Fixture(t *testing.T) {
	raw := readSpec(t, "fixtures/native-framing/native-framing-v1.json")
	var manifest struct {
		Fixtures []struct{ Path, SHA256 string } `json:"fixtures"`
	}
	if err := json.Unmarshal(readSpec(t, "fixtures/native-framing/native-framing-fixture-manifest-v1.json"), &manifest); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if len(manifest.Fixtures) != 1 || manifest.Fixtures[0].Path != "native-framing-v1.json" ||
		manifest.Fixtures[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("manifest does not pin native-framing-v1.json (sha256 %x)", sum)
	}
	var fx framingFixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	if fx.Frame.HeaderBytes != HeaderLen || fx.Frame.DecodeContract.MessageTypeValidation != "outside_frame_decoder" {
		t.Fatalf("fixture frame contract changed: %+v", fx.Frame)
	}
	checked := 0
	for _, sc := range fx.Scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			wire, err := hex.DecodeString(sc.WireHex)
			if err != nil {
				t.Fatal(err)
			}
			h, payload, consumed, derr := DecodeFrame(wire)
			sh, spayload, serr := NewFrameReader(bytes.NewReader(wire)).ReadFrame()
			switch sc.Expected.Outcome {
			case "accept":
				if derr != nil || serr != nil {
					t.Fatalf("want accept, got %v / %v", derr, serr)
				}
				for _, got := range []struct {
					h Header
					p []byte
				}{{h, payload}, {sh, spayload}} {
					if int(got.h.Version) != *sc.Expected.Version || int(got.h.Type) != *sc.Expected.MessageType ||
						int(got.h.Flags) != *sc.Expected.Flags || hex.EncodeToString(got.p) != sc.Expected.PayloadHex {
						t.Fatalf("decoded %+v payload %x, want %+v", got.h, got.p, sc.Expected)
					}
				}
				if consumed != sc.Expected.Consumed {
					t.Fatalf("consumed %d, want %d", consumed, sc.Expected.Consumed)
				}
				// NATIVE-FRAME-BASE-01: the encoder reproduces canonical
				// frames; the receive-only cases differ only in ignored bits.
				re, _ := AppendFrame(nil, h.Type, h.Flags, payload)
				if h.Reserved == 0 && !bytes.Equal(re, wire) {
					t.Fatalf("re-encoded %x, want %x", re, wire)
				}
			case "reject":
				for _, e := range []error{derr, serr} {
					if e == nil || e.Error() != sc.Expected.Reason {
						t.Fatalf("want reject %q, got %v / %v", sc.Expected.Reason, derr, serr)
					}
				}
			default:
				t.Fatalf("unknown outcome %q", sc.Expected.Outcome)
			}
			checked++
		})
	}
	if checked != len(fx.Scenarios) || checked != 7 {
		t.Fatalf("checked %d of %d scenarios (fixture v1 has 7)", checked, len(fx.Scenarios))
	}
}

func TestMsgTypeString(t *testing.T) {
	names := map[MsgType]string{TypeInit: "INIT", TypeSubProtocol: "SUB_PROTOCOL", TypePong: "PONG",
		TypeTelemetry: "TELEMETRY", 0xF3: "CUSTOM(0xf3)", 0x0F: "RESERVED(0xf)", 0x00: "RESERVED(0x0)"}
	for ty, want := range names {
		if ty.String() != want {
			t.Errorf("%d.String() = %q, want %q", ty, ty.String(), want)
		}
	}
	n := 0
	for ty := 0; ty < 256; ty++ {
		if MsgType(ty).Core() {
			n++
		}
	}
	if n != 14 {
		t.Fatalf("%d core types, want 14", n)
	}
}

// TestHeaderCheck_Disposition covers the §9.6 header rows that sit outside
// the frame decoder.
func TestHeaderCheck_Disposition(t *testing.T) {
	negotiated := func(ty MsgType) bool { return ty == 0xF0 }
	cases := []struct {
		name string
		h    Header
		want CloseReason
	}{
		{"ping empty is valid", Header{Version: 1, Type: TypePing}, ""},
		{"call empty is invalid_frame", Header{Version: 1, Type: TypeCall}, CloseInvalidFrame},
		{"response empty is invalid_frame", Header{Version: 1, Type: TypeResponse}, CloseInvalidFrame},
		{"version 0", Header{Version: 0, Type: TypePing}, CloseInvalidVersion},
		{"future version", Header{Version: 2, Type: TypePing}, CloseVersionMismatch},
		{"upper version bits ignored", Header{Version: 0xF1, Type: TypePing}, ""},
		{"type 0x00", Header{Version: 1, Type: 0x00}, CloseInvalidType},
		{"type 0xFF", Header{Version: 1, Type: 0xFF}, CloseInvalidType},
		{"future IICP type", Header{Version: 1, Type: 0x0F}, CloseUnknownType},
		{"unnegotiated custom", Header{Version: 1, Type: 0xF1}, CloseUnsupportedExtension},
		{"negotiated custom", Header{Version: 1, Type: 0xF0, Length: 1}, ""},
	}
	for _, c := range cases {
		if got := c.h.Check(negotiated); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestFrameTooLargeBeforeAllocation(t *testing.T) {
	// Length 0xFFFFFFFF on a PING (§9.5) and just over 16 MiB: rejected from
	// the header alone, with no payload bytes available to read.
	for _, n := range []uint32{0xFFFFFFFF, MaxFramePayload + 1} {
		var hdr [HeaderLen]byte
		PutHeader(hdr[:], Header{Version: 1, Type: TypePing, Length: n})
		fr := NewFrameReader(bytes.NewReader(hdr[:]))
		allocs := testing.AllocsPerRun(10, func() {
			fr.r = bytes.NewReader(hdr[:])
			if _, _, err := fr.ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("length %d: got %v", n, err)
			}
		})
		if allocs > 1 { // the bytes.Reader above
			t.Fatalf("length %d: %v allocations before rejecting", n, allocs)
		}
	}
	fr := NewFrameReader(nil)
	fr.SetMaxPayload(10)
	var hdr [HeaderLen]byte
	PutHeader(hdr[:], Header{Version: 1, Type: TypeCall, Length: 11})
	fr.r = bytes.NewReader(hdr[:])
	if _, _, err := fr.ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("negotiated cap: got %v", err)
	}
}

// TestHeaderZeroAllocs asserts header encode and decode allocate nothing.
func TestHeaderZeroAllocs(t *testing.T) {
	var buf [HeaderLen]byte
	h := Header{Version: 1, Type: TypeCall, Flags: FlagCompressed, Length: 1234}
	if a := testing.AllocsPerRun(100, func() { PutHeader(buf[:], h) }); a != 0 {
		t.Fatalf("PutHeader: %v allocs", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		if got, err := ParseHeader(buf[:]); err != nil || got.Length != 1234 {
			t.Fatal(got, err)
		}
	}); a != 0 {
		t.Fatalf("ParseHeader: %v allocs", a)
	}
}

// oneByteReader returns data one byte at a time to exercise partial reads.
type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

func TestFrameReaderWriterStream(t *testing.T) {
	var stream bytes.Buffer
	fw := NewFrameWriter(&stream)
	big := bytes.Repeat([]byte{0xAB}, 200<<10) // above the coalesce and read-step sizes
	frames := []struct {
		ty MsgType
		p  []byte
	}{{TypePing, nil}, {TypeCall, []byte{0xa1, 0x01, 0x01}}, {TypeResponse, big}, {TypePong, []byte{0xa0}}}
	for _, f := range frames {
		if err := fw.WriteFrame(f.ty, 0, f.p); err != nil {
			t.Fatal(err)
		}
	}
	fr := NewFrameReader(&oneByteReader{b: stream.Bytes()})
	for i, f := range frames {
		h, p, err := fr.ReadFrame()
		if err != nil || h.Type != f.ty || !bytes.Equal(p, f.p) || h.Reserved != 0 || h.Version != FramingVersion {
			t.Fatalf("frame %d: %+v len %d err %v", i, h, len(p), err)
		}
	}
	if _, _, err := fr.ReadFrame(); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
	// A payload that stops short is truncated_payload, not EOF.
	cut := stream.Bytes()[:HeaderLen+10]
	PutHeader(cut, Header{Version: 1, Type: TypeCall, Length: 100})
	if _, _, err := NewFrameReader(bytes.NewReader(cut)).ReadFrame(); !errors.Is(err, ErrTruncatedBody) {
		t.Fatalf("short payload: %v", err)
	}
	if _, _, err := NewFrameReader(bytes.NewReader(cut[:5])).ReadFrame(); !errors.Is(err, ErrTruncatedHeader) {
		t.Fatalf("short header: %v", err)
	}
	if err := fw.WriteFrame(TypeCall, 0, make([]byte, MaxFramePayload+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversize write: %v", err)
	}
}

// TestFrameReaderBufferReuse checks steady-state reads do not allocate.
func TestFrameReaderBufferReuse(t *testing.T) {
	frame, _ := AppendFrame(nil, TypeCall, 0, bytes.Repeat([]byte{1}, 4096))
	r := bytes.NewReader(frame)
	fr := NewFrameReader(r)
	if _, _, err := fr.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	a := testing.AllocsPerRun(50, func() {
		r.Reset(frame)
		if _, _, err := fr.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	})
	if a != 0 {
		t.Fatalf("steady-state ReadFrame: %v allocs", a)
	}
}

func TestInflateFrame(t *testing.T) {
	plain := bytes.Repeat([]byte{0xa1, 0x01, 0x01}, 1000)
	z, err := DeflatePayload(plain)
	if err != nil {
		t.Fatal(err)
	}
	got, ierr := InflateFrame(Header{Type: TypeCall, Flags: FlagCompressed}, z)
	if ierr != nil || !bytes.Equal(got, plain) {
		t.Fatalf("inflate: %v", ierr)
	}
	if got, _ := InflateFrame(Header{Type: TypeCall}, plain); !bytes.Equal(got, plain) {
		t.Fatal("uncompressed payload must pass through")
	}
	// A gzip bomb: 33 MiB of zeros compresses to ~33 KiB; inflation stops at 32 MiB.
	bomb, _ := DeflatePayload(make([]byte, MaxCallPayloadInflated+1))
	if _, ierr := InflateFrame(Header{Type: TypeCall, Flags: FlagCompressed}, bomb); ierr == nil || ierr.CloseReason() != ClosePayloadTooLarge {
		t.Fatalf("bomb: %v", ierr)
	}
	if _, ierr := InflateFrame(Header{Type: TypeCall, Flags: FlagCompressed}, make([]byte, MaxCallPayloadCompressed+1)); ierr == nil || ierr.Code != CodePayloadTooLarge {
		t.Fatalf("oversize compressed CALL: %v", ierr)
	}
	if _, ierr := InflateFrame(Header{Type: TypePing, Flags: FlagCompressed}, []byte("not gzip")); ierr == nil || ierr.CloseReason() != CloseInvalidPayload {
		t.Fatalf("corrupt gzip: %v", ierr)
	}
}
