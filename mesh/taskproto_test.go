package mesh

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshnode/meshnode/wire"
)

func frameBytes(version byte, typ wire.MsgType, flags byte, length uint32, payload []byte) []byte {
	b := make([]byte, wire.HeaderLen, wire.HeaderLen+len(payload))
	binary.BigEndian.PutUint32(b[0:4], wire.Magic)
	b[4], b[5], b[6] = version, byte(typ), flags
	binary.BigEndian.PutUint32(b[8:12], length)
	return append(b, payload...)
}

func frame(typ wire.MsgType, payload []byte) []byte {
	return frameBytes(wire.FramingVersion, typ, 0, uint32(len(payload)), payload)
}

// rawExchange writes raw bytes on a fresh task stream and reads one frame back.
func rawExchange(t *testing.T, from *testNode, to *testNode, proto protocol.ID, raw []byte) (wire.Header, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := from.h.NewStream(ctx, to.h.ID(), proto)
	if err != nil {
		t.Fatalf("new stream: %v", err)
	}
	defer func() { _ = s.Reset() }()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Write(raw); err != nil {
		return wire.Header{}, nil, err
	}
	_ = s.CloseWrite()
	return wire.NewFrameReader(s).ReadFrame()
}

// TestTaskProtoRejectsBadFrames covers the iicp-framing.md §9.6
// dispositions on the task stream, then checks the node still serves.
func TestTaskProtoRejectsBadFrames(t *testing.T) {
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	server := startNode(t, newTestHost(t, false), testConfig("server", true))
	if err := client.h.Connect(context.Background(), peer.AddrInfo{ID: server.h.ID(), Addrs: server.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	goodCall, err := wire.EncodeCallNative(testCall())
	if err != nil {
		t.Fatal(err)
	}
	headers, _ := cborEnc.Marshal(headersMsg{ConsumerToken: "tok"})
	frameCases := []struct {
		name  string
		raw   []byte
		close wire.CloseReason // expected CLOSE reason; "" means silent reset
	}{
		// §9.6 magic wrong: silent reset, no reply.
		{"bad magic", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ""},
		// Above the CALL cap: refused before any payload is read.
		{"call over cap", frameBytes(1, wire.TypeCall, 0, 2<<20, nil), wire.CloseFrameTooLarge},
		// Above the 16 MiB frame maximum.
		{"frame over 16MiB", frameBytes(1, wire.TypeCall, 0, 0xFFFFFFFF, nil), wire.CloseFrameTooLarge},
		// Version 0 is invalid.
		{"version zero", frameBytes(0, wire.TypeCall, 0, 2, []byte("{}")), wire.CloseInvalidVersion},
		// Reserved type 0x00.
		{"reserved type", frame(0x00, []byte("{}")), wire.CloseInvalidType},
		// Unknown future type.
		{"unknown type", frame(0x20, []byte("{}")), wire.CloseUnknownType},
		// CUSTOM type other than HEADERS was never negotiated.
		{"custom type", frame(0xF5, []byte("{}")), wire.CloseUnsupportedExtension},
		// A core type that is not CALL.
		{"ping instead of call", frame(wire.TypePing, nil), wire.CloseProtocolError},
		// Empty CALL.
		{"empty call", frame(wire.TypeCall, nil), wire.CloseInvalidFrame},
		// Compression is not offered on this protocol.
		{"compressed", frameBytes(1, wire.TypeCall, wire.FlagCompressed, uint32(len(goodCall)), goodCall), wire.CloseUnsupportedExtension},
		// Payload shorter than announced, then end of stream.
		{"truncated", frameBytes(1, wire.TypeCall, 0, 100, []byte("{}")), wire.CloseReadTimeout},
		// Two HEADERS frames.
		{"headers twice", append(frame(typeHeaders, headers), frame(typeHeaders, headers)...), wire.CloseProtocolError},
		// HEADERS that is not CBOR.
		{"headers not cbor", frame(typeHeaders, []byte{0xff, 0x00}), wire.CloseCBORDecodeError},
	}
	for _, proto := range taskProtocols {
		for _, tc := range frameCases {
			t.Run(string(proto)+"/"+tc.name, func(t *testing.T) {
				h, b, err := rawExchange(t, client, server, proto, tc.raw)
				if tc.close == "" {
					if err == nil {
						t.Fatalf("got a %s frame, want a silent reset", h.Type)
					}
					return
				}
				if err != nil || h.Type != wire.TypeClose || decodeClose(b).Reason != tc.close {
					t.Fatalf("got %s %q err %v, want CLOSE(%s)", h.Type, b, err, tc.close)
				}
			})
		}
	}
	testBadCallBodies(t, client, server)
	if n := server.engine.calls.Load(); n != 0 {
		t.Fatalf("engine ran %d times on bad frames", n)
	}
	// The server is unharmed.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, _, err := client.m.Call(ctx, testCall(), CallOptions{Peer: server.h.ID()})
	if err != nil || resp.Status != wire.StatusSuccess {
		t.Fatalf("call after bad frames: %+v %v", resp, err)
	}
}

// testBadCallBodies: a CALL frame whose body does not decode or validate
// gets CLOSE(cbor_decode_error / invalid_payload) on the native protocol
// (§9.6) and an error RESPONSE on the JSON protocol; both carry
// validation_error to the caller.
func testBadCallBodies(t *testing.T, client, server *testNode) {
	bad := testCall()
	bad.TaskID = "nope"
	badJSON, _ := wire.EncodeJSON(bad)
	valid := testCall()
	valid.SessionID = "not-a-uuid" // the native codec requires a UUID session_id
	badNative, err := wire.EncodeCallNative(valid)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		proto protocol.ID
		body  []byte
		close wire.CloseReason // "" means an error RESPONSE
	}{
		{"native garbage", TaskProtocol, []byte{0xa1, 0x01}, wire.CloseCBORDecodeError},
		{"native not a map", TaskProtocol, []byte{0x01}, wire.CloseCBORDecodeError},
		{"native invalid field", TaskProtocol, badNative, wire.CloseInvalidPayload},
		{"json garbage", TaskProtocolJSON, []byte("{not json"), ""},
		{"json invalid call", TaskProtocolJSON, badJSON, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, b, err := rawExchange(t, client, server, tc.proto, frame(wire.TypeCall, tc.body))
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if tc.close != "" {
				cm := decodeClose(b)
				if h.Type != wire.TypeClose || cm.Reason != tc.close || cm.Message == "" {
					t.Fatalf("got %s %+v, want CLOSE(%s) with a message", h.Type, cm, tc.close)
				}
				return
			}
			resp, werr := wire.DecodeResponseJSON(b)
			if h.Type != wire.TypeResponse || werr != nil || resp.Error == nil || resp.Error.Code != wire.CodeValidationError {
				t.Fatalf("got %s %s (%v), want a validation_error RESPONSE", h.Type, b, werr)
			}
		})
	}
}

