package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/kernelsync"
)

// changeCollector exports when the RIB and the FIB last changed and how
// many routes graceful restart failed to keep: what an operator checks
// after a restart or a rollout.
type changeCollector struct {
	speaker *bgp.Speaker
	kernel  *kernelsync.Sync // nil when kernel sync is off
}

var (
	descRIBChanged = prometheus.NewDesc("petrel_rib_last_change_timestamp_seconds", "When a prefix's BGP paths last changed (unix time; 0 never).", nil, nil)
	descFIBChanged = prometheus.NewDesc("petrel_fib_last_change_timestamp_seconds", "When petrel last wrote a route to the kernel (unix time; 0 never).", nil, nil)
	descGRRemovals = prometheus.NewDesc("petrel_graceful_restart_fib_removals_total",
		"Routes petrel deleted from the kernel while its graceful restart kept the previous run's routes (before the sweep): should stay 0.", nil, nil)
)

func (c *changeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRIBChanged
	ch <- descFIBChanged
	ch <- descGRRemovals
}

func (c *changeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descRIBChanged, prometheus.GaugeValue, unixSeconds(c.speaker.LastRouteChange()))
	if c.kernel == nil {
		return
	}
	var fib time.Time
	if n := c.kernel.Stats.LastChange.Load(); n != 0 {
		fib = time.Unix(0, n)
	}
	ch <- prometheus.MustNewConstMetric(descFIBChanged, prometheus.GaugeValue, unixSeconds(fib))
	ch <- prometheus.MustNewConstMetric(descGRRemovals, prometheus.CounterValue, float64(c.kernel.Stats.GRRemovals.Load()))
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// watchConvergence starts the convergence tracker and registers it and
// the change metrics.
func (m *metrics) watchConvergence(ctx context.Context, speaker *bgp.Speaker, kernel *kernelsync.Sync, log *slog.Logger) {
	var k convergenceKernel
	if kernel != nil { // a nil *kernelsync.Sync must not become a non-nil interface
		k = kernel
	}
	conv := newConvergence(speaker, k, log)
	m.reg.MustRegister(conv, &changeCollector{speaker: speaker, kernel: kernel})
	go conv.run(ctx)
}
