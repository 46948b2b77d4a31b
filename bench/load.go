package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// maxOpsPerWindow bounds one measurement window by count as well as by
// time, so a path that fails instantly cannot spin through memory.
const maxOpsPerWindow = 2_000_000

// errMismatch marks an answer that came back for another request: wrong
// task_id or another request's content. Counted apart from plain failures.
var errMismatch = errors.New("answer belongs to another request")

// op is one request on a path. seq is unique per path for the whole run,
// so requests are distinguishable in their answers.
type op func(ctx context.Context, seq int64) error

// path is one way of getting the same work done (direct, bridge, mesh).
type path struct {
	name string
	do   op
	seq  atomic.Int64 // requests started, warm-up included
	// failures and mismatches count failed and mis-attributed requests,
	// warm-up included.
	failures   atomic.Int64
	mismatches atomic.Int64
}

// tally accumulates one path's windows.
type tally struct {
	lat      []time.Duration
	ok       int64
	failed   int64
	mismatch int64
	elapsed  time.Duration
	firstErr error
}

// runWindow runs p on conc workers until d has passed (or the count bound
// is hit). Requests in flight at the deadline finish and are counted:
// every request started is accounted for as ok, failed or mismatched.
func runWindow(ctx context.Context, p *path, conc int, d time.Duration, t *tally) {
	deadline := time.Now().Add(d)
	var started atomic.Int64
	lats := make([][]time.Duration, conc)
	var ok, failed, mismatch atomic.Int64
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) && started.Add(1) <= maxOpsPerWindow {
				seq := p.seq.Add(1)
				t0 := time.Now()
				err := p.do(ctx, seq)
				el := time.Since(t0)
				switch {
				case err == nil:
					ok.Add(1)
					lats[w] = append(lats[w], el)
				case errors.Is(err, errMismatch):
					mismatch.Add(1)
					p.mismatches.Add(1)
				default:
					failed.Add(1)
					p.failures.Add(1)
				}
				if err != nil {
					errOnce.Do(func() {
						if t.firstErr == nil {
							t.firstErr = fmt.Errorf("%s: %w", p.name, err)
						}
					})
				}
			}
		})
	}
	wg.Wait()
	t.elapsed += time.Since(start)
	for _, l := range lats {
		t.lat = append(t.lat, l...)
	}
	t.ok += ok.Load()
	t.failed += failed.Load()
	t.mismatch += mismatch.Load()
}

// warm runs n requests on conc workers outside any measurement, so pools,
// connections and code paths are hot on every path alike. Failures are
// counted on the path; only a path that serves none of them is a set-up
// fault, returned with its first error.
func warm(ctx context.Context, p *path, conc, n int) error {
	var next, ok atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				err := p.do(ctx, p.seq.Add(1))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, errMismatch):
					p.mismatches.Add(1)
				default:
					p.failures.Add(1)
				}
				if err != nil {
					once.Do(func() { firstErr = err })
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() == 0 {
		return fmt.Errorf("warming %s: no request succeeded: %w", p.name, firstErr)
	}
	return ctx.Err()
}

// compare measures paths against each other at one concurrency. The
// measured time d is split into rounds; every round runs each path in
// turn, so a change in machine load (the box is shared) hits all paths
// alike. paths[0] is the baseline the others are compared with.
func compare(ctx context.Context, scenario, label string, paths []*path, conc int, d time.Duration, rounds int) ([]Row, error) {
	for _, p := range paths {
		if err := warm(ctx, p, conc, max(2*conc, 32)); err != nil {
			return nil, err
		}
	}
	tallies := make([]tally, len(paths))
	slice := d / time.Duration(rounds)
	for range rounds {
		for i, p := range paths {
			runWindow(ctx, p, conc, slice, &tallies[i])
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	rows := make([]Row, len(paths))
	for i, p := range paths {
		rows[i] = rowOf(scenario, label, p.name, conc, &tallies[i])
	}
	for i := 1; i < len(rows); i++ {
		rows[i].against(&rows[0])
	}
	return rows, nil
}

// rowOf summarises a tally. Percentiles are over successful requests only;
// failures are reported as counts (and fail the run).
func rowOf(scenario, label, name string, conc int, t *tally) Row {
	r := Row{Scenario: scenario, Case: label, Path: name, Concurrency: conc,
		OK: t.ok, Failed: t.failed, Mismatched: t.mismatch}
	if t.firstErr != nil {
		r.FirstError = t.firstErr.Error()
	}
	if len(t.lat) > 0 {
		slices.Sort(t.lat)
		r.P50us = micros(percentile(t.lat, 50))
		r.P99us = micros(percentile(t.lat, 99))
	}
	if t.elapsed > 0 {
		r.PerSec = float64(t.ok) / t.elapsed.Seconds()
	}
	return r
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
