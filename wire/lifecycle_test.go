package wire

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/meshnode/meshnode/internal/spectest"
)

// lifecycleFixture is fixtures/profiles/service-lifecycle-v1.json.
type lifecycleFixture struct {
	Profile     string              `json:"profile"`
	Transitions map[string][]string `json:"transitions"`
	Aliases     map[string]string   `json:"deprecated_aliases"`
	Vectors     []struct {
		ID       string         `json:"id"`
		Kind     string         `json:"kind"`
		Events   [][3]any       `json:"events"`
		Expected string         `json:"expected"`
		Event    map[string]any `json:"event"`
		Forbid   []string       `json:"forbidden_fields"`
	} `json:"vectors"`
}

func loadLifecycleFixture(t *testing.T) lifecycleFixture {
	t.Helper()
	var f lifecycleFixture
	if err := json.Unmarshal(spectest.Read(t, "fixtures", "profiles", "service-lifecycle-v1.json"), &f); err != nil {
		t.Fatal(err)
	}
	if f.Profile != ProfileServiceLifecycle {
		t.Fatalf("fixture profile %q, want %q", f.Profile, ProfileServiceLifecycle)
	}
	return f
}

// TestLifecycleTransitionsMatchFixture: the Go state table is the
// fixture's, state for state.
func TestLifecycleTransitionsMatchFixture(t *testing.T) {
	f := loadLifecycleFixture(t)
	if len(f.Transitions) != len(LifecycleTransitions) {
		t.Fatalf("fixture has %d states, table %d", len(f.Transitions), len(LifecycleTransitions))
	}
	for from, to := range f.Transitions {
		got := slices.Clone(LifecycleTransitions[from])
		want := slices.Clone(to)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: table %v, fixture %v", from, got, want)
		}
	}
	if f.Aliases[EventTimedOut] != StateExpired {
		t.Errorf("timed_out alias %q, want expired", f.Aliases[EventTimedOut])
	}
}

// TestLifecycleVectors runs the event-sequence vectors (valid, invalid,
// duplicate, alias) through the receiver; privacy vectors check that the
// envelope has none of the forbidden fields. Resume, retry, disconnect
// and late-cancel vectors are engine behaviour: node
// TestLifecycleEngineVectors.
func TestLifecycleVectors(t *testing.T) {
	f := loadLifecycleFixture(t)
	ran := 0
	for _, v := range f.Vectors {
		switch v.Kind {
		case "valid", "invalid", "duplicate", "alias":
			ran++
			t.Run(v.ID, func(t *testing.T) { runLifecycleEvents(t, v.Events, v.Kind, v.Expected) })
		case "privacy":
			ran++
			t.Run(v.ID, func(t *testing.T) {
				b, _ := json.Marshal(Lifecycle{TaskID: "t", Sequence: 1, Event: EventPartial})
				var m map[string]any
				_ = json.Unmarshal(b, &m)
				for _, k := range v.Forbid {
					if _, ok := m[k]; ok {
						t.Errorf("envelope carries forbidden field %q", k)
					}
				}
			})
		}
	}
	if ran < 10 {
		t.Fatalf("only %d vectors ran", ran)
	}
}

func runLifecycleEvents(t *testing.T, events [][3]any, kind, expected string) {
	r := NewLifecycleReceiver("t")
	var verdicts []string
	for _, e := range events {
		verdicts = append(verdicts, r.Accept(e[0].(string), uint64(e[1].(float64)), e[2].(bool)))
	}
	last := verdicts[len(verdicts)-1]
	switch kind {
	case "valid", "alias":
		for i, v := range verdicts {
			if v != LifecycleOK {
				t.Fatalf("event %d: verdict %q, want accepted", i, v)
			}
		}
		if !r.Done() {
			t.Fatalf("no terminal state reached (state %s)", r.State())
		}
		if kind == "alias" && r.State() != StateExpired {
			t.Fatalf("timed_out reached %s, want expired", r.State())
		}
	case "duplicate":
		if !slices.Contains(verdicts, LifecycleDuplicate) || !r.Done() {
			t.Fatalf("verdicts %v: want a discarded duplicate and a terminal state", verdicts)
		}
	case "invalid":
		if last != expected {
			t.Fatalf("verdicts %v: want the last to be %q", verdicts, expected)
		}
	}
}

