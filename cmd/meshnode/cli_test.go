package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshnode/meshnode/wire"
)

// testEnv runs the CLI in-process with a fake environment.
func testEnv(vars map[string]string, stdin string) (*env, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &env{
		get:    func(k string) string { return vars[k] },
		stdin:  strings.NewReader(stdin),
		stdout: &out, stderr: &errb, ctx: context.Background(),
	}, &out, &errb
}

// execute runs args and returns the exit code the way run would.
func execute(e *env, args ...string) int {
	root := newRoot(e)
	root.SetArgs(args)
	err := root.ExecuteContext(e.ctx)
	if err == nil {
		return exitOK
	}
	if ee, ok := err.(*exitError); ok {
		return ee.code
	}
	return exitUsage
}

func TestEnvNames(t *testing.T) {
	e, _, _ := testEnv(nil, "")
	root := newRoot(e)
	tests := []struct {
		cmd, flag, want string
	}{
		{"", "home", "MESHNODE_HOME"},
		{"up", "home", "MESHNODE_HOME"}, // persistent flags keep the global name
		{"up", "http", "MESHNODE_UP_HTTP"},
		{"up", "max-concurrent", "MESHNODE_UP_MAX_CONCURRENT"},
		{"directory", "tls-cert", "MESHNODE_DIRECTORY_TLS_CERT"},
		{"call", "timeout", "MESHNODE_CALL_TIMEOUT"},
		{"status", "json", "MESHNODE_STATUS_JSON"},
	}
	for _, tc := range tests {
		c := root
		if tc.cmd != "" {
			c, _, _ = root.Find([]string{tc.cmd})
		}
		f := c.Flags().Lookup(tc.flag)
		if f == nil {
			f = c.InheritedFlags().Lookup(tc.flag)
		}
		if got := envName(c, f); got != tc.want {
			t.Errorf("%s --%s: %s, want %s", tc.cmd, tc.flag, got, tc.want)
		}
	}
}

// Every flag of every command has its env twin in the help text, so no
// flag can ship without one.
func TestEveryFlagDocumentsItsEnvTwin(t *testing.T) {
	e, _, _ := testEnv(nil, "")
	root := newRoot(e)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			if !strings.Contains(f.Usage, "[$MESHNODE_") {
				t.Errorf("%s --%s has no env twin in its usage", c.CommandPath(), f.Name)
			}
		})
		// --help shows examples on every command we define.
		if c.Parent() == root && c.Name() != "help" && c.Name() != "completion" && c.Example == "" {
			t.Errorf("%s has no examples", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}

func TestApplyEnvOverridesAndFlagsWin(t *testing.T) {
	vars := map[string]string{
		"MESHNODE_UP_HTTP":           "127.0.0.1:1234",
		"MESHNODE_UP_DIRECTORY":      "https://a.example,https://b.example",
		"MESHNODE_UP_MAX_CONCURRENT": "9",
	}
	e, _, _ := testEnv(vars, "")
	root := newRoot(e)
	up, _, _ := root.Find([]string{"up"})
	if err := up.ParseFlags([]string{"--max-concurrent", "3"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(up, e.get); err != nil {
		t.Fatal(err)
	}
	get := func(n string) string { return up.Flags().Lookup(n).Value.String() }
	if get("http") != "127.0.0.1:1234" {
		t.Fatalf("env not applied: %s", get("http"))
	}
	if get("directory") != "[https://a.example,https://b.example]" {
		t.Fatalf("repeatable env: %s", get("directory"))
	}
	if get("max-concurrent") != "3" {
		t.Fatalf("flag must win over env: %s", get("max-concurrent"))
	}
}

func TestExitCodes(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name string
		vars map[string]string
		args []string
		want int
	}{
		{"unknown flag", nil, []string{"status", "--bogus"}, exitUsage},
		{"unknown command", nil, []string{"frobnicate"}, exitUsage},
		{"bad env value", map[string]string{"MESHNODE_UP_MAX_CONCURRENT": "many"}, []string{"--home", home, "up"}, exitUsage},
		{"status without node", nil, []string{"--home", home, "status"}, exitNotRunning},
		{"peers without node", nil, []string{"--home", home, "peers"}, exitNotRunning},
		{"token without node", nil, []string{"--home", home, "token"}, exitNotRunning},
		{"bad intent", nil, []string{"--home", home, "call", "--intent", "chat please", "hi"}, exitUsage},
		{"bad timeout", nil, []string{"--home", home, "call", "--timeout", "10m", "hi"}, exitUsage},
		{"invalid override", nil, []string{"--home", home, "up", "--max-concurrent", "0"}, exitConfig},
		{"contradiction", nil, []string{"--home", home, "up", "--no-directory", "--directory", "https://d.example"}, exitUsage},
		{"replica without log", nil, []string{"--home", home, "directory", "--dev", "--seed", "http://127.0.0.1:1", "--no-seed-log"}, exitUsage},
		{"gossip contradiction", nil, []string{"--home", home, "directory", "--dev", "--no-gossip", "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1"}, exitUsage},
		{"directory bad listen", nil, []string{"--home", home, "directory", "--listen", "nowhere"}, exitConfig},
		{"version", nil, []string{"version", "--json"}, exitOK},
		{"paths", nil, []string{"--home", home, "paths"}, exitOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _, _ := testEnv(tc.vars, "")
			if got := execute(e, tc.args...); got != tc.want {
				t.Fatalf("exit %d, want %d", got, tc.want)
			}
		})
	}
}

func TestBuildPayload(t *testing.T) {
	e, _, _ := testEnv(nil, "  from stdin \n")
	tests := []struct {
		intent string
		raw    string
		args   []string
		want   string
	}{
		{wire.IntentChat, "", []string{"hello", "world"}, `{"messages":[{"content":"hello world","role":"user"}]}`},
		{wire.IntentCompletion, "", []string{"x"}, `{"prompt":"x"}`},
		{wire.IntentSummarise, "", []string{"x"}, `{"text":"x"}`},
		{wire.IntentEmbedding, "", []string{"x"}, `{"input":"x"}`},
		{wire.IntentChat, "", nil, `{"messages":[{"content":"from stdin","role":"user"}]}`},
		{"urn:iicp:intent:x.acme:thing:v1", `{"a":1}`, nil, `{"a":1}`},
	}
	for _, tc := range tests {
		got, err := buildPayload(e, tc.intent, tc.raw, tc.args)
		if err != nil {
			t.Fatalf("%s: %v", tc.intent, err)
		}
		var a, b any
		_ = json.Unmarshal(got, &a)
		_ = json.Unmarshal([]byte(tc.want), &b)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Fatalf("%s: %s, want %s", tc.intent, ja, jb)
		}
	}
	if _, err := buildPayload(e, "urn:iicp:intent:x.acme:thing:v1", "", []string{"p"}); err == nil {
		t.Fatal("custom intent without --payload accepted")
	}
}

