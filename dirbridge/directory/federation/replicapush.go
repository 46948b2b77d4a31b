package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/meshnode/meshnode/internal/retry"
	"github.com/meshnode/meshnode/wire"
)

// The replica side of the seed's long-poll (seedpush.go): two goroutines
// hold GET /v1/events?wait and GET /v1/liveness?wait open and hand every
// answer to the sync loop, which verifies and applies it exactly like a
// polled page or digest. A seed that does not answer with HeaderWait does
// not push: the goroutine logs that once and ends, and the loop's polling
// carries on alone.

// Long-poll client tunables.
const (
	// pushWait is how long we ask the seed to hold a request: long enough
	// that an idle replica sends 4 requests a minute, well inside the
	// HTTP client's 30 s timeout.
	pushWait = 15 * time.Second
	// minPushSpacing paces back-to-back long-polls under churn (each answer
	// carries events and we ask again at once): at most ~1000 a minute,
	// under the seed's per-replica budget, at ≤ 60 ms extra latency.
	minPushSpacing = 60 * time.Millisecond
	// minLiveSpacing keeps liveness long-polls inside the seed's 30 per
	// minute per replica, whatever its digest interval.
	minLiveSpacing = 2 * time.Second
)

// pushed is one long-poll answer for the loop; done is closed once it is
// applied, so the next request asks from the new head.
type pushed struct {
	page *EventsResponse
	live *LivenessDigest
	done chan struct{}
}

// startPush runs both long-poll clients; the returned func waits for them
// after ctx ended.
func (r *Replica) startPush(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.pushEvents(ctx) }()
	go func() { defer wg.Done(); r.pushLiveness(ctx) }()
	return wg.Wait
}

// applyPushed applies a long-poll answer in the loop.
func (r *Replica) applyPushed(ctx context.Context, p pushed) {
	defer close(p.done)
	if p.live != nil {
		r.applyLiveness(ctx, p.live, "push")
		return
	}
	more, err := r.applyPage(ctx, p.page, "push")
	if err != nil && ctx.Err() == nil {
		r.log.Warn("applying pushed events", "error", err)
		r.triggerPoll() // re-fetch from the last valid seq
		return
	}
	if more {
		r.triggerPoll() // a full page: the poll pages through the rest
	}
}

// handOver gives p to the loop and waits until it is applied.
func (r *Replica) handOver(ctx context.Context, p pushed) bool {
	p.done = make(chan struct{})
	select {
	case r.pushIn <- p:
	case <-ctx.Done():
		return false
	}
	select {
	case <-p.done:
		return true
	case <-ctx.Done():
		return false
	}
}

// longPoll performs one held GET. supported is false when the seed answered
// 200 without HeaderWait (it does not long-poll); busy when it granted no
// wait.
func (r *Replica) longPoll(ctx context.Context, path string, limit int64) (body []byte, supported, busy bool, err error) {
	resp, body, err := r.seedGet(ctx, path, true, limit)
	if err != nil {
		return nil, false, false, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, true, false, seedError(resp.StatusCode, body)
	}
	granted := resp.Header.Get(HeaderWait)
	return body, granted != "", granted == "0", nil
}

// pushEvents long-polls the event tail until ctx ends or the seed turns out
// not to support it.
func (r *Replica) pushEvents(ctx context.Context) {
	bo := newBackoff(r.cfg.RetryInterval, r.cfg.PollInterval)
	announced, refused := false, false
	for ctx.Err() == nil {
		start := time.Now()
		path := "/v1/events?since_seq=" + strconv.FormatInt(r.appliedSeq.Load(), 10) +
			"&limit=" + strconv.Itoa(pollPageLimit) + "&wait=" + strconv.Itoa(int(pushWait/time.Second))
		body, supported, busy, err := r.longPoll(ctx, path, maxEventsBody)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if isCode(body, wire.CodeE045) {
				r.triggerPoll() // the poll re-bootstraps from a snapshot
			}
			r.log.Debug("long-polling seed events", "error", err, "retry_in", bo.delay())
			bo.sleep(ctx)
			continue
		case !supported:
			r.log.Info("seed does not push events (no long-poll on GET /v1/events); falling back to polling it",
				"poll_interval", r.cfg.PollInterval)
			return
		}
		var er EventsResponse
		if err := json.Unmarshal(body, &er); err != nil {
			r.reject("push", &VerifyError{Seq: r.appliedSeq.Load(), Reason: fmt.Errorf("%w: events page", ErrMalformed)})
			bo.sleep(ctx)
			continue
		}
		if !announced {
			r.log.Info("seed pushes events by long-poll: replica follows it in real time")
			announced = true
		}
		if !r.handOver(ctx, pushed{page: &er}) {
			return
		}
		if busy && len(er.Events) == 0 {
			if !refused {
				r.log.Warn("seed answers our long-polls at once (it holds too many, or our replica credential is no longer valid); retrying with backoff",
					"max_retry_in", r.cfg.PollInterval)
				refused = true
			}
			bo.sleep(ctx) // ask later
			continue
		}
		if refused && !busy {
			r.log.Info("seed holds our long-polls again: replica follows it in real time")
			refused = false
		}
		bo.reset()
		sleepCtx(ctx, time.Until(start.Add(minPushSpacing)))
	}
}

// pushLiveness long-polls liveness digests: the seed answers when its next
// digest is due.
func (r *Replica) pushLiveness(ctx context.Context) {
	bo := newBackoff(r.cfg.RetryInterval, r.cfg.LivenessInterval)
	for ctx.Err() == nil {
		start := time.Now()
		path := "/v1/liveness?since_ms=" + strconv.FormatInt(max(r.liveSinceMs.Load(), 0), 10) +
			"&wait=" + strconv.Itoa(int(pushWait/time.Second))
		body, supported, busy, err := r.longPoll(ctx, path, maxSnapshotBytes)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && isCode(body, wire.CodeNotFound):
			r.log.Debug("seed publishes no liveness digests; not long-polling them")
			return
		case err != nil:
			r.log.Debug("long-polling seed liveness", "error", err, "retry_in", bo.delay())
			bo.sleep(ctx)
			continue
		case !supported:
			r.log.Info("seed does not push liveness digests (no long-poll on GET /v1/liveness); falling back to polling it",
				"poll_interval", r.cfg.LivenessInterval)
			return
		}
		d, err := VerifyLiveness(r.seedKey, r.seedDID, body)
		if err != nil {
			r.reject("liveness", err)
			bo.sleep(ctx)
			continue
		}
		if !r.handOver(ctx, pushed{live: d}) {
			return
		}
		if busy {
			bo.sleep(ctx)
			continue
		}
		bo.reset()
		sleepCtx(ctx, time.Until(start.Add(minLiveSpacing)))
	}
}

// backoff paces retries: retry.Backoff from first, capped at ceiling.
type backoff struct {
	first, ceiling time.Duration
	n              int
}

func newBackoff(first, ceiling time.Duration) *backoff {
	return &backoff{first: first, ceiling: max(ceiling, first), n: 1}
}

func (b *backoff) reset() { b.n = 1 }

// delay is the pause the next sleep takes.
func (b *backoff) delay() time.Duration { return min(retry.Backoff(b.first, b.n), b.ceiling) }

func (b *backoff) sleep(ctx context.Context) {
	_ = retry.Sleep(ctx, b.delay())
	b.n++
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d > 0 {
		_ = retry.Sleep(ctx, d)
	}
}
