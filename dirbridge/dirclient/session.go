package dirclient

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Heartbeat interval bounds: a directory's next_heartbeat_ms is obeyed
// within these, so a bogus 0 cannot turn the node into a flood and a bogus
// huge value cannot let the registration expire.
const (
	minHeartbeat = 100 * time.Millisecond
	maxHeartbeat = 10 * time.Minute
	// maxRetryAfterJitter caps the random delay added to a Retry-After, so a
	// fleet told to wait does not return in one burst.
	maxRetryAfterJitter = 5 * time.Second
	// lookupTimeout bounds resolving the endpoint host for the §11.2 check.
	lookupTimeout = 2 * time.Second
)

// Load is what a heartbeat reports about the node.
type Load struct {
	Load       float64
	ActiveJobs int
	Available  bool
}

// Credentials are what a directory issued to this node.
type Credentials struct {
	NodeID string `json:"node_id"`
	// NodeToken is LOG-FORBIDDEN.
	NodeToken string `json:"node_token,omitempty"`
	// ProxyToken authenticates telemetry only; LOG-FORBIDDEN.
	ProxyToken string     `json:"proxy_token,omitempty"`
	IssuedAt   time.Time  `json:"issued_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	// PendingMetrics is a metrics batch with outcomes the directory has not
	// acknowledged yet, kept so a restart resends it unchanged (iicp-dir.md
	// §3.2: retain and retry until acknowledged).
	PendingMetrics *PendingMetrics `json:"pending_metrics_batch,omitempty"`
}

// CredentialStore persists credentials per directory URL. Save must be
// durable when it returns.
type CredentialStore interface {
	Load(directory string) (Credentials, bool, error)
	Save(directory string, c Credentials) error
}

// SessionConfig wires a Session. Client and Registration are required.
type SessionConfig struct {
	Client *Client
	// Registration builds the current REGISTER body (endpoint, region,
	// capabilities, limits, extensions); called before every registration so
	// changes (new models, mesh addresses) are published on the next one.
	Registration func() wire.RegisterRequest
	// Load reports heartbeat figures; nil reports an idle, available node.
	Load func() Load
	// Outcomes reports the node's cumulative task outcomes; each heartbeat
	// carries the change since the last batch as a metrics batch
	// (iicp-dir.md §3.2). nil sends no metrics.
	Outcomes func() Outcomes
	// Store persists credentials; nil keeps them in memory only.
	Store CredentialStore
	// OnToken receives every accepted node_id and token (initial and
	// rotated), e.g. to hand the token to the task engine; "" on deregister.
	OnToken func(nodeID, token string)

	HeartbeatFallback time.Duration // until the directory names an interval
	BackoffMin        time.Duration
	BackoffMax        time.Duration
	TokenRefresh      time.Duration // 0 = never rotate on a timer
	RequestTimeout    time.Duration
	DeregisterTimeout time.Duration

	// LookupHost resolves the endpoint host for the observed-IP check.
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// Jitter returns a uniform value in [0,1); tests make it deterministic.
	Jitter func() float64
	Logger *slog.Logger
}

// State is where a Session is in its lifecycle.
type State string

// Session states.
const (
	StateStarting   State = "starting"
	StateRegistered State = "registered"
	// StateRetrying: the directory is unreachable, failing or rate limiting;
	// the node keeps serving and retries with backoff.
	StateRetrying State = "retrying"
	// StateRejected: the directory refused the registration (4xx); retried
	// slowly because it usually needs an operator to fix something.
	StateRejected State = "rejected"
	StateStopped  State = "stopped"
)

// Status is a snapshot for `meshnode status`. It never holds the token.
type Status struct {
	Directory           string    `json:"directory"`
	State               State     `json:"state"`
	NodeID              string    `json:"node_id,omitempty"`
	ObservedSourceIP    string    `json:"observed_source_ip,omitempty"`
	EndpointMismatch    bool      `json:"endpoint_mismatch,omitempty"`
	RegisteredAt        time.Time `json:"registered_at,omitzero"`
	TokenIssuedAt       time.Time `json:"token_issued_at,omitzero"`
	LastHeartbeat       time.Time `json:"last_heartbeat,omitzero"`
	HeartbeatIntervalMs int64     `json:"heartbeat_interval_ms,omitempty"`
	Heartbeats          int64     `json:"heartbeats"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	LastError           string    `json:"last_error,omitempty"`
	// NextRetry is when a failed registration or heartbeat is retried
	// (zero while the directory answers), so status can say "retrying in".
	NextRetry time.Time `json:"next_retry,omitzero"`
	// Reputation is what the directory's last PONG said about this node.
	Reputation
}

