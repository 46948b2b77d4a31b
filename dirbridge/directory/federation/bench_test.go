package federation

import (
	"context"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/wire"
)

// emitMany appends n REGISTER events for nodes i%nodes in batches.
func emitMany(b *testing.B, s *Seed, n, nodes int) {
	b.Helper()
	const batch = 1000
	for done := 0; done < n; {
		chs := make([]Change, 0, batch)
		for ; len(chs) < batch && done < n; done++ {
			id := nodeID(done % nodes)
			chs = append(chs, Change{Type: EventRegister, Payload: RegisterPayload{NodeID: id, Endpoint: "https://" + id + ".example",
				Region: "eu-central", Capabilities: []wire.Capability{{Intent: testIntent, Models: []string{"m1"}}}, Limits: &wire.Limits{MaxConcurrent: 4}}})
		}
		if _, err := s.Emit(context.Background(), chs...); err != nil {
			b.Fatal(err)
		}
	}
}

func copyFile(b *testing.B, from, to string) {
	b.Helper()
	src, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSteadyStateLag_200RegsPerSec: registrations at 200/s for 2 s
// emitted into the seed's log, replicated by gossip into a replica
// directory; reports the lag from the start of the seed's write to the node
// being in the replica directory's store.
func BenchmarkSteadyStateLag_200RegsPerSec(b *testing.B) {
	for b.Loop() {
		seed := newSeedEnv(b, true)
		var mu sync.Mutex
		applied := map[string]time.Time{}
		hook := directory.WithOnChange(func(ev directory.ChangeEvent) {
			mu.Lock()
			applied[ev.NodeID] = time.Now()
			mu.Unlock()
		})
		r := newReplicaEnv(b, seed, b.TempDir(), true, func(c *ReplicaDirectoryConfig) {
			c.Replica.PollInterval = time.Second
			c.Options = append(c.Options, hook)
		})
		waitFor(b, 10*time.Second, "bootstrap", func() bool { return r.r.ready.Load() })
		waitFor(b, 5*time.Second, "subscribed", func() bool { return len(seed.gn.ps.ListPeers(EventTopic(seed.seed.DID()))) >= 1 })
		emitted := map[string]time.Time{}
		tick := time.NewTicker(5 * time.Millisecond) // 200/s
		for i := range 400 {
			<-tick.C
			t0 := time.Now() // from the start of the seed's write
			seed.register(b, nodeID(i))
			emitted[nodeID(i)] = t0
		}
		tick.Stop()
		last := seed.seed.HeadSeq()
		waitFor(b, 10*time.Second, "replica caught up", func() bool { return r.r.AppliedSeq() >= last })
		var lags []float64
		mu.Lock()
		for id, t0 := range emitted {
			if t1, ok := applied[id]; ok {
				lags = append(lags, float64(t1.Sub(t0).Microseconds())/1000)
			}
		}
		mu.Unlock()
		slices.Sort(lags)
		b.ReportMetric(lags[len(lags)/2], "p50-ms")
		b.ReportMetric(lags[len(lags)*99/100], "p99-ms")
		b.ReportMetric(lags[len(lags)-1], "max-ms")
		r.stop()
		seed.stop()
	}
}
