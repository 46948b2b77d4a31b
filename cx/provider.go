package cx

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// DefaultMaxBody bounds the POST /v1/task body Open accepts. Base64url
// inflates ciphertext by 4/3, so this admits ~6 MiB of payload JSON; the
// transport's own cap may be lower, never higher.
const DefaultMaxBody = 8 << 20

// Provider opens confidentiality envelopes for a CX-Provider node (§5
// node-side steps). It is safe for concurrent use.
type Provider struct {
	ring    *KeyRing // nil: this node is not CX-capable (§6 E064/E050)
	replay  *replayCache
	model   ErrorModel
	maxBody int
	now     func() time.Time
	log     *slog.Logger

	opened   atomic.Uint64
	failures [failUnsupported + 1]atomic.Uint64
}

type providerConfig struct {
	model     ErrorModel
	maxBody   int
	replayTTL time.Duration
	replayMax int
	now       func() time.Time
	log       *slog.Logger
}

// ProviderOption configures a Provider; invalid values are reported by NewProvider.
type ProviderOption func(*providerConfig) error

// WithErrorModel selects the wire error model (default Tier1Collapsed, §6).
func WithErrorModel(m ErrorModel) ProviderOption {
	return func(c *providerConfig) error { c.model = m; return nil }
}

// WithMaxBody bounds the request body Open accepts (> 0).
func WithMaxBody(n int) ProviderOption {
	return func(c *providerConfig) error {
		if n <= 0 {
			return fmt.Errorf("cx: max body %d must be positive", n)
		}
		c.maxBody = n
		return nil
	}
}

// WithReplayCache sets the replay window and its entry bound (both > 0).
func WithReplayCache(ttl time.Duration, maxEntries int) ProviderOption {
	return func(c *providerConfig) error {
		if ttl <= 0 || maxEntries <= 0 {
			return fmt.Errorf("cx: replay cache ttl %v / entries %d must be positive", ttl, maxEntries)
		}
		c.replayTTL, c.replayMax = ttl, maxEntries
		return nil
	}
}

