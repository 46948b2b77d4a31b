package main

import (
	"context"
	"fmt"
)

// runTask is scenario "task" (issues 3 and 11): what the node adds over
// calling its backend directly, and how much of a bare reverse-proxy hop's
// throughput it keeps. At each concurrency, interleaved: the direct backend
// call, the same call through httputil.ReverseProxy, POST /v1/task over
// plaintext loopback, and over TLS 1.3.
func runTask(ctx context.Context, env *benchEnv, rep *Report) error {
	ns, err := env.node()
	if err != nil {
		return err
	}
	plain, secure, err := ns.bridgePaths(env.maxConc())
	if err != nil {
		return err
	}
	direct, closeDirect := directPath(env.backend)
	defer closeDirect()
	proxy, closeProxy, err := proxyPath(env.backend)
	if err != nil {
		return err
	}
	defer closeProxy()
	paths := []*path{direct, proxy, plain, secure}
	before := env.backend.calls.Load()
	for _, c := range env.opts.concurrency {
		rows, err := compare(ctx, "task", "POST /v1/task", paths, c, env.opts.duration, env.opts.rounds)
		if err != nil {
			return err
		}
		setVsProxy(rows)
		rep.Rows = append(rep.Rows, rows...)
	}
	rep.Checks = append(rep.Checks, pathChecks("task", paths, env.backend.calls.Load()-before)...)
	return nil
}

// bridgePaths are POST /v1/task over the plaintext and the TLS bridge,
// the pair both the task and the mesh scenario measure against.
func (s *nodeStack) bridgePaths(maxConc int) (plain, secure *path, err error) {
	plain, err = s.bridgePath(false, maxConc)
	if err != nil {
		return nil, nil, fmt.Errorf("plaintext bridge: %w", err)
	}
	secure, err = s.bridgePath(true, maxConc)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS bridge: %w", err)
	}
	return plain, secure, nil
}

// pathChecks account for every request of a scenario, warm-up included:
// none failed or came back to the wrong caller, and the backend answered
// one chat completion per request, so a task run twice, or answered
// without reaching the backend, shows. A failed request may or may not
// have reached the backend, so failures widen the accepted range.
func pathChecks(scenario string, paths []*path, backendCalls int64) []Check {
	var requests, failed, mismatched int64
	for _, p := range paths {
		requests += p.seq.Load()
		failed += p.failures.Load()
		mismatched += p.mismatches.Load()
	}
	return []Check{{
		Name: scenario + ": no task lost or mis-attributed",
		OK:   failed == 0 && mismatched == 0,
		Info: fmt.Sprintf("%d requests (warm-up included): %d failed, %d answered with another task's task_id or content", requests, failed, mismatched),
	}, {
		Name: scenario + ": one backend call per request",
		OK:   backendCalls <= requests && backendCalls >= requests-failed,
		Info: fmt.Sprintf("%d requests, %d failed, backend answered %d", requests, failed, backendCalls),
	}}
}
