package federation

import "github.com/prometheus/client_golang/prometheus"

// Metric names carry the meshnode_federation_ prefix; labels are bounded
// enums (event type, rejection reason, source), never node or replica IDs.

type seedMetrics struct {
	appended  *prometheus.CounterVec
	headSeq   prometheus.Gauge
	snapshots prometheus.Counter
	liveness  prometheus.Counter
}

func newSeedMetrics() *seedMetrics {
	return &seedMetrics{
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshnode_federation_events_appended_total",
			Help: "Signed events appended to the federated log, by event type.",
		}, []string{"type"}),
		headSeq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshnode_federation_head_seq",
			Help: "Highest seq in the seed's federated event log.",
		}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshnode_federation_snapshots_served_total",
			Help: "Snapshots served to replicas.",
		}),
		liveness: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshnode_federation_liveness_digests_published_total",
			Help: "Signed liveness digest messages gossiped by the seed.",
		}),
	}
}

// Collectors returns the seed's metrics for the composition root's registry.
func (s *Seed) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.appended, s.metrics.headSeq, s.metrics.snapshots, s.metrics.liveness}
}

type replicaMetrics struct {
	applied   *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	appliedSq prometheus.Gauge
	lag       prometheus.Gauge
	snapshots prometheus.Counter
	liveness  *prometheus.CounterVec
}

func newReplicaMetrics() *replicaMetrics {
	return &replicaMetrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshnode_federation_events_applied_total",
			Help: "Verified events applied by the replica, by source (poll, gossip).",
		}, []string{"source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshnode_federation_events_rejected_total",
			Help: "Events or snapshots the replica refused, by reason (signature, chain_link, sequence, signer, event_type, malformed, untrusted_root, snapshot_signature).",
		}, []string{"reason"}),
		appliedSq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshnode_federation_applied_seq",
			Help: "Highest seq the replica has verified and applied.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshnode_federation_replica_lag_seconds",
			Help: "Seconds since the replica last confirmed it was at the seed's head.",
		}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshnode_federation_snapshots_applied_total",
			Help: "Verified snapshots applied by the replica.",
		}),
		liveness: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshnode_federation_liveness_digests_applied_total",
			Help: "Verified liveness digests applied by the replica, by source (poll, gossip).",
		}, []string{"source"}),
	}
}

// Collectors returns the replica's metrics for the composition root's registry.
func (r *Replica) Collectors() []prometheus.Collector {
	m := r.metrics
	return []prometheus.Collector{m.applied, m.rejected, m.appliedSq, m.lag, m.snapshots, m.liveness}
}