func TestExpandIntentAndResultText(t *testing.T) {
	if expandIntent("llm:chat") != wire.IntentChat || expandIntent("llm:chat:v1") != wire.IntentChat || expandIntent(wire.IntentChat) != wire.IntentChat {
		t.Fatal("intent shorthand")
	}
	cases := map[string]string{
		`{"choices":[{"message":{"content":"hi"}}]}`: "hi",
		`{"choices":[{"text":"done"}]}`:              "done",
		`{"summary":"short","choices":[]}`:           "short",
		`{"data":[1,2]}`:                             `{"data":[1,2]}`,
	}
	for in, want := range cases {
		if got := resultText(json.RawMessage(in)); got != want {
			t.Errorf("%s -> %q, want %q", in, got, want)
		}
	}
}

// iicp-confidentiality.md §6: keyless nodes are refused by default;
// IICP_CX_ALLOW_PLAINTEXT=1 relaxes that, an explicit --require-encryption
// (or its env twin) wins over it.
func TestCallPlaintextOverride(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		args []string
		want bool
	}{
		{"default refuses", nil, nil, false},
		{"env override", map[string]string{envAllowPlaintext: "1"}, nil, true},
		{"env other value", map[string]string{envAllowPlaintext: "true"}, nil, false},
		{"flag wins over env", map[string]string{envAllowPlaintext: "1"}, []string{"--require-encryption"}, false},
		{"flag off", nil, []string{"--require-encryption=false"}, true},
		{"env twin of the flag", map[string]string{envAllowPlaintext: "1", "MESHNODE_CALL_REQUIRE_ENCRYPTION": "true"}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _, _ := testEnv(tc.vars, "")
			root := newRoot(e)
			cmd, _, err := root.Find([]string{"call"})
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := applyEnv(cmd, e.get); err != nil {
				t.Fatal(err)
			}
			var f callFlags
			f.requireEncryption, _ = cmd.Flags().GetBool("require-encryption")
			f.requireSet = cmd.Flags().Changed("require-encryption")
			if got := f.allowPlaintext(e); got != tc.want {
				t.Fatalf("allowPlaintext = %v, want %v", got, tc.want)
			}
		})
	}
}

// --no-mesh turns the mesh off and contradicts --p2p.
func TestUpNoMesh(t *testing.T) {
	e, _, _ := testEnv(nil, "")
	if code := execute(e, "--home", t.TempDir(), "up", "--no-mesh", "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1"); code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
}
