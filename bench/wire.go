package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

// wireCodec is one CALL encoding: JSON (iicp-core.md §3), string-keyed
// CBOR, and the integer-keyed native CBOR of iicp-framing.md §4.
type wireCodec struct {
	name   string
	encode func(*wire.Call) ([]byte, error)
	decode func([]byte) (*wire.Call, *wire.Error)
}

var wireCodecs = []wireCodec{
	{"json", func(c *wire.Call) ([]byte, error) { return json.Marshal(c) }, wire.DecodeCallJSON},
	{"cbor", wire.EncodeCallCBOR, wire.DecodeCallCBOR},
	{"cbor-native", wire.EncodeCallNative, wire.DecodeCallNative},
}

var wireSizes = []struct {
	name  string
	bytes int
}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

// sink keeps benchmark results alive.
var sink any

var initTesting sync.Once

// runWire is scenario "wire": encode and decode of a chat CALL of about
// 1 KiB and 64 KiB in each codec, through testing.Benchmark (ns/op,
// allocs/op, B/op), with each time as a ratio to JSON's.
func runWire(ctx context.Context, env *benchEnv, rep *Report) error {
	initTesting.Do(testing.Init)
	if err := flag.CommandLine.Set("test.benchtime", env.opts.wireBenchtime); err != nil {
		return fmt.Errorf("setting benchtime: %w", err)
	}
	for _, sz := range wireSizes {
		call, err := chatCall(sz.bytes)
		if err != nil {
			return err
		}
		for _, opName := range []string{"encode", "decode"} {
			var jsonNs float64
			for _, cd := range wireCodecs {
				if err := ctx.Err(); err != nil {
					return err
				}
				row, err := benchCodec(call, cd, opName)
				if err != nil {
					return fmt.Errorf("wire %s %s %s: %w", sz.name, opName, cd.name, err)
				}
				row.Size = sz.name
				if cd.name == "json" {
					jsonNs = row.NsPerOp
				}
				if jsonNs > 0 {
					row.VsJSON = row.NsPerOp / jsonNs
				}
				rep.Wire = append(rep.Wire, row)
			}
		}
	}
	return nil
}

// benchCodec measures one operation of one codec. The encoded form is
// decoded back first, so a codec that loses data fails instead of looking fast.
func benchCodec(call *wire.Call, cd wireCodec, opName string) (WireRow, error) {
	enc, err := cd.encode(call)
	if err != nil {
		return WireRow{}, err
	}
	back, werr := cd.decode(enc)
	if werr != nil {
		return WireRow{}, fmt.Errorf("decoding its own encoding: %s", werr.Code)
	}
	if back.TaskID != call.TaskID || len(back.Payload) == 0 {
		return WireRow{}, fmt.Errorf("round trip changed the CALL")
	}
	var failed error
	var res testing.BenchmarkResult
	if opName == "encode" {
		res = testing.Benchmark(func(b *testing.B) {
			for b.Loop() {
				out, err := cd.encode(call)
				if err != nil {
					failed = err
					b.FailNow()
				}
				sink = out
			}
		})
	} else {
		res = testing.Benchmark(func(b *testing.B) {
			for b.Loop() {
				c, werr := cd.decode(enc)
				if werr != nil {
					failed = werr
					b.FailNow()
				}
				sink = c
			}
		})
	}
	if failed != nil {
		return WireRow{}, failed
	}
	if res.N == 0 {
		return WireRow{}, fmt.Errorf("benchmark did not run")
	}
	return WireRow{Codec: cd.name, Op: opName, NsPerOp: float64(res.T.Nanoseconds()) / float64(res.N),
		AllocsPerOp: res.AllocsPerOp(), BytesPerOp: res.AllocedBytesPerOp(), WireBytes: len(enc)}, nil
}

// chatCall builds a valid chat CALL whose JSON encoding is about size
// bytes: alternating user/assistant turns of ordinary prose.
func chatCall(size int) (*wire.Call, error) {
	turn := strings.Repeat("Meshes route tasks by intent, not by host. ", 6)
	var msgs []chatMessage
	for total := 0; total < size-420; total += len(turn) + 40 {
		role := "user"
		if len(msgs)%2 == 1 {
			role = "assistant"
		}
		msgs = append(msgs, chatMessage{Role: role, Content: strconv.Itoa(len(msgs)) + " " + turn})
	}
	if len(msgs)%2 == 0 {
		msgs = append(msgs, chatMessage{Role: "user", Content: "and now?"})
	}
	payload, err := json.Marshal(map[string]any{"model": benchModel, "messages": msgs, "temperature": 0.7, "max_tokens": 256})
	if err != nil {
		return nil, err
	}
	call := &wire.Call{
		TaskID: newUUID(), Intent: wire.IntentChat, Payload: payload,
		Constraints: wire.Constraints{TimeoutMs: taskTimeoutMs, QoS: wire.QoSInteractive},
		Auth:        &wire.Auth{NodeToken: randomHex(32)},
		Trace:       &wire.Trace{TraceID: randomHex(16)},
	}
	if werr := wire.ValidateCall(call); werr != nil {
		return nil, fmt.Errorf("benchmark CALL invalid: %s", werr.Code)
	}
	return call, nil
}