// WithProviderClock injects the clock used by the replay cache (tests).
func WithProviderClock(now func() time.Time) ProviderOption {
	return func(c *providerConfig) error {
		if now == nil {
			return errors.New("cx: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithProviderLogger sets the logger for open failures (reason and key id
// only; never payloads).
func WithProviderLogger(l *slog.Logger) ProviderOption {
	return func(c *providerConfig) error {
		if l == nil {
			return errors.New("cx: nil logger")
		}
		c.log = l
		return nil
	}
}

// NewProvider builds a Provider over ring. A nil ring makes a node that
// refuses every envelope (E050 in Tier 1, E064 in the granular model).
func NewProvider(ring *KeyRing, opts ...ProviderOption) (*Provider, error) {
	cfg := providerConfig{
		model:     Tier1Collapsed,
		maxBody:   DefaultMaxBody,
		replayTTL: DefaultReplayTTL,
		replayMax: DefaultReplayEntries,
		now:       time.Now,
		log:       slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	return &Provider{
		ring:    ring,
		replay:  newReplayCache(cfg.replayTTL, cfg.replayMax),
		model:   cfg.model,
		maxBody: cfg.maxBody,
		now:     cfg.now,
		log:     cfg.log,
	}, nil
}

// Opened is the result of Provider.Open.
type Opened struct {
	// Call is the CALL JSON for the normal decode/engine path. When the
	// body carried no iicp_conf it is the body itself, unchanged.
	Call []byte
	// Encrypted reports that Call was decrypted from an iicp_conf envelope.
	Encrypted bool
	// ResponseEncryption reports that the consumer negotiated §5a.3
	// (cx_response_encryption: "required"): Respond seals the result.
	ResponseEncryption bool

	taskID   string
	shared   []byte
	replayID replayKey
	provider *Provider
}

// Open detects an iicp_conf envelope in a POST /v1/task body (§4.1) and
// decrypts it (§5). A body without iicp_conf is returned unchanged. Every
// failure is a *wire.Error without detail (Tier 1: IICP-E050); the body,
// plaintext and key material never appear in it or in a log.
func (p *Provider) Open(body []byte) (*Opened, *wire.Error) {
	if len(body) > p.maxBody {
		return nil, wire.Errorf(wire.CodePayloadTooLarge, "request body exceeds %d bytes", p.maxBody)
	}
	if !mayCarryCX(body) {
		return &Opened{Call: body}, nil
	}
	top, werr := topLevel(body)
	if werr != nil {
		return nil, werr
	}
	conf, hasConf := present(top, FieldConf)
	mode, werr := responseMode(top)
	if werr != nil {
		return nil, werr
	}
	if !hasConf {
		if mode {
			return nil, wire.NewError(wire.CodeValidationError, "cx_response_encryption requires an iicp_conf request envelope").WithField(FieldResponseEncryption)
		}
		return &Opened{Call: body}, nil
	}
	if _, ok := present(top, "payload"); ok {
		return nil, wire.NewError(wire.CodeValidationError, "payload must be absent when iicp_conf is present").WithField("payload")
	}
	if b := foldedAlias(top); b != "" {
		return nil, wire.Errorf(wire.CodeValidationError, "a second %s member differing only in case is not allowed beside iicp_conf", b).WithField(b)
	}
	taskID, werr := stringField(top, "task_id")
	if werr != nil {
		return nil, werr
	}
	intent, werr := stringField(top, "intent")
	if werr != nil {
		return nil, werr
	}
	plain, shared, rk, f := p.decrypt(conf, taskID, intent)
	if f != failNone {
		p.failures[f].Add(1)
		p.log.Debug("cx: rejected confidential task", "reason", f.String(), "task_id", taskID)
		return nil, p.model.wireError(f)
	}
	delete(top, FieldConf)
	delete(top, FieldResponseEncryption)
	top["payload"] = plain
	call, err := json.Marshal(top)
	if err != nil { // plain was checked to be valid JSON; this cannot fail
		p.replay.forget(rk)
		return nil, wire.NewError(wire.CodeInternal, "re-encoding the decrypted call failed")
	}
	p.opened.Add(1)
	return &Opened{Call: call, Encrypted: true, ResponseEncryption: mode, taskID: taskID, shared: shared, replayID: rk, provider: p}, nil
}

// Stats counts opened envelopes and rejections by reason, for the node's
// metrics (e.g. meshnode_cx_open_failures_total{reason}). The reasons are a
// fixed set of names, safe as metric labels.
type Stats struct {
	Opened   uint64
	Failures map[string]uint64
}

// Stats returns the counters since the Provider was built.
func (p *Provider) Stats() Stats {
	st := Stats{Opened: p.opened.Load(), Failures: make(map[string]uint64, len(p.failures))}
	for f := failMalformed; f <= failUnsupported; f++ {
		st.Failures[f.String()] = p.failures[f].Load()
	}
	return st
}

// decrypt runs the node-side steps of §5 and the replay check. The replay
// entry is recorded only after the AEAD tag verified, so a forged copy of
// an honest envelope cannot burn its (kem, nonce) pair.
func (p *Provider) decrypt(conf json.RawMessage, taskID, intent string) (json.RawMessage, []byte, replayKey, failure) {
	if p.ring == nil {
		return nil, nil, replayKey{}, failUnsupported
	}
	env, f := parseEnvelope(conf)
	if f != failNone {
		return nil, nil, replayKey{}, f
	}
	priv, f := p.ring.lookup(env.RecipientKeyID)
	if f != failNone {
		return nil, nil, replayKey{}, f
	}
	fields, f := env.decodeFields()
	if f != failNone {
		return nil, nil, replayKey{}, f
	}
	plain, shared, f := openRequest(priv, fields, taskID, intent)
	if f != failNone {
		return nil, nil, replayKey{}, f
	}
	if !json.Valid(plain) {
		return nil, nil, replayKey{}, failDecrypt
	}
	rk := makeReplayKey(fields.ephemeral.Bytes(), fields.nonce)
	if !p.replay.add(rk, p.now()) {
		return nil, nil, replayKey{}, failReplay
	}
	return json.RawMessage(plain), shared, rk, failNone
}

// Respond renders the engine's RESPONSE for the HTTP body. When the
// consumer negotiated response encryption and the task succeeded, the
// result is sealed (§5a.3) as {"task_id","status","iicp_conf_resp"} with no
// plaintext result; error responses stay plain, since they carry only a
// code and a message (never payload) and the consumer must read the code.
// The HTTP status is resp.Error.Status() on failure and 200 otherwise.
//
// When the engine did not run the task (capacity, rate limit, 5xx before
// execution), the envelope is released from the replay cache, so the SDKs'
// retry of the identical body is not refused as a replay.
func (o *Opened) Respond(resp *wire.Response) ([]byte, error) {
	if resp == nil {
		return nil, errors.New("cx: nil response")
	}
	if o.Encrypted && resp.Error != nil && retryable(resp.Error.Status()) {
		o.provider.replay.forget(o.replayID)
	}
	plain, err := json.Marshal(resp)
	if err != nil {
		return nil, fmt.Errorf("cx: encoding response: %w", err)
	}
	if !o.Encrypted || !o.ResponseEncryption || resp.Status != wire.StatusSuccess {
		return plain, nil
	}
	return o.SealResponse(plain)
}

// SealResponse seals an already-encoded RESPONSE JSON unconditionally and
// returns the outer body {"task_id","status","iicp_conf_resp"}.
func (o *Opened) SealResponse(respJSON []byte) ([]byte, error) {
	if !o.Encrypted {
		return nil, errors.New("cx: no session: the request was not encrypted")
	}
	var head struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(respJSON, &head); err != nil {
		return nil, fmt.Errorf("cx: response is not a JSON object: %w", err)
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("cx: nonce: %w", err)
	}
	env, err := sealResponse(o.shared, nonce, o.taskID, respJSON)
	if err != nil {
		return nil, err
	}
	return json.Marshal(sealedResponse{TaskID: o.taskID, Status: head.Status, Conf: env})
}

// sealedResponse is the outer RESPONSE body when the result is encrypted:
// the SDK consumers require task_id and status to parse it.
type sealedResponse struct {
	TaskID string        `json:"task_id"`
	Status string        `json:"status"`
	Conf   *RespEnvelope `json:"iicp_conf_resp"`
}

// retryable reports the statuses at which the engine did not execute the
// task, so a retry of the same envelope must be admitted.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

// mayCarryCX is the fast path for plaintext tasks: a body can only hold an
// iicp_conf or cx_response_encryption member if the name appears literally,
// or spelled with a \u escape (which JSON allows in member names).
func mayCarryCX(body []byte) bool {
	return bytes.Contains(body, []byte(FieldConf)) ||
		bytes.Contains(body, []byte(FieldResponseEncryption)) ||
		bytes.Contains(body, []byte(`\u`))
}

// boundMembers are the members the envelope binds or replaces. Go's JSON
// decoder matches struct fields case-insensitively, so a "Payload" or
// "TASK_ID" beside the real one could reach the engine in its place.
var boundMembers = []string{"payload", "task_id", "intent"}

// foldedAlias returns the bound member that another top-level member
// equals up to case (Unicode simple folding, as encoding/json matches), or
// "". The offending name itself is caller-chosen and never echoed.
func foldedAlias(top map[string]json.RawMessage) string {
	for k := range top {
		for _, b := range boundMembers {
			if k != b && strings.EqualFold(k, b) {
				return b
			}
		}
	}
	return ""
}

// topLevel splits a JSON object body into its members.
func topLevel(body []byte) (map[string]json.RawMessage, *wire.Error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, wire.NewError(wire.CodeValidationError, "request body is not a JSON object")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &top); err != nil {
		return nil, wire.NewError(wire.CodeValidationError, "request body is not valid JSON")
	}
	return top, nil
}

// present returns m[k] unless it is missing or JSON null.
func present(m map[string]json.RawMessage, k string) (json.RawMessage, bool) {
	v, ok := m[k]
	if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil, false
	}
	return v, true
}

func stringField(m map[string]json.RawMessage, k string) (string, *wire.Error) {
	v, ok := present(m, k)
	var s string
	if !ok || json.Unmarshal(v, &s) != nil || s == "" {
		return "", wire.Errorf(wire.CodeValidationError, "%s must be a non-empty string", k).WithField(k)
	}
	return s, nil
}

// responseMode reads cx_response_encryption: absent/null → off, "required"
// → on; any other value is refused rather than silently answered in clear.
func responseMode(m map[string]json.RawMessage) (bool, *wire.Error) {
	v, ok := present(m, FieldResponseEncryption)
	if !ok {
		return false, nil
	}
	var s string
	if json.Unmarshal(v, &s) != nil || s != ResponseEncryptionRequired {
		return false, wire.NewError(wire.CodeValidationError, `cx_response_encryption must be "required"`).WithField(FieldResponseEncryption)
	}
	return true, nil
}
