package daemon

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/dirbridge/directory/federation"
	"github.com/meshnode/meshnode/internal/logging"
	"github.com/meshnode/meshnode/mesh"
)

// gaugeProbeTimeout bounds the backend health probe a scrape may trigger
// (the engine caches probe results, so scrapes cannot load the backend).
const gaugeProbeTimeout = 5 * time.Second

// RouteLibraryLogs sends libp2p's own log lines (go-libp2p, the DHT,
// pubsub) through logs under the "libp2p" subsystem, so log.format applies
// to them too. Their level is [log.levels] libp2p; without one it is at
// least warn, since libp2p's info lines are chatter to an operator.
// Process wide: cmd/meshnode calls it once, before any libp2p host starts.
func RouteLibraryLogs(logs *logging.Logs) {
	h, lv := logs.HandlerFloor("libp2p", slog.LevelWarn)
	mesh.RouteLibp2pLogs(h, lv)
}

// newProcessRegistry is the one metrics registry of a process: Go runtime,
// process and meshnode_build_info series; every part registers its own
// series (iicp_* where the spec names them, meshnode_* in base units) here.
func newProcessRegistry(version string) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "meshnode_build_info",
		Help:        "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	info.Set(1)
	for _, c := range []prometheus.Collector{info, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// registerNodeGauges adds the node's state gauges: backend up, mesh peers
// connected, registration state per directory and the CX key's age.
func (d *daemon) registerNodeGauges(reg *prometheus.Registry) error {
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meshnode_backend_up", Help: "1 while the backend answers its health probe (GET /iicp/health status ok).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), gaugeProbeTimeout)
			defer cancel()
			return boolGauge(d.engine.Health(ctx).Status == "ok")
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meshnode_mesh_peers_connected", Help: "libp2p peers with an open connection.",
		}, func() float64 {
			if d.host == nil {
				return 0
			}
			return float64(len(d.host.Network().Peers()))
		}),
		&registrationCollector{sessions: d.sessions},
	}
	if d.cxRing != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meshnode_cx_key_age_seconds", Help: "Age of the current IICP-CX key (rotation replaces it).",
		}, func() float64 { return d.cxRing.CurrentAge().Seconds() }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// registrationCollector reports meshnode_node_registered{directory}:
// 1 while the session holds a registration at that directory. The label
// values are the configured directory URLs, a bounded set.
type registrationCollector struct{ sessions []*dirclient.Session }

var registeredDesc = prometheus.NewDesc("meshnode_node_registered",
	"1 while this node is registered with the directory (session state registered).", []string{"directory"}, nil)

func (c *registrationCollector) Describe(ch chan<- *prometheus.Desc) { ch <- registeredDesc }

func (c *registrationCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.sessions {
		st := s.Status()
		m, err := prometheus.NewConstMetric(registeredDesc, prometheus.GaugeValue,
			boolGauge(st.State == dirclient.StateRegistered), st.Directory)
		if err != nil {
			m = prometheus.NewInvalidMetric(registeredDesc, err)
		}
		ch <- m
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// dirOptions are the options every directory of `meshnode directory` gets:
// its logger and the process registry.
func (o DirectoryOptions) dirOptions() []directory.Option {
	opts := []directory.Option{directory.WithLogger(o.Logs.For("directory"))}
	if o.registry != nil {
		opts = append(opts, directory.WithRegistry(o.registry))
	}
	return opts
}

// registerFederation adds a seed's or replica's federation series to reg.
func registerFederation(reg *prometheus.Registry, srv dirServer) error {
	var cs []prometheus.Collector
	switch s := srv.(type) {
	case *federation.SeedDirectory:
		cs = s.Seed().Collectors()
	case *federation.ReplicaDirectory:
		cs = s.Replica().Collectors()
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
