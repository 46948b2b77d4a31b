package federation

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/directory"
)

// copyDir copies the regular files of a stopped replica's state directory.
func copyDir(b *testing.B, from, to string) {
	b.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			copyFile(b, filepath.Join(from, e.Name()), filepath.Join(to, e.Name()))
		}
	}
}

// BenchmarkReplicaDirectory_10kNodes_100kEvents: a seed holding 10,000
// registered nodes after 100,000 events; the replica is a real directory
// (as production runs it), so every verified event also lands in the
// directory's store and index. "bootstrap" is snapshot + tail into a fresh
// replica directory; "tail" replays all 100,000 events (verify + apply)
// into one that bootstrapped on the empty log. (It replaces
// BenchmarkBootstrap_10kNodes_100kEvents, which measured the same over the
// replica's former in-memory read index.)
func BenchmarkReplicaDirectory_10kNodes_100kEvents(b *testing.B) {
	seed := newSeedEnv(b, false)
	tmpl, key := b.TempDir(), newKey(b)
	r0 := newReplicaDirAt(b, seed.srv.URL, replicaDirOpts{stateDir: tmpl, key: key})
	waitFor(b, 10*time.Second, "template bootstrap", func() bool { return r0.rd.Replica().ready.Load() })
	r0.stop()
	start := time.Now()
	emitMany(b, seed.seed, 100_000, 10_000)
	b.Logf("seed: wrote and signed 100k events in %v", time.Since(start))
	head := seed.seed.HeadSeq()

	b.Run("bootstrap", func(b *testing.B) {
		for b.Loop() {
			t0 := time.Now()
			r := newReplicaDirAt(b, seed.srv.URL, replicaDirOpts{})
			waitFor(b, 2*time.Minute, "bootstrap", func() bool { return r.rd.Replica().AppliedSeq() >= head })
			b.ReportMetric(float64(time.Since(t0).Milliseconds()), "ms/bootstrap")
			if n := len(r.rd.Directory().NodeRecords()); n != 10_000 {
				b.Fatalf("replica directory holds %d nodes", n)
			}
			r.stop()
		}
	})
	b.Run("tail", func(b *testing.B) {
		for b.Loop() {
			dir := b.TempDir()
			copyDir(b, tmpl, dir)
			t0 := time.Now()
			r := newReplicaDirAt(b, seed.srv.URL, replicaDirOpts{stateDir: dir, key: key})
			waitFor(b, 5*time.Minute, "tail replay", func() bool { return r.rd.Replica().AppliedSeq() >= head })
			el := time.Since(t0)
			b.ReportMetric(float64(el.Milliseconds()), "ms/100k-events")
			b.ReportMetric(float64(head)/el.Seconds(), "events/s")
			if n := len(r.rd.Directory().NodeRecords()); n != 10_000 {
				b.Fatalf("replica directory holds %d nodes", n)
			}
			r.stop()
		}
	})
}

// BenchmarkDirectorySteadyStateLag_200RegsPerSec: real registrations at
// 200/s for 2 s through the seed directory's POST /v1/register, replicated
// by gossip into a replica directory; reports the lag from the seed's 201
// to the node being in the replica directory's index.
func BenchmarkDirectorySteadyStateLag_200RegsPerSec(b *testing.B) {
	for b.Loop() {
		seed := newSeedDir(b, seedDirOpts{gossip: true})
		var mu sync.Mutex
		applied := map[string]time.Time{}
		hook := directory.WithOnChange(func(ev directory.ChangeEvent) {
			mu.Lock()
			applied[ev.NodeID] = time.Now()
			mu.Unlock()
		})
		r := newReplicaDir(b, seed, replicaDirOpts{gossip: true, poll: time.Second, options: []directory.Option{hook}})
		waitFor(b, 10*time.Second, "bootstrap", func() bool { return r.rd.Replica().ready.Load() })
		waitTopic(b, seed, 1)
		node := healthSrv(b)
		acked := make([]time.Time, 400)
		ids := make([]string, 400)
		errs := make([]error, len(ids))
		var wg sync.WaitGroup
		tick := time.NewTicker(5 * time.Millisecond) // 200/s
		for i := range ids {
			<-tick.C
			ids[i] = newUUID()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = tryRegister(http.DefaultClient, seed.url, ids[i], node)
				acked[i] = time.Now()
			}()
		}
		tick.Stop()
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err)
		}
		waitFor(b, 10*time.Second, "replica caught up", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(applied) >= len(ids)
		})
		var lags []float64
		mu.Lock()
		for i, id := range ids {
			lags = append(lags, float64(applied[id].Sub(acked[i]).Microseconds())/1000)
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
