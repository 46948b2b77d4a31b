package main

import (
	"context"
	"fmt"
)

// runTask is scenario "task" (issue 3): what the node adds over calling
// its backend directly. At each concurrency, interleaved: the direct
// backend call, POST /v1/task over plaintext loopback, and over TLS 1.3.
func runTask(ctx context.Context, env *benchEnv, rep *Report) error {
	ns, err := env.node()
	if err != nil {
		return err
	}
	plainURL, plainClient, err := ns.startBridge(false, env.maxConc())
	if err != nil {
		return fmt.Errorf("plaintext bridge: %w", err)
	}
	tlsURL, tlsClient, err := ns.startBridge(true, env.maxConc())
	if err != nil {
		return fmt.Errorf("TLS bridge: %w", err)
	}
	direct, closeDirect := directPath(env.backend)
	defer closeDirect()
	paths := []*path{
		direct,
		ns.bridgePath("node-http", plainURL, plainClient),
		ns.bridgePath("node-https", tlsURL, tlsClient),
	}
	before := env.backend.calls.Load()
	var answered int64
	for _, c := range env.opts.concurrency {
		rows, err := compare(ctx, "task", "POST /v1/task", paths, c, env.opts.duration, env.opts.rounds)
		if err != nil {
			return err
		}
		rep.Rows = append(rep.Rows, rows...)
	}
	for _, p := range paths {
		answered += p.seq.Load()
	}
	rep.Checks = append(rep.Checks, backendCountCheck("task", rep.Rows, env.backend.calls.Load()-before, answered))
	return nil
}

// backendCountCheck compares how many chat completions the backend
// answered with how many requests the paths made (warm-up included): one
// each, so a task run twice, or answered without reaching the backend,
// shows here. A request that failed may or may not have reached the
// backend, so failures widen the accepted range instead of hiding.
func backendCountCheck(scenario string, rows []Row, backendCalls, requests int64) Check {
	var failed int64
	for _, r := range rows {
		if r.Scenario == scenario {
			failed += r.Failed
		}
	}
	c := Check{
		Name: scenario + ": one backend call per request",
		OK:   backendCalls <= requests && backendCalls >= requests-failed,
		Info: fmt.Sprintf("%d requests sent (warm-up included), %d failed, backend answered %d", requests, failed, backendCalls),
	}
	return c
}
