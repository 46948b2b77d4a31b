package mesh

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

// frames builds a task stream answer from lifecycle events.
func frames(t *testing.T, taskID string, events ...wire.Lifecycle) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw := wire.NewFrameWriter(&buf)
	for _, l := range events {
		if l.Event == wire.EventAccepted {
			b, err := wire.EncodeLifecycleObserve(&l)
			if err != nil {
				t.Fatal(err)
			}
			_ = fw.WriteFrame(wire.TypeObserve, 0, b)
			continue
		}
		status := map[string]string{wire.EventPartial: wire.StatusPartial, wire.EventCompleted: wire.StatusSuccess}[l.Event]
		r := &wire.Response{TaskID: taskID, Status: status, Lifecycle: &l}
		if l.Event == wire.EventPartial {
			r.Result = json.RawMessage(`{"choices":[]}`)
		}
		b, err := wire.EncodeResponseNative(r)
		if err != nil {
			t.Fatal(err)
		}
		_ = fw.WriteFrame(wire.TypeResponse, 0, b)
	}
	return buf.Bytes()
}

// A caller reading a streamed answer delivers ordered events once, drops
// a repeated sequence, and treats a gap or an event after the terminal one
// as a protocol violation from the peer (SERVICE-LIFECYCLE §4): a hostile
// or broken peer cannot make the caller deliver output out of order.
func TestReadStreamedChecksEveryEvent(t *testing.T) {
	const id = "0b7e3f5a-1d2c-4e8f-9a6b-3c5d7e9f1a2b"
	ev := func(seq uint64, e string) wire.Lifecycle {
		return wire.Lifecycle{TaskID: id, Sequence: seq, Event: e, IsFinal: wire.Terminal(e)}
	}
	cases := []struct {
		name      string
		events    []wire.Lifecycle
		delivered int
		protocol  bool
	}{
		// accepted, two partials (one repeated), completed.
		{"ordered", []wire.Lifecycle{ev(0, wire.EventAccepted), ev(1, wire.EventPartial), ev(1, wire.EventPartial), ev(2, wire.EventPartial), ev(3, wire.EventCompleted)}, 3, false},
		// sequence 2 is missing.
		{"gap", []wire.Lifecycle{ev(0, wire.EventAccepted), ev(1, wire.EventPartial), ev(3, wire.EventPartial)}, 2, true},
		// another task's envelope.
		{"foreign task", []wire.Lifecycle{{TaskID: "other", Event: wire.EventAccepted}}, 0, true},
		// the stream ends without a terminal event.
		{"truncated", []wire.Lifecycle{ev(0, wire.EventAccepted), ev(1, wire.EventPartial)}, 2, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			resp, err := readStreamed(wire.NewFrameReader(bytes.NewReader(frames(t, id, tc.events...))), id, nil,
				func(wire.Lifecycle, json.RawMessage) error { n++; return nil }, func(*wire.Response) error { return nil })
			if n != tc.delivered {
				t.Fatalf("delivered %d events, want %d", n, tc.delivered)
			}
			switch {
			case tc.name == "ordered" && (err != nil || resp.Lifecycle.Event != wire.EventCompleted):
				t.Fatalf("resp %+v err %v", resp, err)
			case tc.protocol && !errors.Is(err, errProtocol):
				t.Fatalf("err %v, want a protocol violation", err)
			case tc.name == "truncated" && err == nil:
				t.Fatal("a stream without a terminal event was accepted")
			}
		})
	}
}

// A partial whose node_id is not the peer's own is refused before its
// output reaches the caller (a peer relaying another node's answer under
// that node's name).
func TestReadStreamedChecksTheAnswerer(t *testing.T) {
	const id = "0b7e3f5a-1d2c-4e8f-9a6b-3c5d7e9f1a2b"
	events := []wire.Lifecycle{{TaskID: id, Event: wire.EventAccepted}, {TaskID: id, Sequence: 1, Event: wire.EventPartial}}
	n := 0
	_, err := readStreamed(wire.NewFrameReader(bytes.NewReader(frames(t, id, events...))), id, nil,
		func(wire.Lifecycle, json.RawMessage) error { n++; return nil },
		func(*wire.Response) error { return ErrForgedResponse })
	if !errors.Is(err, ErrForgedResponse) || n != 1 {
		t.Fatalf("err %v after %d events: the forged partial must not be delivered", err, n)
	}
}
