package wire

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func compileTaskSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(readSpec(t, "schemas/task.json")))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat() // task_id "format": "uuid" is then enforced
	if err := c.AddResource("task.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("task.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// mutate returns task-valid.json with edit applied to its decoded form.
func mutate(t *testing.T, base []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(base, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func constraintsOf(m map[string]any) map[string]any { return m["constraints"].(map[string]any) }

type agreementCase struct {
	name        string
	body        []byte
	schemaValid bool
	oursValid   bool
	divergence  string // required when the two verdicts differ
}

// TestPROTO_MSG_SamplesAgreeWithTaskSchema runs every schemas/samples/task-*.json
// and mutations of task-valid.json through schemas/task.json and through
// DecodeCallJSON, asserting both verdicts; every disagreement carries the
// reason recorded in docs/spec-decisions.md.
func TestPROTO_MSG_SamplesAgreeWithTaskSchema(t *testing.T) {
	sch := compileTaskSchema(t)
	samples := map[string]agreementCase{
		"task-valid.json":                {schemaValid: true, oursValid: true},
		"task-batch.json":                {schemaValid: true, oursValid: true},
		"task-invalid-intent.json":       {schemaValid: false, oursValid: false},
		"task-invalid-missing-auth.json": {schemaValid: false, oursValid: true, divergence: "missing auth is 401 at the engine (errata v1.5.2 consumer token, SEC-RN-02), not a 422"},
	}
	dir := filepath.Join(specDir, "schemas/samples")
	files, err := filepath.Glob(filepath.Join(dir, "task-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no task samples in %s: %v", dir, err)
	}
	var cases []agreementCase
	for _, f := range files {
		c, ok := samples[filepath.Base(f)]
		if !ok {
			t.Fatalf("new sample %s has no expectation; add one", filepath.Base(f))
		}
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c.name, c.body = filepath.Base(f), body
		cases = append(cases, c)
		delete(samples, filepath.Base(f))
	}
	if len(samples) != 0 {
		t.Fatalf("expected samples missing: %v", samples)
	}
	valid := readSpec(t, "schemas/samples/task-valid.json")
	cases = append(cases, mutationCases(t, valid)...)
	for _, c := range cases {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		schemaOK := sch.Validate(inst) == nil
		_, derr := DecodeCallJSON(c.body)
		oursOK := derr == nil
		if schemaOK != c.schemaValid {
			t.Errorf("%s: task.json says valid=%v, table says %v", c.name, schemaOK, c.schemaValid)
		}
		if oursOK != c.oursValid {
			t.Errorf("%s: DecodeCallJSON valid=%v, want %v (%v)", c.name, oursOK, c.oursValid, derr)
		}
		if schemaOK != oursOK && c.divergence == "" {
			t.Errorf("%s: undocumented divergence from task.json", c.name)
		}
		if derr != nil && (derr.Code != CodeValidationError && derr.Code != CodeE028 || derr.Field == "") {
			t.Errorf("%s: error %+v must be validation_error with a field", c.name, derr)
		}
	}
}

func mutationCases(t *testing.T, valid []byte) []agreementCase {
	set := func(k string, v any) func(m map[string]any) { return func(m map[string]any) { m[k] = v } }
	con := func(k string, v any) func(m map[string]any) {
		return func(m map[string]any) { constraintsOf(m)[k] = v }
	}
	mk := func(name string, edit func(map[string]any), schema, ours bool, why string) agreementCase {
		return agreementCase{name: name, body: mutate(t, valid, edit), schemaValid: schema, oursValid: ours, divergence: why}
	}
	return []agreementCase{
		mk("timeout 99", con("timeout_ms", 99), false, false, ""),
		mk("timeout 100", con("timeout_ms", 100), true, true, ""),
		mk("timeout 300000", con("timeout_ms", 300000), true, true, ""),
		mk("timeout 300001", con("timeout_ms", 300001), false, false, ""),
		mk("timeout fractional", con("timeout_ms", 5000.5), false, false, ""),
		mk("timeout string", con("timeout_ms", "5000"), false, false, ""),
		mk("constraints missing", func(m map[string]any) { delete(m, "constraints") }, false, false, ""),
		mk("qos batch", con("qos", "batch"), true, true, ""),
		mk("qos realtime", con("qos", "realtime"), false, true, "realtime is in iicp-core §3.1 and iicp-cbor-wire 0.1.1; task.json omits it"),
		mk("qos bogus", con("qos", "turbo"), false, false, ""),
		mk("priority high", con("priority", "high"), false, true, "constraints.priority is iicp-core §3.1; task.json closes constraints"),
		mk("priority bogus", con("priority", "urgent"), false, false, ""),
		mk("consensus majority_of_3", con("consensus", "majority_of_3"), false, true, "constraints.consensus is iicp-core §3.3; task.json closes constraints"),
		mk("consensus bogus", con("consensus", "all"), false, false, ""),
		mk("region 65 chars", con("region", strings.Repeat("r", 65)), true, false, "64-char region bound (iicp-core §2.1) applied to constraints.region"),
		mk("unknown top-level member", set("sdk_language", "python"), false, true, "receivers ignore unknown members (iicp-cbor-wire §7.5, framing §4.16); deployed SDKs send them"),
		mk("task_id uuid v1", set("task_id", "550e8400-e29b-11d4-a716-446655440000"), true, false, "iicp-core §3.1 requires UUID v4; format:uuid accepts any version"),
		mk("task_id not uuid", set("task_id", "task-1"), false, false, ""),
		mk("payload array", set("payload", []any{1}), false, false, ""),
		mk("payload missing", func(m map[string]any) { delete(m, "payload") }, false, false, ""),
		mk("payload empty object", set("payload", map[string]any{}), true, true, ""),
		mk("custom intent", set("intent", "urn:iicp:intent:x.acme:score:v1"), false, true, "custom x.<vendor> tier, iicp-semantics §1.1 / iicp-core §2.1"),
		mk("intent modifier", set("intent", "urn:iicp:intent:llm:chat:v1+attested"), false, false, ""),
		mk("trace_id free text", set("trace", map[string]any{"trace_id": "abc"}), true, false, "iicp-core §3.1 trace_id is 16-byte hex (native key 13 is 16 bytes)"),
		mk("trace_id uuid", set("trace", map[string]any{"trace_id": "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"}), true, true, ""),
		mk("billing premium", set("billing", map[string]any{"priority": "premium", "max_credits": 2}), true, true, ""),
		mk("billing bogus", set("billing", map[string]any{"priority": "gold"}), false, false, ""),
		mk("empty node_token", set("auth", map[string]any{"node_token": ""}), false, true, "empty token is 401 at the engine (SEC-RN-01), not a 422"),
	}
}

// TestDecodeCallJSON_Hostile covers the decoder's own bounds.
func TestDecodeCallJSON_Hostile(t *testing.T) {
	valid := readSpec(t, "schemas/samples/task-valid.json")
	deep := strings.Repeat(`{"a":`, MaxNesting+1) + "1" + strings.Repeat("}", MaxNesting+1)
	cases := []struct {
		name string
		body []byte
		code Code
	}{
		{"not json", []byte("{nope"), CodeValidationError},
		{"array body", []byte(`[1,2]`), CodeValidationError},
		{"empty", nil, CodeValidationError},
		{"trailing data", append(append([]byte{}, valid...), []byte(" {}")...), CodeValidationError},
		{"duplicate top-level member", bytes.Replace(valid, []byte(`"task_id"`), []byte(`"intent":"x","task_id"`), 1), CodeValidationError},
		{"duplicate constraints member", bytes.Replace(valid, []byte(`"timeout_ms": 5000`), []byte(`"timeout_ms": 5000, "timeout_ms": 6000`), 1), CodeValidationError},
		{"too deep payload", bytes.Replace(valid, []byte(`"payload": {`), []byte(`"payload": {"x":`+deep+`,`), 1), CodeValidationError},
		{"too large", append([]byte(`{"payload":"`), bytes.Repeat([]byte("a"), MaxCallBytes)...), CodePayloadTooLarge},
		{"control char in string", []byte("{\"task_id\":\"a\x01\"}"), CodeValidationError},
	}
	for _, c := range cases {
		_, err := DecodeCallJSON(c.body)
		if err == nil || err.Code != c.code {
			t.Errorf("%s: got %v, want %s", c.name, err, c.code)
		}
		if err != nil && bytes.Contains([]byte(err.Message), []byte("Hello")) {
			t.Errorf("%s: message echoes payload", c.name)
		}
	}
	// iicp_conf without payload is accepted for the engine to answer E050/E064.
	conf := mutate(t, valid, func(m map[string]any) {
		delete(m, "payload")
		m["iicp_conf"] = map[string]any{"version": 1}
	})
	if c, err := DecodeCallJSON(conf); err != nil || len(c.Conf) == 0 {
		t.Fatalf("iicp_conf call: %v", err)
	}
	both := mutate(t, valid, func(m map[string]any) { m["iicp_conf"] = map[string]any{"version": 1} })
	if _, err := DecodeCallJSON(both); err == nil || err.Field != "payload" {
		t.Fatalf("payload with iicp_conf must be rejected, got %v", err)
	}
}

func TestErrorCatalogue(t *testing.T) {
	codes := Codes()
	sort.Slice(codes, func(i, j int) bool { return codes[i] < codes[j] })
	seen := map[Code]bool{}
	for _, c := range codes {
		if seen[c] {
			t.Fatalf("duplicate code %s", c)
		}
		seen[c] = true
		if s := c.HTTPStatus(); s < 400 || s > 599 {
			t.Errorf("%s: status %d", c, s)
		}
		if !c.Known() {
			t.Errorf("%s not Known", c)
		}
		b, err := json.Marshal(NewError(c, "m").Envelope())
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			Error map[string]any `json:"error"`
		}
		if err := json.Unmarshal(b, &env); err != nil || env.Error["code"] != string(c) || env.Error["message"] != "m" {
			t.Errorf("%s: envelope %s", c, b)
		}
	}
	// Spec-table statuses (iicp-core.md §7, iicp-dir.md §5, iicp-confidentiality.md §6).
	want := map[Code]int{
		CodeUnauthorized: 401, CodeConflict: 409, CodeCapacityExceeded: 429, CodeTaskTimeout: 504,
		CodeBackendError: 502, CodeNoConsensus: 502, CodeValidationError: 422, CodeLivenessFailed: 422,
		CodeE020: 403, CodeE021: 503, CodeE024: 504, CodeE029: 404, CodeE032: 401, CodeE033: 503,
		CodeE034: 429, CodeE035: 422, CodeE036: 402, CodeE047: 503, CodeE048: 503, CodeE049: 403,
		CodeE050: 403, CodeE053: 413, CodeE060: 422, CodeE062: 400, CodeE039: 503,
	}
	for c, s := range want {
		if c.HTTPStatus() != s {
			t.Errorf("%s: status %d, spec says %d", c, c.HTTPStatus(), s)
		}
	}
	if Code("IICP-E999").HTTPStatus() != 500 || Code("IICP-E999").Known() {
		t.Fatal("uncatalogued codes must be unknown and 500")
	}
	if e := NewErrorStatus(CodeE050, 422, "cx"); e.Status() != 422 || NewError(CodeE050, "x").Status() != 403 {
		t.Fatal("status override")
	}
}

func TestErrorEnvelopeCBOR(t *testing.T) {
	b, err := EncodeErrorCBOR(NewError(CodeValidationError, "task_id must be UUID version 4"))
	if err != nil {
		t.Fatal(err)
	}
	if derr := checkDeterministic(b); derr != nil {
		t.Fatal(derr)
	}
	var env map[string]any
	if err := decMode.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	inner, ok := env["error"].(map[string]any)
	if !ok || inner["code"] != "validation_error" || inner["message"] == nil {
		t.Fatalf("CBOR envelope %v", env)
	}
}