// TestTaskProtoSizeCaps: the client refuses to send a CALL above its cap
// and refuses a RESPONSE above its cap without reading it.
func TestTaskProtoSizeCaps(t *testing.T) {
	ccfg := testConfig("client", false)
	ccfg.MaxResponseBytes = 1 << 10
	ccfg.MaxCallBytes = 8 << 10
	client := startNode(t, newTestHost(t, false), ccfg)
	server := startNode(t, newTestHost(t, false), testConfig("server", true))
	client.h.Peerstore().AddAddrs(server.h.ID(), server.h.Addrs(), time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	huge := testCall()
	huge.Payload = json.RawMessage(`{"x":"` + strings.Repeat("a", 9<<10) + `"}`)
	_, info, err := client.m.Call(ctx, huge, CallOptions{Peer: server.h.ID()})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodePayloadTooLarge || server.engine.calls.Load() != 0 {
		t.Fatalf("oversized call: err %v info %+v", err, info)
	}

	// The echo result (~2 KiB) exceeds the client's 1 KiB response cap.
	big := testCall()
	big.Payload = json.RawMessage(`{"x":"` + strings.Repeat("b", 2<<10) + `"}`)
	_, info, err = client.m.Call(ctx, big, CallOptions{Peer: server.h.ID(), MaxAttempts: 1})
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, wire.ErrFrameTooLarge) || info.Attempts != 1 {
		t.Fatalf("oversized response: err %v info %+v", err, info)
	}
}

// TestTaskProtoCallerCancelStopsEngine: a caller that gives up resets the
// stream and the serving engine's context is cancelled.
func TestTaskProtoCallerCancelStopsEngine(t *testing.T) {
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	server := startNode(t, newTestHost(t, false), testConfig("server", true))
	server.engine.block = make(chan struct{}) // never released
	client.h.Peerstore().AddAddrs(server.h.ID(), server.h.Addrs(), time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := client.m.Call(ctx, testCall(), CallOptions{Peer: server.h.ID()})
		done <- err
	}()
	waitFor(t, 10*time.Second, "the engine to start", func() bool { return server.engine.calls.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	waitFor(t, 10*time.Second, "the server handler to finish", func() bool { return server.m.active.Load() == 0 })
}
