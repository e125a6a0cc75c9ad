package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/internal/coalesce"
)

// convergencePoll is how often a peer that sent End-of-RIB is checked for
// all its routes being in the FIB: fine enough for a metric in seconds,
// and one map walk on kernel sync's loop per waiting peer.
const convergencePoll = 50 * time.Millisecond

// convergenceSpeaker and convergenceKernel are what the tracker reads.
type convergenceSpeaker interface {
	SubscribePeers() (*coalesce.Queue[netip.Addr, bgp.PeerEvent], func())
	PrefixesFrom(peer netip.Addr) []netip.Prefix
}

type convergenceKernel interface {
	Unsettled(ctx context.Context, prefixes []netip.Prefix) (int, error)
}

// convergence measures, per peer, session up -> End-of-RIB received ->
// every route learned from the peer in the FIB, logs each convergence
// and exports the last one as metrics.
type convergence struct {
	speaker convergenceSpeaker
	kernel  convergenceKernel // nil when kernel sync is off
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	peers   map[netip.Addr]*peerConvergence
	results map[netip.Addr]convergenceResult
}

// peerConvergence is one session's progress since it came up.
type peerConvergence struct {
	up, eor  time.Time
	prefixes []netip.Prefix // learned from the peer, as of End-of-RIB
	done     bool
}

// convergenceResult is a peer's last convergence.
type convergenceResult struct {
	toEndOfRIB, toFIB time.Duration
	at                time.Time
	routes            int
}

func newConvergence(speaker convergenceSpeaker, kernel convergenceKernel, log *slog.Logger) *convergence {
	return &convergence{speaker: speaker, kernel: kernel, log: log, now: time.Now,
		peers: map[netip.Addr]*peerConvergence{}, results: map[netip.Addr]convergenceResult{}}
}

// run follows peer events until ctx ends.
func (c *convergence) run(ctx context.Context) {
	q, cancel := c.speaker.SubscribePeers()
	defer cancel()
	tick := time.NewTicker(convergencePoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.Ready():
			q.Drain(func(addr netip.Addr, ev bgp.PeerEvent) { c.onPeer(addr, ev) })
		case <-tick.C:
			c.checkFIB(ctx)
		}
	}
}

// onPeer starts a measurement when a session comes up, ends its first
// phase at End-of-RIB, and forgets it when the session goes down.
func (c *convergence) onPeer(addr netip.Addr, ev bgp.PeerEvent) {
	var prefixes []netip.Prefix
	if ev.State == bgp.StateEstablished && ev.EndOfRIB {
		prefixes = c.speaker.PrefixesFrom(addr) // outside the lock: a walk of the RIB
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.State != bgp.StateEstablished {
		delete(c.peers, addr)
		return
	}
	pc := c.peers[addr]
	if pc == nil {
		pc = &peerConvergence{up: ev.StateSince}
		if pc.up.IsZero() {
			pc.up = ev.At
		}
		c.peers[addr] = pc
	}
	if ev.EndOfRIB && pc.eor.IsZero() {
		pc.eor, pc.prefixes = ev.At, prefixes
	}
}

// checkFIB ends the measurement of every peer whose routes are all in
// the FIB.
func (c *convergence) checkFIB(ctx context.Context) {
	c.mu.Lock()
	var waiting []netip.Addr
	for addr, pc := range c.peers {
		if !pc.eor.IsZero() && !pc.done {
			waiting = append(waiting, addr)
		}
	}
	c.mu.Unlock()
	for _, addr := range waiting {
		c.mu.Lock()
		pc := c.peers[addr]
		c.mu.Unlock()
		if pc == nil {
			continue
		}
		if c.kernel != nil {
			if n, err := c.kernel.Unsettled(ctx, pc.prefixes); err != nil || n > 0 {
				continue
			}
		}
		c.converged(addr, pc)
	}
}

func (c *convergence) converged(addr netip.Addr, pc *peerConvergence) {
	now := c.now()
	res := convergenceResult{toEndOfRIB: pc.eor.Sub(pc.up), toFIB: now.Sub(pc.up), at: now, routes: len(pc.prefixes)}
	c.mu.Lock()
	if c.peers[addr] != pc {
		c.mu.Unlock()
		return // the session went down meanwhile
	}
	pc.done = true
	c.results[addr] = res
	c.mu.Unlock()
	c.log.Info("peer converged: its routes are in the FIB", "peer", addr, "routes", res.routes,
		"sessionUpToEndOfRIB", res.toEndOfRIB.Round(time.Millisecond), "sessionUpToFIB", res.toFIB.Round(time.Millisecond))
}

var (
	descConvergence = prometheus.NewDesc("petrel_bgp_peer_convergence_seconds",
		"The peer's last convergence, from session up to End-of-RIB received (phase end_of_rib) and to all its routes in the FIB (phase fib).", []string{"peer", "phase"}, nil)
	descConvergedAt = prometheus.NewDesc("petrel_bgp_peer_converged_timestamp_seconds", "When the peer last converged (unix time).", []string{"peer"}, nil)
	descConvRoutes  = prometheus.NewDesc("petrel_bgp_peer_convergence_routes", "Routes learned from the peer at its last convergence.", []string{"peer"}, nil)
)

func (c *convergence) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConvergence
	ch <- descConvergedAt
	ch <- descConvRoutes
}

func (c *convergence) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr, r := range c.results {
		peer := addr.String()
		ch <- prometheus.MustNewConstMetric(descConvergence, prometheus.GaugeValue, r.toEndOfRIB.Seconds(), peer, "end_of_rib")
		ch <- prometheus.MustNewConstMetric(descConvergence, prometheus.GaugeValue, r.toFIB.Seconds(), peer, "fib")
		ch <- prometheus.MustNewConstMetric(descConvergedAt, prometheus.GaugeValue, float64(r.at.UnixNano())/1e9, peer)
		ch <- prometheus.MustNewConstMetric(descConvRoutes, prometheus.GaugeValue, float64(r.routes), peer)
	}
}
