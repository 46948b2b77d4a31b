package wire

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// Patterns copied from the spec at test time would hide drift, so they are
// read from the schema files and compared with our grammar below.
func schemaPattern(t *testing.T, rel string, path ...string) *regexp.Regexp {
	t.Helper()
	var v any
	if err := json.Unmarshal(readSpec(t, rel), &v); err != nil {
		t.Fatal(err)
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: no %q", rel, p)
		}
		v = m[p]
	}
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%s: pattern not found at %v", rel, path)
	}
	return regexp.MustCompile(s)
}

// TestPROTO_URN_IntentGrammar is the decided grammar as a table, with what
// each spec pattern says about the same input. Divergences are deliberate and
// recorded in docs/spec-decisions.md ("wire: intent URN grammar").
func TestPROTO_URN_IntentGrammar(t *testing.T) {
	taskRe := schemaPattern(t, "schemas/task.json", "properties", "intent", "pattern")
	nodeRe := regexp.MustCompile(`^urn:iicp:intent:(x\.[a-z0-9_.-]+|[a-z0-9_-]+):[a-z0-9_-]+:v[0-9]+$`)
	if !strings.Contains(string(readSpec(t, "schemas/nodelist.json")), strings.ReplaceAll(nodeRe.String(), `\`, `\\`)) {
		t.Fatal("schemas/nodelist.json intent pattern changed; re-check the grammar decision")
	}
	cases := []struct {
		urn       string
		ok        bool
		task, nl  bool // what task.json / nodelist.json patterns say
		why       string
		wantParts Intent
	}{
		{"urn:iicp:intent:llm:chat:v1", true, true, true, "registry standard intent", Intent{Domain: "llm", Action: "chat", Version: "1"}},
		{"urn:iicp:intent:code:complete:v12", true, true, true, "multi-digit version", Intent{Domain: "code", Action: "complete", Version: "12"}},
		{"urn:iicp:intent:llm:read_file:v1", true, true, true, "underscore (all schemas allow it)", Intent{Domain: "llm", Action: "read_file", Version: "1"}},
		{"urn:iicp:intent:x.acme:invoice-classify:v1", true, false, true, "custom tier (§1.1); task.json lacks it", Intent{Vendor: "acme", Action: "invoice-classify", Version: "1"}},
		{"urn:iicp:intent:x.hospital-alpha:triage-assist:v2", true, false, true, "custom vendor with hyphen", Intent{Vendor: "hospital-alpha", Action: "triage-assist", Version: "2"}},
		{"urn:iicp:intent:mcp:tools/call:v1", true, false, false, "'/' in action: ADR-007, MCP binding, registry", Intent{Domain: "mcp", Action: "tools/call", Version: "1"}},
		{"urn:iicp:intent:llm:chat:v1+attested", false, false, false, "modifiers rejected fail-closed (§1.5)", Intent{}},
		{"urn:iicp:intent:LLM:chat:v1", false, false, false, "uppercase (lowercase ASCII only)", Intent{}},
		{"urn:iicp:intent:translate:v1", false, false, false, "single segment: core §2.1 needs domain:action", Intent{}},
		{"urn:iicp:intent:x.com.acme:chat:v1", false, false, true, "dotted vendor: ABNF forbids, nodelist allows", Intent{}},
		{"urn:iicp:intent:llm:chat", false, false, false, "missing version (PROTO-URN-02)", Intent{}},
		{"urn:iicp:intent:llm:chat:1", false, false, false, "version without v", Intent{}},
		{"urn:iicp:intent:llm:chat:v", false, false, false, "empty version", Intent{}},
		{"urn:openai:gpt4", false, false, false, "wrong prefix (PROTO-URN-01)", Intent{}},
		{"urn:iicp:intent::chat:v1", false, false, false, "empty domain", Intent{}},
		{"urn:iicp:intent:llm::v1", false, false, false, "empty action", Intent{}},
		{"urn:iicp:intent:llm:a:b:v1", false, false, false, "extra segment", Intent{}},
		{"urn:iicp:intent:mcp:/call:v1", false, false, false, "leading slash", Intent{}},
		{"urn:iicp:intent:mcp:a//b:v1", false, false, false, "double slash", Intent{}},
		{"urn:iicp:intent:x.:chat:v1", false, false, false, "empty vendor", Intent{}},
		{"urn:iicp:intent:llm:ch at:v1", false, false, false, "space", Intent{}},
		{"urn:iicp:intent:llm:chat:v1\n", false, false, false, "trailing newline", Intent{}},
		{"urn:iicp:intent:llm:" + strings.Repeat("a", 300) + ":v1", false, true, true, "over 256 bytes (our bound)", Intent{}},
		{"", false, false, false, "empty", Intent{}},
	}
	for _, c := range cases {
		in, err := ParseIntent(c.urn)
		if (err == nil) != c.ok || ValidIntent(c.urn) != c.ok {
			t.Errorf("%s (%q): ok=%v, want %v (err %v)", c.why, c.urn, err == nil, c.ok, err)
			continue
		}
		if taskRe.MatchString(c.urn) != c.task || nodeRe.MatchString(c.urn) != c.nl {
			t.Errorf("%s (%q): spec patterns disagree with the table", c.why, c.urn)
		}
		if c.ok {
			if in != c.wantParts || in.String() != c.urn {
				t.Errorf("%q parsed to %+v (%s)", c.urn, in, in.String())
			}
			continue
		}
		if err.Field != "intent" || strings.Contains(err.Message, c.urn) && c.urn != "" {
			t.Errorf("%q: error must name the field and not echo input: %+v", c.urn, err)
		}
	}
	if _, err := ParseIntent("urn:iicp:intent:llm:chat:v1+attested"); err == nil || err.Code != CodeE028 {
		t.Fatalf("modifier must map to IICP-E028 (§1.5), got %v", err)
	}
}

// TestPROTO_URN_RegistryIntents checks every registry URN: all two-segment
// entries parse; the single-segment legacy entries are the only rejects.
func TestPROTO_URN_RegistryIntents(t *testing.T) {
	var reg struct {
		Intents []struct {
			URN    string `json:"urn"`
			Status string `json:"status"`
		} `json:"intents"`
	}
	if err := json.Unmarshal(readSpec(t, "registry/intents.json"), &reg); err != nil {
		t.Fatal(err)
	}
	if len(reg.Intents) == 0 {
		t.Fatal("registry has no intents")
	}
	rejected := map[string]bool{}
	for _, in := range reg.Intents {
		if !ValidIntent(in.URN) {
			rejected[in.URN] = true
			if in.Status == "active" {
				t.Errorf("active registry intent %q rejected", in.URN)
			}
		}
	}
	want := map[string]bool{"urn:iicp:intent:translate:v1": true, "urn:iicp:intent:classify:v1": true}
	if len(rejected) != len(want) {
		t.Fatalf("rejected %v, want exactly %v", rejected, want)
	}
	for u := range want {
		if !rejected[u] {
			t.Fatalf("%s should be rejected (single segment)", u)
		}
	}
}