// TestLifecycleReceiverStreaming: the meshnode provider's sequence
// (accepted, partials, completed) is valid; a repeated partial is discarded.
func TestLifecycleReceiverStreaming(t *testing.T) {
	r := NewLifecycleReceiver("t")
	steps := []struct {
		ev   string
		seq  uint64
		fin  bool
		want string
	}{
		{EventAccepted, 0, false, LifecycleOK},
		{EventPartial, 1, false, LifecycleOK},
		{EventPartial, 1, false, LifecycleDuplicate},
		{EventPartial, 2, false, LifecycleOK},
		{EventCompleted, 3, true, LifecycleOK},
		{EventPartial, 4, false, LifecycleAfterTerminal},
	}
	for i, s := range steps {
		if got := r.Accept(s.ev, s.seq, s.fin); got != s.want {
			t.Fatalf("step %d: %q, want %q", i, got, s.want)
		}
	}
	// A failure before acceptance is a rejection.
	r = NewLifecycleReceiver("t")
	if got := r.Accept(EventFailed, 0, true); got != LifecycleOK || r.State() != StateRejected {
		t.Fatalf("rejection: %q, state %s", got, r.State())
	}
}

// TestLifecycleNativeRoundTrip: a partial RESPONSE carries key 13 and
// is_final=false; the base decoder refuses it, the profile decoder reads it.
func TestLifecycleNativeRoundTrip(t *testing.T) {
	r := &Response{TaskID: "t", Status: StatusPartial, Result: json.RawMessage(`{"choices":[]}`),
		Lifecycle: &Lifecycle{TaskID: "t", Sequence: 2, Event: EventPartial}}
	b, err := EncodeResponseNative(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, werr := DecodeResponseNative(b); werr == nil {
		t.Fatal("base decoder accepted a lifecycle RESPONSE")
	}
	got, werr := DecodeResponseNativeLifecycle(b)
	if werr != nil {
		t.Fatal(werr)
	}
	if *got.Lifecycle != *r.Lifecycle || got.Status != StatusPartial {
		t.Fatalf("round trip: %+v", got.Lifecycle)
	}
	// A contradictory status is refused.
	r.Status = StatusSuccess
	b, _ = EncodeResponseNative(r)
	if _, werr := DecodeResponseNativeLifecycle(b); werr == nil {
		t.Fatal("a success RESPONSE with a partial envelope was accepted")
	}
	ob, err := EncodeLifecycleObserve(&Lifecycle{TaskID: "t", Event: EventAccepted})
	if err != nil {
		t.Fatal(err)
	}
	if l, werr := DecodeLifecycleObserve(ob); werr != nil || l.Event != EventAccepted {
		t.Fatalf("observe: %v %v", l, werr)
	}
}

// TestRequiredProfilesNative: required profiles survive the native CALL.
func TestRequiredProfilesNative(t *testing.T) {
	c := &Call{TaskID: "0b7e3f5a-1d2c-4e8f-9a6b-3c5d7e9f1a2b", Intent: IntentChat, Payload: json.RawMessage(`{}`),
		Constraints: Constraints{TimeoutMs: 5000, RequiredProfiles: []string{ProfileServiceLifecycle}}}
	b, err := EncodeCallNative(c)
	if err != nil {
		t.Fatal(err)
	}
	got, werr := DecodeCallNative(b)
	if werr != nil {
		t.Fatal(werr)
	}
	if !got.Negotiates(ProfileServiceLifecycle) {
		t.Fatalf("profiles lost: %+v", got.Constraints)
	}
}

// TestResumeLifecycleReceiver: a resumed stream continues the sequence of
// the broken one; a replayed event the caller already has is a duplicate.
func TestResumeLifecycleReceiver(t *testing.T) {
	r := ResumeLifecycleReceiver("t", 3)
	if got := r.Accept(EventPartial, 3, false); got != LifecycleDuplicate {
		t.Fatalf("seen event: %q", got)
	}
	if got := r.Accept(EventPartial, 5, false); got != LifecycleSequenceGap {
		t.Fatalf("gap: %q", got)
	}
	if r.Accept(EventPartial, 4, false) != LifecycleOK || r.Accept(EventCompleted, 5, true) != LifecycleOK || !r.Done() {
		t.Fatalf("resumed stream refused, state %s", r.State())
	}
	r = ResumeLifecycleReceiver("t", 0)
	if r.Accept(EventCompleted, 1, true) != LifecycleOK || r.Next() != 2 {
		t.Fatalf("resume after accepted: state %s next %d", r.State(), r.Next())
	}
}
