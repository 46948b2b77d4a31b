package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

// maxPromptBytes bounds a prompt read from stdin (IICP task invocations
// are capped at 1 MiB, iicp-framing.md §2).
const maxPromptBytes = 1 << 20

type callFlags struct {
	intent    string
	directory string
	timeout   time.Duration
	json      bool
	model     string
	token     string
	payload   string
	qos       string
	remote    bool
	// requireEncryption refuses nodes without an IICP-CX key; on by
	// default (iicp-confidentiality.md §6), off via IICP_CX_ALLOW_PLAINTEXT=1.
	requireEncryption bool
	// requireSet: --require-encryption (or its env twin) was given.
	requireSet bool
	// stream and noStream force or refuse printing tokens as they arrive
	// (default: on a terminal, for chat and completion).
	stream   bool
	noStream bool
}

// envAllowPlaintext is the §6 transitional override the SDKs share.
const envAllowPlaintext = "IICP_CX_ALLOW_PLAINTEXT"

func newCallCmd(e *env, g *globals) *cobra.Command {
	f := &callFlags{}
	cmd := &cobra.Command{
		Use:   "call [prompt...]",
		Short: "Send a task by intent to the best node",
		Long: `Send a task to the best node serving an intent and print the answer.

With a node running for this --home, the task goes through that node's admin endpoint,
which tries libp2p mesh peers first and then the nodes its directories list, using
directory-issued consumer tokens. With --directory (or no running node), meshnode call
discovers nodes itself and POSTs /v1/task to the best ones (at most 3); remote nodes
then need a token given with --token. A token is one node's: another node refuses it,
and an authorization failure is final (exit 5), so --directory with --token works only
when the directory lists just the node the token belongs to. To use your own node,
leave --directory out while it runs.

The prompt comes from the arguments or, when there are none, from stdin. --payload
sends a raw JSON payload instead, for intents without a prompt shape.

Payloads are end-to-end encrypted (IICP-CX) to every node that advertises a
cx_public_key. Nodes without one are refused (iicp-confidentiality.md §6);
IICP_CX_ALLOW_PLAINTEXT=1 allows them for debugging, unless --require-encryption
is given explicitly. The mesh path is encrypted by the libp2p secure channel
between the two nodes. --json reports the path (mesh, http or local), the serving
node or peer, and whether the payload was sealed.

When the node you call through serves the intent itself and is the best choice
(its selection value, with no network in between, is at least the best mesh
peer's), it serves the task itself: path local. --remote sends it to another node.
Mesh peers accept this node's calls on the strength of the membership credential
its directory issued (meshnode status shows its expiry), with no directory on the
path: the mesh keeps answering while the directory is down.`,
		Example: `  meshnode call "hello"
  echo "summarise this" | meshnode call --intent llm:summarize
  meshnode call --json --timeout 30s "what is IICP?"
  # one node's own token: only when the directory lists that node alone
  meshnode call --directory http://127.0.0.1:8010 --token "$(meshnode token)" "hi"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.requireSet = cmd.Flags().Changed("require-encryption")
			return runCall(cmd.Context(), e, g, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.intent, "intent", wire.IntentChat, "intent URN, or a short form like llm:chat")
	fl.StringVar(&f.directory, "directory", "", "discover through this directory instead of the local node")
	fl.DurationVar(&f.timeout, "timeout", 60*time.Second, "task timeout (constraints.timeout_ms, 100ms-300s)")
	fl.BoolVar(&f.json, "json", false, "print the full result as JSON: path (mesh|http|local), serving node/peer, RESPONSE")
	fl.StringVar(&f.model, "model", "", "pin a model")
	fl.StringVar(&f.token, "token", "", "operator token for auth.node_token (direct HTTP path only)")
	fl.StringVar(&f.payload, "payload", "", "raw JSON payload instead of a prompt")
	fl.StringVar(&f.qos, "qos", "", "QoS class: realtime, interactive or batch (constraints.qos)")
	fl.BoolVar(&f.stream, "stream", false, "print tokens as they arrive even when stdout is not a terminal")
	fl.BoolVar(&f.noStream, "no-stream", false, "wait for the whole answer before printing (default when stdout is not a terminal)")
	fl.BoolVar(&f.remote, "remote", false, "never serve on the local node, even when it serves the intent best")
	fl.BoolVar(&f.requireEncryption, "require-encryption", true, "refuse nodes that advertise no IICP-CX key (default; "+envAllowPlaintext+"=1 relaxes it unless this flag is given)")
	registerCallCompletions(cmd, e, g)
	return cmd
}

func runCall(ctx context.Context, e *env, g *globals, f *callFlags, args []string) error {
	intent := expandIntent(f.intent)
	if !wire.ValidIntent(intent) {
		return usageErr("--intent %q is not an intent URN (urn:iicp:intent:<domain>:<action>:v<N>)", f.intent)
	}
	if f.timeout < time.Duration(wire.MinTimeoutMs)*time.Millisecond || f.timeout > time.Duration(wire.MaxTimeoutMs)*time.Millisecond {
		return usageErr("--timeout %v outside 100ms-300s", f.timeout)
	}
	payload, err := buildPayload(e, intent, f.payload, args)
	if err != nil {
		return err
	}
	switch f.qos {
	case "", wire.QoSRealtime, wire.QoSInteractive, wire.QoSBatch:
	default:
		return usageErr("--qos %q: want realtime, interactive or batch", f.qos)
	}
	req := admin.CallRequest{Intent: intent, Payload: payload, Model: f.model, TimeoutMs: f.timeout.Milliseconds(),
		QoS: f.qos, AllowPlaintext: f.allowPlaintext(e), Remote: f.remote}
	p, err := resolvePaths(e, g)
	if err != nil {
		return err
	}
	if f.stream && f.noStream {
		return usageErr("--stream and --no-stream contradict each other")
	}
	var sp *streamPrinter
	if f.streams(e, intent) {
		sp = &streamPrinter{w: e.stdout}
	}
	var res *admin.CallResult
	if f.directory == "" {
		if ac, derr := admin.Dial(p); derr == nil {
			if sp != nil {
				res, err = ac.CallStream(ctx, req, sp.chunk)
			} else {
				res, err = ac.Call(ctx, req)
			}
			if !errors.Is(err, admin.ErrNotRunning) {
				return printCall(e, f, sp, res, err)
			}
		}
	}
	dir := f.directory
	if dir == "" {
		dir = defaultDirectory(e, g)
	}
	res, err = callDirect(ctx, dir, f.token, req, sp)
	return printCall(e, f, sp, res, err)
}

// allowPlaintext applies the §6 override: an explicit --require-encryption
// wins, else IICP_CX_ALLOW_PLAINTEXT=1 allows keyless nodes.
func (f *callFlags) allowPlaintext(e *env) bool {
	if f.requireSet {
		return !f.requireEncryption
	}
	return e.get(envAllowPlaintext) == "1"
}

// expandIntent accepts "llm:chat" for urn:iicp:intent:llm:chat:v1.
func expandIntent(s string) string {
	if strings.HasPrefix(s, "urn:") {
		return s
	}
	if !strings.Contains(s, ":v") {
		s += ":v1"
	}
	return "urn:iicp:intent:" + s
}

// buildPayload shapes the prompt for the well-known intents.
func buildPayload(e *env, intent, raw string, args []string) (json.RawMessage, error) {
	if raw != "" {
		if len(args) > 0 {
			return nil, usageErr("give either --payload or a prompt, not both")
		}
		if !json.Valid([]byte(raw)) {
			return nil, usageErr("--payload is not valid JSON")
		}
		return json.RawMessage(raw), nil
	}
	prompt := strings.Join(args, " ")
	if prompt == "" {
		if f, ok := e.stdin.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				return nil, usageErr("no prompt: pass it as arguments or on stdin")
			}
		}
		b, err := io.ReadAll(io.LimitReader(e.stdin, maxPromptBytes+1))
		if err != nil {
			return nil, withCode(exitFailure, fmt.Errorf("reading stdin: %w", err))
		}
		if len(b) > maxPromptBytes {
			return nil, usageErr("prompt on stdin exceeds %d bytes", maxPromptBytes)
		}
		prompt = strings.TrimSpace(string(b))
	}
	if prompt == "" {
		return nil, usageErr("empty prompt")
	}
	var v any
	switch intent {
	case wire.IntentChat:
		v = map[string]any{"messages": []map[string]string{{"role": "user", "content": prompt}}}
	case wire.IntentCompletion:
		v = map[string]string{"prompt": prompt}
	case wire.IntentSummarise:
		v = map[string]string{"text": prompt}
	case wire.IntentEmbedding:
		v = map[string]string{"input": prompt}
	default:
		return nil, usageErr("intent %s has no prompt shape; pass --payload JSON", intent)
	}
	b, _ := json.Marshal(v)
	return b, nil
}

// defaultDirectory is where a standalone call discovers: the directories of
// the node last run with this --home, else the config's, else the embedded
// default address.
func defaultDirectory(e *env, g *globals) string {
	p, err := resolvePaths(e, g)
	if err == nil {
		if rt, err := admin.ReadRuntime(p.Runtime); err == nil && len(rt.Directories) > 0 {
			return rt.Directories[0]
		}
		if cfg, _, err := loadConfig(e, g, p, false); err == nil {
			if len(cfg.Directory.URLs) > 0 {
				return cfg.Directory.URLs[0]
			}
			return "http://" + cfg.Directory.EmbeddedListen
		}
	}
	return "http://127.0.0.1:8010"
}

// callDirect discovers through dir and posts the task itself, through the
// same router the daemon uses (route.ForDirectory).
func callDirect(ctx context.Context, dir, token string, req admin.CallRequest, sp *streamPrinter) (*admin.CallResult, error) {
	dc, err := dirclient.New(dir, dirclient.WithUserAgent("meshnode/"+version()))
	if err != nil {
		return nil, usageErr("%v", err)
	}
	call := &wire.Call{TaskID: dirclient.NewUUID(), Intent: req.Intent, Payload: req.Payload, Model: req.Model,
		Constraints: wire.Constraints{TimeoutMs: req.TimeoutMs, QoS: req.QoS}}
	if token != "" {
		call.Auth = &wire.Auth{NodeToken: token}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(req.TimeoutMs)*time.Millisecond+10*time.Second)
	defer cancel()
	// Read from the federation like a node does: the seed's replicas from
	// its registry, the nearest healthy one first, the seed as fallback.
	rs, err := dirclient.NewReadSet(dirclient.ReadSetConfig{Seed: dc, WellKnown: true, ProbeTimeout: 3 * time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, withCode(exitFailure, err)
	}
	rs.Prime(ctx)
	r, err := route.ForDirectory(rs, nil)
	if err != nil {
		return nil, withCode(exitFailure, err)
	}
	var res *route.Result
	if sp != nil {
		res, err = r.CallStream(ctx, call, route.Query{AllowPlaintext: req.AllowPlaintext}, sp.chunk)
	} else {
		res, err = r.Call(ctx, call, route.Query{AllowPlaintext: req.AllowPlaintext})
	}
	switch {
	case errors.Is(err, route.ErrStreamBroken):
		return nil, wire.NewError(wire.CodeBackendError, "the serving node's answer stream broke; the output printed is incomplete")
	case res != nil && res.Path != "":
		return admin.FromRoute(res), nil // a final answer, successful or not: printCall reports it
	case errors.Is(err, dirclient.ErrUnavailable):
		return nil, withCode(exitNoNode, fmt.Errorf("%w (is a node or directory running? start one with `meshnode up`)", err))
	}
	return nil, err
}

// printCall prints the result and maps outcomes to exit codes.
func printCall(e *env, f *callFlags, sp *streamPrinter, res *admin.CallResult, err error) error {
	sp.end()
	var werr *wire.Error
	if err != nil {
		if errors.As(err, &werr) {
			switch werr.Code {
			case wire.CodeE033, wire.CodeNoAvailableNode, wire.CodeUnavailable:
				return withCode(exitNoNode, err)
			case wire.CodeE064:
				return withCode(exitNoNode, fmt.Errorf("%w (%s=1 allows plaintext for debugging)", err, envAllowPlaintext))
			}
			return withCode(exitTaskFailed, err)
		}
		return withCode(exitFailure, err)
	}
	if f.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return withCode(exitFailure, err)
		}
	}
	r := res.Response
	if r == nil {
		return withCode(exitFailure, errors.New("no response"))
	}
	if r.Status != wire.StatusSuccess {
		msg := r.Status
		if r.Error != nil {
			msg = fmt.Sprintf("%s: %s", r.Error.Code, r.Error.Message)
			if r.Error.Code == wire.CodeUnauthorized && res.Path != admin.PathMesh {
				msg += " (the node needs its operator token: --token)"
			}
		}
		return withCode(exitTaskFailed, fmt.Errorf("task failed on %s: %s", servedBy(res), msg))
	}
	if !f.json && (sp == nil || !sp.printed || len(r.Result) > 0 && string(r.Result) != "null") {
		fmt.Fprintln(e.stdout, resultText(r.Result))
	}
	return nil
}

func servedBy(res *admin.CallResult) string {
	switch {
	case res.PeerID != "":
		return "peer " + res.PeerID
	case res.Endpoint != "":
		return res.Endpoint
	case res.NodeID != "":
		return "node " + res.NodeID
	}
	return "the node"
}

// resultText extracts the answer text from the OpenAI-shaped results of
// the llm intents; anything else prints as JSON.
func resultText(raw json.RawMessage) string {
	var r struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
			Text string `json:"text"`
		} `json:"choices"`
		Summary string `json:"summary"`
	}
	if json.Unmarshal(raw, &r) == nil {
		if len(r.Choices) > 0 {
			if c := r.Choices[0].Message.Content; c != "" {
				return c
			}
			if t := r.Choices[0].Text; t != "" {
				return t
			}
		}
		if r.Summary != "" {
			return r.Summary
		}
	}
	return string(raw)
}
