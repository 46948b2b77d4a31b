package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// pacer issues requests at a fixed rate (open loop) to a pool of workers:
// the schedule does not slow down when the server does. A slot that finds
// every worker busy is counted as missed, so the achieved rate is honest.
type pacer struct {
	name    string
	rate    float64 // requests per second
	workers int
	do      func(ctx context.Context, seq int64) error

	ok, failed, missed atomic.Int64
	firstErr           atomic.Pointer[error]
	lat                []time.Duration
	elapsed            time.Duration
}

// pacerTick is the scheduling granularity.
const pacerTick = time.Millisecond

// run issues requests for d (bounded by ctx) and waits for the ones in
// flight.
func (p *pacer) run(ctx context.Context, d time.Duration) {
	slots := make(chan int64, p.workers)
	lats := make([][]time.Duration, p.workers)
	var wg sync.WaitGroup
	for w := range p.workers {
		wg.Go(func() {
			for seq := range slots {
				t0 := time.Now()
				if err := p.do(ctx, seq); err != nil {
					p.failed.Add(1)
					p.firstErr.CompareAndSwap(nil, &err)
					continue
				}
				p.ok.Add(1)
				lats[w] = append(lats[w], time.Since(t0))
			}
		})
	}
	start := time.Now()
	tick := time.NewTicker(pacerTick)
	var sent int64
	for ctx.Err() == nil {
		el := time.Since(start)
		if el >= d {
			break
		}
		for due := int64(el.Seconds() * p.rate); sent < due; sent++ {
			select {
			case slots <- sent:
			default:
				p.missed.Add(1)
			}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	tick.Stop()
	close(slots)
	wg.Wait()
	p.elapsed = time.Since(start)
	for _, l := range lats {
		p.lat = append(p.lat, l...)
	}
	slices.Sort(p.lat)
}

// result summarises the run.
func (p *pacer) result() PacedResult {
	r := PacedResult{Target: p.rate, OK: p.ok.Load(), Failed: p.failed.Load(), Missed: p.missed.Load(), Workers: p.workers}
	if p.elapsed > 0 {
		r.PerSec = float64(r.OK) / p.elapsed.Seconds()
	}
	if len(p.lat) > 0 {
		r.P50ms, r.P99ms = millis(percentile(p.lat, 50)), millis(percentile(p.lat, 99))
		r.MaxMs = millis(p.lat[len(p.lat)-1])
	}
	if e := p.firstErr.Load(); e != nil {
		r.FirstError = fmt.Sprintf("%s: %v", p.name, *e)
	}
	return r
}

// PacedResult is one paced load's outcome.
type PacedResult struct {
	Target     float64 `json:"target_per_s"`
	PerSec     float64 `json:"per_s"`
	Workers    int     `json:"workers"`
	OK         int64   `json:"ok"`
	Failed     int64   `json:"failed"`
	Missed     int64   `json:"missed_slots"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	FirstError string  `json:"first_error,omitempty"`
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