// Session keeps one directory registration alive. Run it with Serve.
type Session struct {
	cfg     SessionConfig
	log     *slog.Logger
	refresh chan struct{}
	beat    chan struct{}

	mu       sync.Mutex
	creds    Credentials
	status   Status
	interval time.Duration
	batches  batcher
}

// NewSession validates cfg and fills defaults.
func NewSession(cfg SessionConfig) (*Session, error) {
	if cfg.Client == nil || cfg.Registration == nil {
		return nil, errors.New("client: session needs a Client and a Registration func")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.HeartbeatFallback, 30*time.Second)
	def(&cfg.BackoffMin, time.Second)
	def(&cfg.BackoffMax, time.Minute)
	def(&cfg.RequestTimeout, 10*time.Second)
	def(&cfg.DeregisterTimeout, 3*time.Second)
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}
	if cfg.Load == nil {
		cfg.Load = func() Load { return Load{Available: true} }
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	if cfg.LookupHost == nil {
		cfg.LookupHost = net.DefaultResolver.LookupHost
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Session{
		cfg:      cfg,
		log:      cfg.Logger.With("directory", cfg.Client.URL()),
		refresh:  make(chan struct{}, 1),
		beat:     make(chan struct{}, 1),
		interval: cfg.HeartbeatFallback,
	}
	s.status = Status{Directory: cfg.Client.URL(), State: StateStarting}
	return s, nil
}

// Status returns a snapshot.
func (s *Session) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Refresh asks for a re-registration soon (capabilities or addresses changed).
func (s *Session) Refresh() {
	select {
	case s.refresh <- struct{}{}:
	default:
	}
}

// Beat asks for a heartbeat now, e.g. when the node's availability
// changed: the directory then stops (or resumes) routing to it within
// one request instead of one heartbeat interval. Before the first
// registration it does nothing; the registration carries the state.
func (s *Session) Beat() {
	select {
	case s.beat <- struct{}{}:
	default:
	}
}

type action int

const (
	actRegister action = iota
	actHeartbeat
)

// Serve registers, heartbeats until ctx ends, then deregisters within
// DeregisterTimeout. It returns nil on shutdown: a directory outage is
// never fatal to the node (e050 invariant external_directory_loss_is_not_runtime_death).
func (s *Session) Serve(ctx context.Context) error {
	if c, ok, err := s.cfg.Store.Load(s.cfg.Client.URL()); err != nil {
		s.log.Warn("reading saved directory credentials", "error", err)
	} else if ok {
		s.mu.Lock()
		s.creds = c
		s.batches.restore(c.PendingMetrics)
		s.mu.Unlock()
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := actRegister
	for {
		select {
		case <-ctx.Done():
			s.deregister(ctx)
			return nil
		case <-s.refresh:
			next = actRegister
		case <-s.beat:
			if next != actHeartbeat {
				continue // registering or backing off: the timer stands
			}
		case <-timer.C:
		}
		var wait time.Duration
		if next == actRegister {
			wait, next = s.register(ctx)
		} else {
			wait, next = s.heartbeat(ctx)
		}
		if ctx.Err() != nil {
			continue // shut down without counting the cancelled call as a failure
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// register sends REGISTER and decides what comes next.
func (s *Session) register(ctx context.Context) (time.Duration, action) {
	req := s.cfg.Registration()
	s.mu.Lock()
	if req.NodeID == "" {
		req.NodeID = s.creds.NodeID
	}
	// Send the current token when we have one (e050 send_current_token_when_present):
	// it proves ownership and rotates the token.
	req.CurrentNodeToken = s.creds.NodeToken
	s.mu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	ack, err := s.cfg.Client.Register(rctx, &req)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return 0, actRegister
		}
		return s.registerFailed(err)
	}
	now := time.Now()
	c := Credentials{NodeID: ack.NodeID, NodeToken: ack.NodeToken, ProxyToken: ack.ProxyToken, IssuedAt: now}
	if ack.ExpiresAt != nil {
		if t, perr := time.Parse(time.RFC3339, *ack.ExpiresAt); perr == nil {
			c.ExpiresAt = &t
		}
	}
	s.mu.Lock()
	c.PendingMetrics = s.creds.PendingMetrics
	s.mu.Unlock()
	// Persist only the accepted successor (e050 persist_only_accepted_successor).
	if err := s.cfg.Store.Save(s.cfg.Client.URL(), c); err != nil {
		s.log.Error("saving directory credentials; the new token is used but will not survive a restart", "error", err)
	}
	interval := s.clampInterval(ack.NextHeartbeatMs)
	mismatch := s.observedMismatch(ctx, req.Endpoint, ack.ObservedSourceIP)

	s.mu.Lock()
	prevObserved := s.status.ObservedSourceIP
	wasRegistered := s.status.State == StateRegistered
	s.creds = c
	s.interval = interval
	s.status.State = StateRegistered
	s.status.NodeID = ack.NodeID
	s.status.ObservedSourceIP = ack.ObservedSourceIP
	s.status.EndpointMismatch = mismatch
	s.status.RegisteredAt = now
	s.status.TokenIssuedAt = now
	s.status.HeartbeatIntervalMs = interval.Milliseconds()
	s.status.ConsecutiveFailures = 0
	s.status.LastError = ""
	s.status.NextRetry = time.Time{}
	s.mu.Unlock()

	if s.cfg.OnToken != nil {
		s.cfg.OnToken(ack.NodeID, ack.NodeToken)
	}
	if wasRegistered {
		s.log.Debug("registration refreshed, token rotated", "node_id", ack.NodeID)
	} else {
		s.log.Info("registered with directory", "node_id", ack.NodeID, "observed_source_ip", ack.ObservedSourceIP, "heartbeat", interval)
	}
	if mismatch && ack.ObservedSourceIP != prevObserved {
		host := endpointHost(req.Endpoint)
		// iicp-core.md §11.2 wording.
		s.log.Warn("Observed external IP "+ack.ObservedSourceIP+" does not match endpoint host "+host+
			" — this node may be behind NAT or a misconfigured reverse proxy.",
			"observed_source_ip", ack.ObservedSourceIP, "endpoint_host", host)
	}
	return interval, actHeartbeat
}

// registerFailed classifies a failed REGISTER.
func (s *Session) registerFailed(err error) (time.Duration, action) {
	switch {
	case errors.Is(err, ErrUnauthorized):
		// The saved token is not (or no longer) valid here: drop it and
		// register afresh rather than replaying a dead credential.
		s.mu.Lock()
		hadToken := s.creds.NodeToken != ""
		s.creds.NodeToken = ""
		s.mu.Unlock()
		if hadToken {
			s.fail(StateRetrying, err, false)
			return s.cfg.BackoffMin, actRegister
		}
		return s.fail(StateRejected, err, true), actRegister
	case errors.Is(err, ErrRejected):
		// 403 IICP-E049/E050 (ownership), 422 validation/liveness, E035
		// non-routable endpoint: keep the saved token (e050
		// failed_registration_preserves_saved_token) and retry slowly.
		return s.fail(StateRejected, err, true), actRegister
	default:
		return s.fail(StateRetrying, err, false), actRegister
	}
}

// heartbeat sends HEARTBEAT and decides what comes next.
func (s *Session) heartbeat(ctx context.Context) (time.Duration, action) {
	s.mu.Lock()
	c := s.creds
	interval := s.interval
	s.mu.Unlock()
	if c.NodeToken == "" {
		return 0, actRegister
	}
	l := s.cfg.Load()
	hb := wire.Heartbeat{NodeID: c.NodeID, Load: &l.Load, ActiveJobs: &l.ActiveJobs, Available: &l.Available}
	if s.cfg.Outcomes != nil {
		b := s.nextBatch()
		hb.Metrics, hb.MetricsBatchID = &b.metrics, b.id
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	pong, err := s.cfg.Client.Heartbeat(rctx, c.NodeToken, &hb)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return 0, actHeartbeat
		}
		switch {
		case errors.Is(err, ErrUnauthorized):
			// Token revoked or rotated elsewhere: re-register without it.
			s.mu.Lock()
			s.creds.NodeToken = ""
			s.mu.Unlock()
			s.fail(StateRetrying, err, false)
			return s.cfg.BackoffMin, actRegister
		case errors.Is(err, ErrNotFound):
			// The directory lost or expired the node: register again.
			s.fail(StateRetrying, err, false)
			return s.cfg.BackoffMin, actRegister
		default:
			// Directory down or overloaded: keep the registration and keep
			// heartbeating; it usually survives a directory restart.
			return s.fail(StateRetrying, err, false), actHeartbeat
		}
	}
	if pong.NextHeartbeatMs > 0 {
		interval = s.clampInterval(pong.NextHeartbeatMs)
	}
	s.mu.Lock()
	recovered := s.status.ConsecutiveFailures > 0
	s.interval = interval
	s.status.State = StateRegistered
	s.status.LastHeartbeat = time.Now()
	s.status.HeartbeatIntervalMs = interval.Milliseconds()
	s.status.Heartbeats++
	s.status.ConsecutiveFailures = 0
	s.status.LastError = ""
	s.status.NextRetry = time.Time{}
	s.status.Reputation.update(pong)
	settled := hb.Metrics != nil && s.batches.acknowledged(pong, &s.status.Reputation)
	s.mu.Unlock()
	if settled {
		s.keepPending(nil)
	}
	if recovered {
		s.log.Info("directory reachable again")
	}
	if s.rotationDue(c, time.Now().Add(interval)) {
		return interval, actRegister
	}
	return interval, actHeartbeat
}

// rotationDue reports whether the token should be refreshed by the time
// the next action runs: on the TokenRefresh timer, or at 80% of a
// directory-announced lifetime.
func (s *Session) rotationDue(c Credentials, at time.Time) bool {
	if c.IssuedAt.IsZero() {
		return false
	}
	if s.cfg.TokenRefresh > 0 && at.Sub(c.IssuedAt) >= s.cfg.TokenRefresh {
		return true
	}
	if c.ExpiresAt != nil {
		life := c.ExpiresAt.Sub(c.IssuedAt)
		return at.Sub(c.IssuedAt) >= life*8/10
	}
	return false
}

// fail records a failure and returns the jittered wait before the retry.
// slow selects the maximum backoff (refusals that need an operator).
func (s *Session) fail(st State, err error, slow bool) time.Duration {
	wait := s.failWait(st, err, slow)
	s.mu.Lock()
	s.status.NextRetry = time.Now().Add(wait)
	s.mu.Unlock()
	return wait
}

func (s *Session) failWait(st State, err error, slow bool) time.Duration {
	s.mu.Lock()
	s.status.ConsecutiveFailures++
	n := s.status.ConsecutiveFailures
	prev := s.status.State
	s.status.State = st
	s.status.LastError = err.Error()
	s.mu.Unlock()

	if prev != st || n == 1 {
		lvl := slog.LevelWarn
		if st == StateRejected {
			lvl = slog.LevelError
		}
		s.log.Log(context.Background(), lvl, "directory request failed; node keeps serving and retries",
			"state", string(st), "error", err)
	} else {
		s.log.Debug("directory request failed again", "failures", n, "error", err)
	}
	if ra := retryAfterOf(err); ra > 0 {
		j := time.Duration(float64(min(ra/5, maxRetryAfterJitter)) * s.cfg.Jitter())
		return ra + j // never earlier than the server asked
	}
	base := s.cfg.BackoffMax
	if !slow {
		base = s.cfg.BackoffMin
		for i := 1; i < n && base < s.cfg.BackoffMax; i++ {
			base *= 2
		}
		base = min(base, s.cfg.BackoffMax)
	}
	// Equal jitter: at least half the backoff, so retries stay spaced, plus
	// a random half, so a fleet does not retry in lockstep.
	return base/2 + time.Duration(float64(base/2)*s.cfg.Jitter())
}

func (s *Session) clampInterval(ms int64) time.Duration {
	if ms <= 0 {
		return s.cfg.HeartbeatFallback
	}
	d := time.Duration(ms) * time.Millisecond
	return max(minHeartbeat, min(d, maxHeartbeat))
}

// deregister removes the registration on shutdown, bounded by
// DeregisterTimeout, even though ctx is already cancelled.
func (s *Session) deregister(ctx context.Context) {
	s.mu.Lock()
	c := s.creds
	registered := s.status.State == StateRegistered || s.status.State == StateRetrying
	s.status.State = StateStopped
	s.mu.Unlock()
	if c.NodeToken == "" || !registered {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.DeregisterTimeout)
	defer cancel()
	err := s.cfg.Client.Deregister(dctx, c.NodeToken, c.NodeID)
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUnauthorized) {
		// Keep the token: the next start rotates it with current_node_token.
		s.log.Warn("deregister failed; the directory will expire the node", "error", err)
		return
	}
	// The token is kept: a directory that retires a deregistered node's
	// history (a meshnode directory keeps it for 30 days) gives it back to
	// the next REGISTER that presents this token as current_node_token; a
	// directory that does not answers 401 and the node registers afresh.
	// The proxy token is not: the next registration issues a new one.
	if c.ProxyToken != "" {
		c.ProxyToken = ""
		if err := s.cfg.Store.Save(s.cfg.Client.URL(), c); err != nil {
			s.log.Warn("saving credentials after deregister", "error", err)
		}
	}
	if s.cfg.OnToken != nil {
		s.cfg.OnToken(c.NodeID, "")
	}
	s.log.Info("deregistered from directory", "node_id", c.NodeID)
}

// observedMismatch implements iicp-core.md §11.2: does the directory's
// observed source IP belong to the endpoint host? Unknown answers (no IP,
// lookup failure) are not reported as mismatches.
func (s *Session) observedMismatch(ctx context.Context, endpoint, observed string) bool {
	obs := net.ParseIP(observed)
	host := endpointHost(endpoint)
	if obs == nil || host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return !ip.Equal(obs)
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, err := s.cfg.LookupHost(lctx, host)
	if err != nil {
		s.log.Debug("resolving endpoint host for the observed-IP check", "host", host, "error", err)
		return false
	}
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip != nil && ip.Equal(obs) {
			return false
		}
	}
	return true
}

func endpointHost(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// MemoryStore keeps credentials in memory (tests, ephemeral nodes).
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]Credentials
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[string]Credentials{}} }

// Load implements CredentialStore.
func (m *MemoryStore) Load(dir string) (Credentials, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.m[dir]
	return c, ok, nil
}

// Save implements CredentialStore.
func (m *MemoryStore) Save(dir string, c Credentials) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[dir] = c
	return nil
}
