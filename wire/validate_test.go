package wire

import (
	"strings"
	"testing"
)

func validRegister() *RegisterRequest {
	return &RegisterRequest{
		Endpoint: "https://node.example.com",
		Region:   "eu-central",
		Capabilities: []Capability{
			{Intent: IntentChat, Models: []string{"llama3"}, MaxTokens: 8192},
			{Intent: "urn:iicp:intent:mcp:tools/call:v1"},
		},
		Limits: Limits{MaxConcurrent: 4, TokensPerMin: 1000},
	}
}

func TestValidateRegister(t *testing.T) {
	if err := ValidateRegister(validRegister()); err != nil {
		t.Fatalf("valid register: %v", err)
	}
	cases := []struct {
		name  string
		edit  func(r *RegisterRequest)
		field string // "" = valid
	}{
		{"http endpoint (Phase 3+ allowed syntactically)", func(r *RegisterRequest) { r.Endpoint = "http://203.0.113.5:9484" }, ""},
		{"ipv6 endpoint", func(r *RegisterRequest) { r.Endpoint = "https://[2001:db8::1]:8443" }, ""},
		{"private endpoint is syntax-valid (directory checks routability)", func(r *RegisterRequest) { r.Endpoint = "https://192.168.1.2" }, ""},
		{"transport endpoint iicpsec", func(r *RegisterRequest) { r.TransportEndpoint = "iicpsec://node.example.com:9484" }, ""},
		{"missing endpoint", func(r *RegisterRequest) { r.Endpoint = "" }, "endpoint"},
		{"ftp endpoint", func(r *RegisterRequest) { r.Endpoint = "ftp://node.example.com" }, "endpoint"},
		{"relative endpoint", func(r *RegisterRequest) { r.Endpoint = "/v1/task" }, "endpoint"},
		{"endpoint without host", func(r *RegisterRequest) { r.Endpoint = "https://" }, "endpoint"},
		{"endpoint with user info", func(r *RegisterRequest) { r.Endpoint = "https://u:p@node.example.com" }, "endpoint"},
		{"endpoint bad port", func(r *RegisterRequest) { r.Endpoint = "https://node.example.com:70000" }, "endpoint"},
		{"endpoint with fragment", func(r *RegisterRequest) { r.Endpoint = "https://node.example.com/#x" }, "endpoint"},
		{"transport endpoint http", func(r *RegisterRequest) { r.TransportEndpoint = "http://node.example.com" }, "transport_endpoint"},
		{"node_id not v4", func(r *RegisterRequest) { r.NodeID = "550e8400-e29b-11d4-a716-446655440000" }, "node_id"},
		{"node_id v4", func(r *RegisterRequest) { r.NodeID = "550e8400-e29b-41d4-a716-446655440000" }, ""},
		{"region empty", func(r *RegisterRequest) { r.Region = "" }, "region"},
		{"region 64", func(r *RegisterRequest) { r.Region = strings.Repeat("r", 64) }, ""},
		{"region 65", func(r *RegisterRequest) { r.Region = strings.Repeat("r", 65) }, "region"},
		{"no capabilities", func(r *RegisterRequest) { r.Capabilities = nil }, "capabilities"},
		{"too many capabilities", func(r *RegisterRequest) {
			r.Capabilities = make([]Capability, MaxCapabilities+1)
		}, "capabilities"},
		{"bad intent", func(r *RegisterRequest) { r.Capabilities[1].Intent = "urn:iicp:intent:llm" }, "capabilities[1].intent"},
		{"llm without models", func(r *RegisterRequest) { r.Capabilities[0].Models = nil }, "capabilities[0].models"},
		{"llm without max_tokens", func(r *RegisterRequest) { r.Capabilities[0].MaxTokens = 0 }, "capabilities[0].max_tokens"},
		{"empty model name", func(r *RegisterRequest) { r.Capabilities[1].Models = []string{""} }, "capabilities[1].models"},
		{"negative max_tokens on mcp", func(r *RegisterRequest) { r.Capabilities[1].MaxTokens = -1 }, "capabilities[1].max_tokens"},
		{"custom intent capability", func(r *RegisterRequest) { r.Capabilities[1].Intent = "urn:iicp:intent:x.acme:score:v1" }, ""},
		{"max_concurrent 0", func(r *RegisterRequest) { r.Limits.MaxConcurrent = 0 }, "limits.max_concurrent"},
		{"max_concurrent 1", func(r *RegisterRequest) { r.Limits.MaxConcurrent = 1 }, ""},
		{"max_concurrent 256", func(r *RegisterRequest) { r.Limits.MaxConcurrent = 256 }, ""},
		{"max_concurrent 257", func(r *RegisterRequest) { r.Limits.MaxConcurrent = 257 }, "limits.max_concurrent"},
		{"tokens_per_min negative", func(r *RegisterRequest) { r.Limits.TokensPerMin = -5 }, "limits.tokens_per_min"},
		{"tokens_per_min absent", func(r *RegisterRequest) { r.Limits.TokensPerMin = 0 }, ""},
	}
	for _, c := range cases {
		r := validRegister()
		c.edit(r)
		err := ValidateRegister(r)
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: unexpected %v", c.name, err)
		case c.field != "" && (err == nil || err.Field != c.field || err.Code != CodeValidationError):
			t.Errorf("%s: got %+v, want validation_error on %s", c.name, err, c.field)
		}
	}
	if ValidateRegister(nil) == nil {
		t.Fatal("nil register accepted")
	}
}

