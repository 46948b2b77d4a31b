package node

import (
	"strconv"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// A cached child is the vector's own child: what the task path counts is
// what the vector exports, under concurrent use, and the cache stops
// growing at its bound while lookups past it still reach the vector.
func TestChildCacheIsTheVectorsChild(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"a", "b"})
	misses := 0
	c := newChildCache(func(k [2]string) prometheus.Counter { misses++; return vec.WithLabelValues(k[0], k[1]) })
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				c.get([2]string{"llm:chat", strconv.Itoa((g + i) % 3)}).Inc()
			}
		}()
	}
	wg.Wait()
	var sum float64
	for i := range 3 {
		sum += counterValue(t, vec.WithLabelValues("llm:chat", strconv.Itoa(i)))
	}
	if sum != 400 {
		t.Fatalf("vector counted %v, want 400", sum)
	}
	if misses != 3 {
		t.Fatalf("%d misses for 3 label pairs", misses)
	}
	for i := range maxCachedChildren + 10 {
		c.get([2]string{"b", strconv.Itoa(i)}).Inc()
	}
	if n := len(*c.m.Load()); n != maxCachedChildren {
		t.Fatalf("cache holds %d children, bound %d", n, maxCachedChildren)
	}
	if got := counterValue(t, vec.WithLabelValues("b", strconv.Itoa(maxCachedChildren+5))); got != 1 {
		t.Fatalf("uncached child counted %v, want 1", got)
	}
}
