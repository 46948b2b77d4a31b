package mesh

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/wire"
)

// runConcurrent runs n tasks on conc workers and returns each task's
// latency and the wall time of the whole run.
func runConcurrent(b *testing.B, conc, n int, task func() error) ([]time.Duration, time.Duration) {
	b.Helper()
	lat := make([]time.Duration, n)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for i := range next {
				t0 := time.Now()
				if err := task(); err != nil {
					once.Do(func() { firstErr = err })
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	slices.Sort(lat)
	return lat, wall
}

func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// BenchmarkTaskStreamVsDirect measures what the mesh adds to a task: the
// same echo engine called directly and through Mesh.Call over a libp2p
// stream (native CBOR), by 1 and by 64 callers at once. Reported: p50/p99
// of both, the added p50/p99, and tasks/s over the stream.
//
//	go test -run '^$' -bench BenchmarkTaskStreamVsDirect -benchtime 2000x ./mesh/
func BenchmarkTaskStreamVsDirect(b *testing.B) {
	for _, tc := range []struct {
		name string
		tcp  bool
		conc int
	}{{"quic-c1", false, 1}, {"quic-c64", false, 64}, {"tcp-c1", true, 1}, {"tcp-c64", true, 64}} {
		b.Run(tc.name, func(b *testing.B) {
			ccfg := testConfig("client", false)
			ccfg.MaxConcurrent = 256
			client := startNode(b, newTestHost(b, tc.tcp), ccfg)
			scfg := testConfig("server", true)
			scfg.MaxConcurrent = 256
			server := startNode(b, newTestHost(b, tc.tcp), scfg)
			client.h.Peerstore().AddAddrs(server.h.ID(), server.h.Addrs(), time.Hour)
			ctx := context.Background()
			call := testCall()
			caller := wire.Caller{PeerID: client.h.ID().String(), Transport: "quic"}
			// Warm the connection so dialling is not measured.
			if _, _, err := client.m.Call(ctx, call, CallOptions{Peer: server.h.ID()}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			direct, _ := runConcurrent(b, tc.conc, b.N, func() error {
				server.engine.Execute(ctx, call, caller)
				return nil
			})
			stream, wall := runConcurrent(b, tc.conc, b.N, func() error {
				resp, _, err := client.m.Call(ctx, call, CallOptions{Peer: server.h.ID(), MaxAttempts: 1})
				if err == nil && resp.Status != wire.StatusSuccess {
					return resp.Error
				}
				return err
			})
			b.StopTimer()
			us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
			b.ReportMetric(us(pct(direct, 0.5)), "direct-p50-µs")
			b.ReportMetric(us(pct(direct, 0.99)), "direct-p99-µs")
			b.ReportMetric(us(pct(stream, 0.5)), "stream-p50-µs")
			b.ReportMetric(us(pct(stream, 0.99)), "stream-p99-µs")
			b.ReportMetric(us(pct(stream, 0.5)-pct(direct, 0.5)), "added-p50-µs")
			b.ReportMetric(us(pct(stream, 0.99)-pct(direct, 0.99)), "added-p99-µs")
			b.ReportMetric(float64(b.N)/wall.Seconds(), "tasks/s")
		})
	}
}

// BenchmarkAdvertConvergence50 starts 50 in-process nodes on loopback (TCP),
// all bootstrapped from one peer, and measures the time until every node
// holds every other node's advert. Target: < 10 s.
//
//	go test -run '^$' -bench BenchmarkAdvertConvergence50 -benchtime 1x ./mesh/
func BenchmarkAdvertConvergence50(b *testing.B) {
	const n = 50
	for range b.N {
		b.StopTimer()
		hosts := make([]*testNode, n)
		for i := range n {
			cfg := testConfig(nodeName(i), true)
			cfg.AdvertInterval = time.Second
			cfg.PeerTTL = 30 * time.Second
			hosts[i] = startNode(b, newTestHost(b, true), cfg)
		}
		b.StartTimer()
		start := time.Now()
		boot := []peer.AddrInfo{{ID: hosts[0].h.ID(), Addrs: hosts[0].h.Addrs()}}
		for _, nd := range hosts[1:] {
			nd.m.AddBootstrapPeers(boot)
		}
		waitFor(b, 60*time.Second, "50-node convergence", func() bool {
			return allServersKnown(hosts, func(int) bool { return true })
		})
		b.ReportMetric(time.Since(start).Seconds(), "converge-s")
		b.StopTimer()
		for _, nd := range hosts {
			nd.stop(b)
		}
		b.StartTimer()
	}
}
