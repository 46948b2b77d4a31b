package federation

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

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

// BenchmarkBootstrap_10kNodes_100kEvents: a seed holding 10,000 registered
// nodes after 100,000 events. "bootstrap" is a fresh replica's snapshot +
// tail to the head; "tail" replays all 100,000 events (verify + apply) into
// a replica that bootstrapped before they were written.
func BenchmarkBootstrap_10kNodes_100kEvents(b *testing.B) {
	seed := newSeedEnv(b, false)
	dir := b.TempDir()
	// A replica bootstrapped on the empty log, kept as a template for "tail".
	tmpl := filepath.Join(dir, "tmpl.db")
	r0 := newReplicaEnv(b, seed, tmpl, false)
	waitFor(b, 10*time.Second, "template bootstrap", func() bool { return r0.r.ready.Load() })
	r0.stop()
	start := time.Now()
	emitMany(b, seed.seed, 100_000, 10_000)
	b.Logf("seed: wrote and signed 100k events in %v", time.Since(start))
	head := seed.seed.HeadSeq()

	b.Run("bootstrap", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			t0 := time.Now()
			r := newReplicaEnv(b, seed, filepath.Join(dir, fmt.Sprintf("boot%d.db", i)), false)
			waitFor(b, 2*time.Minute, "bootstrap", func() bool { return r.r.AppliedSeq() >= head })
			b.ReportMetric(float64(time.Since(t0).Milliseconds()), "ms/bootstrap")
			if r.r.NodeCount() != 10_000 {
				b.Fatalf("replica has %d nodes", r.r.NodeCount())
			}
			r.stop()
		}
	})
	b.Run("tail", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			db := filepath.Join(dir, fmt.Sprintf("tail%d.db", i))
			copyFile(b, tmpl, db)
			t0 := time.Now()
			r := newReplicaEnv(b, seed, db, false, func(c *ReplicaConfig) { c.Key = r0.cfg.Key })
			waitFor(b, 5*time.Minute, "tail replay", func() bool { return r.r.AppliedSeq() >= head })
			el := time.Since(t0)
			b.ReportMetric(float64(el.Milliseconds()), "ms/100k-events")
			b.ReportMetric(float64(head)/el.Seconds(), "events/s")
			r.stop()
		}
	})
}

// lagSink records when each seq reached the replica.
type lagSink struct {
	mu sync.Mutex
	at map[int64]time.Time
}

func (s *lagSink) ApplyState(_ context.Context, ch *StateChange) error {
	s.mu.Lock()
	s.at[ch.Seq] = time.Now()
	s.mu.Unlock()
	return nil
}

// BenchmarkSteadyStateLag_200RegsPerSec: registrations at 200/s for 2 s
// through the seed, replicated by gossip; reports the emit→applied lag.
func BenchmarkSteadyStateLag_200RegsPerSec(b *testing.B) {
	for b.Loop() {
		seed := newSeedEnv(b, true)
		sink := &lagSink{at: map[int64]time.Time{}}
		r := newReplicaEnv(b, seed, filepath.Join(b.TempDir(), "r.db"), true, func(c *ReplicaConfig) {
			c.Sink, c.PollInterval = sink, time.Second
		})
		waitFor(b, 10*time.Second, "bootstrap", func() bool { return r.r.ready.Load() })
		waitFor(b, 5*time.Second, "subscribed", func() bool { return len(seed.gn.ps.ListPeers(EventTopic(seed.seed.DID()))) >= 1 })
		emitted := map[int64]time.Time{}
		tick := time.NewTicker(5 * time.Millisecond) // 200/s
		for i := range 400 {
			<-tick.C
			t0 := time.Now() // from the start of the seed's write
			ev := seed.register(b, nodeID(i))
			emitted[ev.Seq] = t0
		}
		tick.Stop()
		last := seed.seed.HeadSeq()
		waitFor(b, 10*time.Second, "replica caught up", func() bool { return r.r.AppliedSeq() >= last })
		var lags []float64
		sink.mu.Lock()
		for seq, t0 := range emitted {
			if t1, ok := sink.at[seq]; ok {
				lags = append(lags, float64(t1.Sub(t0).Microseconds())/1000)
			}
		}
		sink.mu.Unlock()
		slices.Sort(lags)
		b.ReportMetric(lags[len(lags)/2], "p50-ms")
		b.ReportMetric(lags[len(lags)*99/100], "p99-ms")
		b.ReportMetric(lags[len(lags)-1], "max-ms")
		r.stop()
		seed.stop()
	}
}