func TestDecodeRegisterJSON(t *testing.T) {
	body := []byte(`{"endpoint":"https://n.example.com","region":"us-west","capabilities":[{"intent":"urn:iicp:intent:llm:chat:v1","models":["m"],"max_tokens":10,"quantization":"q9_weird"}],"limits":{"max_concurrent":2,"tokens_per_min":100},"sdk_language":"go"}`)
	r, err := DecodeRegisterJSON(body)
	if err != nil || r.Capabilities[0].Quantization != "q9_weird" {
		t.Fatalf("register with unknown extras and advisory values: %v", err)
	}
	if _, err := DecodeRegisterJSON([]byte(`{"endpoint":"https://n.example.com","region":"us-west","capabilities":[],"limits":{"max_concurrent":"2"}}`)); err == nil || err.Field != "limits.max_concurrent" {
		t.Fatalf("string max_concurrent: %v", err)
	}
}

func f64(v float64) *float64 { return &v }
func intp(v int) *int        { return &v }

func TestValidateHeartbeat(t *testing.T) {
	id := "550e8400-e29b-41d4-a716-446655440000"
	cases := []struct {
		name  string
		h     Heartbeat
		field string
	}{
		{"minimal", Heartbeat{NodeID: id}, ""},
		{"full", Heartbeat{NodeID: id, Load: f64(0.5), ActiveJobs: intp(2)}, ""},
		{"bad node id", Heartbeat{NodeID: "node-1"}, "node_id"},
		{"load above 1", Heartbeat{NodeID: id, Load: f64(1.5)}, "load"},
		{"negative load", Heartbeat{NodeID: id, Load: f64(-0.1)}, "load"},
		{"negative jobs", Heartbeat{NodeID: id, ActiveJobs: intp(-1)}, "active_jobs"},
		{"metrics batch", Heartbeat{NodeID: id, Metrics: &HeartbeatMetrics{TasksSuccess: 3, TasksFailed: 1}, MetricsBatchID: "mb-1"}, ""},
		{"negative success", Heartbeat{NodeID: id, Metrics: &HeartbeatMetrics{TasksSuccess: -1}}, "metrics"},
		{"negative latency", Heartbeat{NodeID: id, Metrics: &HeartbeatMetrics{AvgLatencyMs: f64(-1)}}, "metrics"},
		{"batch id too long", Heartbeat{NodeID: id, MetricsBatchID: strings.Repeat("b", 65)}, "metrics_batch_id"},
		{"batch id control char", Heartbeat{NodeID: id, MetricsBatchID: "b\n1"}, "metrics_batch_id"},
	}
	for _, c := range cases {
		err := ValidateHeartbeat(&c.h)
		if (c.field == "") != (err == nil) || (err != nil && err.Field != c.field) {
			t.Errorf("%s: got %v, want field %q", c.name, err, c.field)
		}
	}
	if _, err := DecodeHeartbeatJSON([]byte(`{"node_id":"` + id + `","load":0.2,"extra":true}`)); err != nil {
		t.Fatal(err)
	}
}

func TestPROTO_MSG_01_TaskIDUUIDv4(t *testing.T) {
	cases := map[string]bool{
		"550e8400-e29b-41d4-a716-446655440000":   true,
		"550E8400-E29B-41D4-A716-446655440000":   true,  // RFC 9562 input is case-insensitive
		"550e8400-e29b-41d4-c716-446655440000":   false, // variant 110x (Microsoft)
		"550e8400-e29b-41d4-7716-446655440000":   false, // variant 0xxx (NCS)
		"550e8400-e29b-71d4-a716-446655440000":   false, // version 7
		"550e8400e29b41d4a716446655440000":       false, // no hyphens
		"550e8400-e29b-41d4-a716-44665544000g":   false,
		"{550e8400-e29b-41d4-a716-446655440000}": false,
	}
	for s, want := range cases {
		if ValidUUIDv4(s) != want {
			t.Errorf("ValidUUIDv4(%q) = %v", s, !want)
		}
	}
}

func TestTraceIDBytes(t *testing.T) {
	a, ok1 := TraceIDBytes("4bf92f3577b34da6a3ce929d0e0e4736")
	b, ok2 := TraceIDBytes("4bf92f35-77b3-4da6-a3ce-929d0e0e4736")
	if !ok1 || !ok2 || a != b || a[0] != 0x4b || a[15] != 0x36 {
		t.Fatalf("trace id forms: %x %x", a, b)
	}
	for _, bad := range []string{"", "4bf9", "zz f92f3577b34da6a3ce929d0e0e4736"[:32], "4bf92f35-77b3-4da6-a3ce-929d0e0e473g"} {
		if _, ok := TraceIDBytes(bad); ok {
			t.Errorf("accepted %q", bad)
		}
	}
}
