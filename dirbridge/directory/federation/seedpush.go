package federation

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Push to replicas over plain HTTP (docs/spec-decisions.md "## federation:
// real-time replicas"). S.13 §5.3 has replicas poll GET /v1/events every
// 30 s; gossip pushes, but only when the operator wires a libp2p address by
// hand. So the seed also answers a long-poll: an authenticated replica adds
// wait=<seconds> and the seed holds the request until an event past
// since_seq is durable (or a liveness digest is due, for GET /v1/liveness)
// or the wait ends. The answer is the ordinary page or digest, so the
// replica verifies it exactly like a polled one. The response header
// HeaderWait names the wait the seed granted; a seed that does not send it
// does not long-poll, and the replica falls back to polling.

// HeaderWait is the long-poll wait the seed granted, in seconds. Present on
// every answer of a seed that supports it ("0": no wait this time).
const HeaderWait = "X-IICP-Wait"

// Long-poll bounds.
const (
	// maxWait stays under the directory's 30 s WriteTimeout, so a held
	// request is answered before the server gives up on writing it.
	maxWait = 20 * time.Second
	// maxWaiters bounds requests held open at once (each holds a socket
	// and a goroutine); beyond it a request is answered immediately.
	maxWaiters = 1024
	// maxWaitersPerReplica: an honest replica holds two (events and
	// liveness); a few more cover a restart overlapping the old ones. One
	// credential cannot take the seed's whole budget.
	maxWaitersPerReplica = 4
)

// signal is a broadcast: every waiter of the current round wakes at once.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed by the next fire. Take it before checking
// the condition, so a fire between check and wait is never missed.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// pusher holds the seed's long-poll state.
type pusher struct {
	appended signal        // fired after events are durable
	liveTick signal        // fired when a liveness digest is due
	waiters  atomic.Int64  // requests held now
	closing  chan struct{} // closed when the seed stops: release every waiter
	once     sync.Once

	mu      sync.Mutex
	holders map[string]int // replica_id -> requests held now
}

func newPusher() *pusher { return &pusher{closing: make(chan struct{}), holders: map[string]int{}} }

// admit reserves a held slot for replica, within both caps.
func (p *pusher) admit(replica string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holders[replica] >= maxWaitersPerReplica || p.waiters.Load() >= maxWaiters {
		return false
	}
	p.holders[replica]++
	p.waiters.Add(1)
	return true
}

func (p *pusher) release(replica string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holders[replica]--; p.holders[replica] <= 0 {
		delete(p.holders, replica)
	}
	p.waiters.Add(-1)
}

func (p *pusher) close() { p.once.Do(func() { close(p.closing) }) }

// parseWait reads wait=<seconds> (0..20; more is capped).
func parseWait(r *http.Request) (time.Duration, *wire.Error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, wire.NewError(wire.CodeValidationError, "wait must be a non-negative number of seconds").WithField("wait")
	}
	// Cap before converting: a huge n would overflow time.Duration.
	return time.Duration(min(n, int(maxWait/time.Second))) * time.Second, nil
}

// hold grants replica up to d of waiting on ch, unless too many requests
// are held already (in all, or by this replica). It sets HeaderWait to what
// it granted and returns when ch fires, the wait ends, the client leaves or
// the seed stops.
func (p *pusher) hold(ctx context.Context, w http.ResponseWriter, replica string, d time.Duration, ch <-chan struct{}) {
	if d <= 0 || !p.admit(replica) {
		w.Header().Set(HeaderWait, "0")
		return
	}
	defer p.release(replica)
	w.Header().Set(HeaderWait, strconv.Itoa(int(d/time.Second)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	case <-p.closing:
	}
}

// waitForEvents holds an authenticated replica's GET /v1/events?wait=N until
// the log passes since. Anyone else gets the ordinary immediate answer:
// held sockets are for registered replicas only.
func (s *Seed) waitForEvents(w http.ResponseWriter, r *http.Request, since int64, replica string) *wire.Error {
	d, werr := parseWait(r)
	if werr != nil || r.URL.Query().Get("wait") == "" {
		return werr
	}
	if replica == "" {
		w.Header().Set(HeaderWait, "0")
		return nil
	}
	ch := s.push.appended.wait()
	if head, _, _ := s.el.head(); head > since {
		d = 0 // already something to send
	}
	s.push.hold(r.Context(), w, replica, d, ch)
	return nil
}

// waitForLiveness holds GET /v1/liveness?wait=N until the next digest is
// due; the caller then builds it as for a poll.
func (s *Seed) waitForLiveness(w http.ResponseWriter, r *http.Request, replica string) *wire.Error {
	d, werr := parseWait(r)
	if werr != nil || r.URL.Query().Get("wait") == "" {
		return werr
	}
	s.push.hold(r.Context(), w, replica, d, s.push.liveTick.wait())
	return nil
}

// longPollsPerMinute is the budget of an authenticated replica's
// GET /v1/events?wait: under churn every answer carries events and the
// replica asks again at once, so it must exceed the public per-IP budget
// (several replicas may share one address); the replica spaces its
// requests by minPushSpacing to stay under it.
const longPollsPerMinute = 1200

// eventsLimit applies the per-IP budget of the public tail, or the
// per-replica one to an authenticated long-poll. A bad credential falls
// back to the per-IP budget (and is refused later).
func (s *Seed) eventsLimit(r *http.Request, now time.Time) (ok bool, retry time.Duration, replica string) {
	if r.URL.Query().Get("wait") != "" && r.Header.Get("Authorization") != "" {
		if row, werr := s.authReplica(r); werr == nil {
			ok, retry = s.pollRL.Allow(row.ReplicaID, now)
			return ok, retry, row.ReplicaID
		}
	}
	ok, retry = s.eventsRL.Allow(sourceKey(r), now)
	return ok, retry, ""
}
