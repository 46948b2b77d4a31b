package mesh

import (
	"github.com/prometheus/client_golang/prometheus"
)

// eventsDesc is the one metric the mesh exports itself: its Stats counters
// (adverts published and accepted, rejections by reason such as
// node_id_mismatch, calls, refusals), labelled by event name. Names are a
// fixed vocabulary of this package, never peer input.
var eventsDesc = prometheus.NewDesc("meshnode_mesh_events_total",
	"Mesh events by name: adverts published/accepted, advert rejections by reason "+
		"(node_id_mismatch: a peer claimed another node's node_id), forged responses, calls.",
	[]string{"event"}, nil)

// Collector exposes Stats as meshnode_mesh_events_total{event} for the
// node's /metrics; the composition root registers it.
func (m *Mesh) Collector() prometheus.Collector { return (*statsCollector)(m) }

type statsCollector Mesh

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- eventsDesc }

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	for name, n := range c.stats.snapshot() {
		if mt, err := prometheus.NewConstMetric(eventsDesc, prometheus.CounterValue, float64(n), name); err == nil {
			ch <- mt
		}
	}
}
