package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/kernelsync"
)

// DefaultMetricsAddr serves /metrics on the node's loopback only.
const DefaultMetricsAddr = "127.0.0.1:9095"

// metrics are petrel's Prometheus metrics. Gauges and counters that exist
// elsewhere already (speaker peers, kernel stats) are read at scrape time
// by a collector; only timings are recorded as they happen.
type metrics struct {
	reg        *prometheus.Registry
	flushBatch prometheus.Histogram
	flushTime  prometheus.Histogram
	toFIB      prometheus.Histogram
	reconcile  prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		flushBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "petrel_kernel_batch_routes", Help: "Routes written per kernel batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		flushTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "petrel_kernel_batch_duration_seconds", Help: "Time to write one batch of routes to the kernel.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}),
		toFIB: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "petrel_route_update_to_fib_seconds", Help: "Time from a BGP route change in the speaker to its write in the kernel.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}),
		reconcile: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "petrel_kernel_reconcile_duration_seconds", Help: "Time of a full kernel reconcile (the safety-net scan).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
	}
	m.reg.MustRegister(m.flushBatch, m.flushTime, m.toFIB, m.reconcile,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// kernelsync.Observer
func (m *metrics) Flush(ops int, took, sinceUpdate time.Duration) {
	m.flushBatch.Observe(float64(ops))
	m.flushTime.Observe(took.Seconds())
	if sinceUpdate > 0 {
		m.toFIB.Observe(sinceUpdate.Seconds())
	}
}

func (m *metrics) Reconcile(took time.Duration) { m.reconcile.Observe(took.Seconds()) }

// watch registers the collector that reads the running parts at scrape
// time; ipamUse (nil outside datastore mode) gives the node's blocks and
// addresses in use.
func (m *metrics) watch(speaker *bgp.Speaker, kernel *kernelsync.Sync, ipamUse func() (blocks, used int), skipped func() map[datastore.Kind]int) {
	m.reg.MustRegister(&stateCollector{speaker: speaker, kernel: kernel, ipamUse: ipamUse, skipped: skipped})
}

// serve runs the /metrics endpoint until ctx ends.
func (m *metrics) serve(ctx context.Context, addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var (
	descSessions    = prometheus.NewDesc("petrel_bgp_sessions", "BGP sessions by address family and state.", []string{"family", "state"}, nil)
	descPeerUp      = prometheus.NewDesc("petrel_bgp_peer_up", "1 when the session is Established.", []string{"peer", "type"}, nil)
	descPeerUptime  = prometheus.NewDesc("petrel_bgp_peer_state_seconds", "Seconds since the session entered its current state.", []string{"peer", "state"}, nil)
	descPeerFlaps   = prometheus.NewDesc("petrel_bgp_peer_flaps_total", "Times the session left Established.", []string{"peer"}, nil)
	descPeerLimit   = prometheus.NewDesc("petrel_bgp_peer_prefix_limit_exceeded_total", "Times the peer sent more prefixes than its maxPrefixes and was shut down.", []string{"peer"}, nil)
	descPrefixes    = prometheus.NewDesc("petrel_bgp_peer_prefixes", "Prefixes per peer.", []string{"peer", "direction"}, nil)
	descBFDUp       = prometheus.NewDesc("petrel_bfd_peer_up", "1 when the peer's BFD session is Up (peers with BFD only).", []string{"peer"}, nil)
	descBFDDetect   = prometheus.NewDesc("petrel_bfd_peer_detect_seconds", "How long the peer may stay silent before BFD resets the session (our multiplier x minimum receive interval).", []string{"peer"}, nil)
	descRIB         = prometheus.NewDesc("petrel_rib_routes", "Prefixes with a best path in the speaker, by address family.", []string{"family"}, nil)
	descFIB         = prometheus.NewDesc("petrel_fib_routes", "petrel's routes in the kernel, by address family.", []string{"family"}, nil)
	descWrites      = prometheus.NewDesc("petrel_kernel_writes_total", "Route writes to the kernel.", nil, nil)
	descWriteErrors = prometheus.NewDesc("petrel_kernel_write_errors_total", "Route writes the kernel refused.", nil, nil)
	descRepairs     = prometheus.NewDesc("petrel_kernel_repairs_total", "Outside changes to petrel's routes undone.", nil, nil)
	descReconciles  = prometheus.NewDesc("petrel_kernel_reconciles_total", "Full kernel reconciles.", nil, nil)
	descGR          = prometheus.NewDesc("petrel_graceful_restart_active", "1 while routes adopted at start wait for the peers' End-of-RIB.", nil, nil)
	descStaleSwept  = prometheus.NewDesc("petrel_graceful_restart_stale_swept_total", "Adopted routes removed because no peer refreshed them.", nil, nil)
	descIPAMBlocks  = prometheus.NewDesc("petrel_ipam_blocks", "IPAM blocks affine to this node.", nil, nil)
	descIPAMInUse   = prometheus.NewDesc("petrel_ipam_addresses_in_use", "Addresses allocated in this node's blocks.", nil, nil)
	descServices    = prometheus.NewDesc("petrel_service_prefixes_advertised", "Service prefixes this node advertises, by address family.", []string{"family"}, nil)
	descSkipped     = prometheus.NewDesc("petrel_datastore_objects_skipped", "Datastore objects left out because they cannot be decoded (see petrel status).", []string{"kind"}, nil)
)

type stateCollector struct {
	speaker *bgp.Speaker
	kernel  *kernelsync.Sync
	ipamUse func() (int, int)
	skipped func() map[datastore.Kind]int
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessions, descPeerUp, descPeerUptime, descPeerFlaps, descPeerLimit, descPrefixes, descBFDUp, descBFDDetect, descRIB, descFIB,
		descWrites, descWriteErrors, descRepairs, descReconciles, descGR, descStaleSwept, descIPAMBlocks, descIPAMInUse, descSkipped, descServices} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if peers, err := c.speaker.Peers(ctx); err == nil {
		byState := map[[2]string]int{} // family, state
		for _, p := range peers {
			addr, state := p.Config.Address.String(), p.State.String()
			byState[[2]string{familyOf(p.Config.Address), state}]++
			gauge(descPeerUp, boolGauge(p.State == bgp.StateEstablished), addr, p.Config.Type)
			gauge(descPeerUptime, time.Since(p.Since).Seconds(), addr, state)
			counter(descPeerFlaps, float64(p.Flaps), addr)
			counter(descPeerLimit, float64(p.PrefixLimitHits), addr)
			gauge(descPrefixes, float64(p.PrefixesReceived), addr, "received")
			gauge(descPrefixes, float64(p.PrefixesAccepted), addr, "accepted")
			gauge(descPrefixes, float64(p.PrefixesAdvertised), addr, "advertised")
			if p.BFD != "" {
				gauge(descBFDUp, boolGauge(p.BFD == "Up"), addr)
				gauge(descBFDDetect, p.Config.BFD.DetectTime().Seconds(), addr)
			}
		}
		for _, family := range []string{"ipv4", "ipv6"} {
			for _, st := range []bgp.SessionState{bgp.StateIdle, bgp.StateConnect, bgp.StateActive, bgp.StateOpenSent, bgp.StateOpenConfirm, bgp.StateEstablished} {
				gauge(descSessions, float64(byState[[2]string{family, st.String()}]), family, st.String())
			}
		}
	}
	ribV4, ribV6 := c.speaker.RouteCounts()
	gauge(descRIB, float64(ribV4), "ipv4")
	gauge(descRIB, float64(ribV6), "ipv6")
	services := c.speaker.Services()
	v4 := 0
	for _, p := range services {
		if p.Addr().Is4() {
			v4++
		}
	}
	gauge(descServices, float64(v4), "ipv4")
	gauge(descServices, float64(len(services)-v4), "ipv6")
	if k := c.kernel; k != nil {
		st := &k.Stats
		all, v6 := st.FIBRoutes.Load(), st.FIBRoutes6.Load()
		gauge(descFIB, float64(all-v6), "ipv4")
		gauge(descFIB, float64(v6), "ipv6")
		counter(descWrites, float64(st.Writes.Load()))
		counter(descWriteErrors, float64(st.WriteErrors.Load()))
		counter(descRepairs, float64(st.Repairs.Load()))
		counter(descReconciles, float64(st.Reconciles.Load()))
		gauge(descGR, boolGauge(st.GracefulRestart.Load()))
		counter(descStaleSwept, float64(st.StaleSwept.Load()))
	}
	if c.ipamUse != nil {
		blocks, used := c.ipamUse()
		gauge(descIPAMBlocks, float64(blocks))
		gauge(descIPAMInUse, float64(used))
	}
	if c.skipped != nil {
		for kind, n := range c.skipped() {
			gauge(descSkipped, float64(n), string(kind))
		}
	}
}

// familyOf is the family label of an address.
func familyOf(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
