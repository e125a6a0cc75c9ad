package kernelsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/internal/coalesce"
)

// Speaker is what kernel sync needs from the BGP speaker.
type Speaker interface {
	SubscribeRoutes(replay bool) *bgp.RouteSubscription
	SubscribePeers() (*coalesce.Queue[netip.Addr, bgp.PeerEvent], func())
	SetInjected(ctx context.Context, source string, prefixes []netip.Prefix) error
	InitialSyncDone() bool
	PeerAddresses() []netip.Addr
	ResetPeer(ctx context.Context, addr netip.Addr, why string) error
}

// Stats are counters other goroutines may read at any time.
type Stats struct {
	FIBRoutes       atomic.Int64 // petrel routes in the kernel
	Writes          atomic.Int64 // route adds/replaces/deletes done
	WriteErrors     atomic.Int64
	Repairs         atomic.Int64 // outside changes to our routes undone
	Reconciles      atomic.Int64 // full scans done
	StaleSwept      atomic.Int64 // adopted routes removed after graceful restart
	GracefulRestart atomic.Bool  // adopted routes are waiting for refresh
}

// Sync runs the kernel, device and direct loops for one network namespace.
type Sync struct {
	cfg     Config
	log     *slog.Logger
	h       *netlink.Handle
	speaker Speaker
	Stats   Stats

	// Everything below is owned by Run's goroutine.
	bgpRoutes map[netip.Prefix]bgp.Route // the speaker's decisions, unfiltered
	desired   map[netip.Prefix][]nexthop // what the FIB should hold
	installed map[netip.Prefix][]nexthop // our routes in the kernel, as last seen or written
	stale     map[netip.Prefix]bool      // adopted at start, not yet refreshed
	// clobbered marks prefixes where someone replaced our route with one of
	// another protocol: we take the key back. Anywhere else a foreign route
	// holds the key (a connected route, an operator's static route that was
	// there first) petrel does not override it.
	clobbered map[netip.Prefix]bool
	graceful  bool
	dirty     map[netip.Prefix]struct{}
	learned   map[netip.Prefix]bool
	// learnedDirty and directDirty say the speaker has not been told yet.
	learnedDirty, directDirty bool
	dev                       *devices
}

// New opens a netlink handle in the current network namespace.
func New(cfg Config) (*Sync, error) {
	cfg = cfg.withDefaults()
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("kernelsync: netlink: %w", err)
	}
	return &Sync{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "kernel"),
		h:         h,
		bgpRoutes: map[netip.Prefix]bgp.Route{},
		desired:   map[netip.Prefix][]nexthop{},
		installed: map[netip.Prefix][]nexthop{},
		stale:     map[netip.Prefix]bool{},
		clobbered: map[netip.Prefix]bool{},
		dirty:     map[netip.Prefix]struct{}{},
		learned:   map[netip.Prefix]bool{},
		dev:       newDevices(cfg.Interfaces),
	}, nil
}

// Adopt reads the routes a previous petrel left in the kernel and keeps
// them, marked stale, instead of deleting and re-adding them: traffic keeps
// flowing through a restart. It returns how many were adopted; call it
// before the speaker connects to its peers, and tell them we are restarting
// when it is not zero.
func (s *Sync) Adopt() (int, error) {
	if err := s.scanRoutes(); err != nil {
		return 0, err
	}
	for p := range s.installed {
		s.stale[p] = true
	}
	s.graceful = len(s.stale) > 0
	s.Stats.GracefulRestart.Store(s.graceful)
	if s.graceful {
		s.log.Info("graceful restart: adopted routes left by the previous run", "routes", len(s.stale), "wait", s.cfg.RestartWait)
	}
	return len(s.stale), nil
}

// Run drives the loops until ctx ends, following speaker. Routes stay in
// the kernel when it returns (BIRD's "persist").
func (s *Sync) Run(ctx context.Context, speaker Speaker) error {
	defer s.h.Close()
	s.speaker = speaker
	routeSub := speaker.SubscribeRoutes(true)
	defer routeSub.Close()
	peerQ, cancelPeers := speaker.SubscribePeers()
	defer cancelPeers()

	events, err := subscribe(ctx, s.log)
	if err != nil {
		return err
	}
	defer func() { events.cancel() }()
	if err := s.scanDevices(ctx); err != nil {
		return err
	}
	scan := time.NewTicker(s.cfg.ScanTime)
	defer scan.Stop()
	restartDeadline := time.NewTimer(s.cfg.RestartWait)
	defer restartDeadline.Stop()

	for {
		select {
		case <-ctx.Done():
			s.log.Info("kernel sync stopping; routes stay in the kernel", "routes", len(s.installed))
			return nil
		case <-routeSub.Ready():
			routeSub.Drain(s.onBGPRoute)
		case <-peerQ.Ready():
			peerQ.Drain(func(netip.Addr, bgp.PeerEvent) {})
			s.checkRestartDone("every peer sent End-of-RIB")
		case u, ok := <-events.routes:
			if ok {
				s.onKernelRoute(u)
				s.drainKernelEvents(events)
			}
		case u, ok := <-events.links:
			if ok {
				s.onLink(ctx, u.Link, u.Header.Type == unix.RTM_DELLINK)
			}
		case u, ok := <-events.addrs:
			if ok {
				s.onAddr(ctx, u)
			}
		case <-events.lost:
			s.log.Warn("netlink events lost; resubscribing and rescanning")
			events.cancel()
			if events, err = subscribe(ctx, s.log); err != nil {
				return err
			}
			s.reconcile(ctx)
		case <-scan.C:
			s.reconcile(ctx)
			s.checkRestartDone("every peer sent End-of-RIB")
		case <-restartDeadline.C:
			s.endGracefulRestart("restart wait expired")
		}
		s.flush(ctx)
	}
}

// drainKernelEvents folds every netlink route event already queued, so a
// burst (our own 100k writes echoing back) costs one flush.
func (s *Sync) drainKernelEvents(ev *subscriptions) {
	for {
		select {
		case u, ok := <-ev.routes:
			if !ok {
				return
			}
			s.onKernelRoute(u)
		default:
			return
		}
	}
}

// onBGPRoute records the speaker's new decision for one prefix.
func (s *Sync) onBGPRoute(r bgp.Route) {
	if r.Withdrawn() {
		delete(s.bgpRoutes, r.Prefix)
	} else {
		s.bgpRoutes[r.Prefix] = r
	}
	s.updateDesired(r.Prefix)
}

// updateDesired applies the kernel-programming filter to one prefix:
// nothing for routes this node injected itself (its own blocks, learned and
// direct routes are already where they belong), next hops that are our own
// addresses or behind a down link are dropped, the rest becomes one
// (multipath) route.
func (s *Sync) updateDesired(p netip.Prefix) {
	var want []nexthop
	if r, ok := s.bgpRoutes[p]; ok && !r.Paths[0].Local {
		for _, path := range r.Paths {
			if nh, ok := s.dev.resolve(s.h, path.NextHop); ok && !slices.Contains(want, nh) {
				want = append(want, nh)
			}
		}
		slices.SortFunc(want, compareNexthop)
	}
	if have, had := s.desired[p]; fibEqual(want, have) && (want != nil) == had {
		return
	}
	if want == nil {
		delete(s.desired, p)
	} else {
		s.desired[p] = want
	}
	s.markDirty(p)
}

// redesireAll re-runs the filter for every prefix after a link or address
// change moved what next hops are usable.
func (s *Sync) redesireAll() {
	for p := range s.bgpRoutes {
		s.updateDesired(p)
	}
	for p := range s.desired {
		if _, ok := s.bgpRoutes[p]; !ok {
			s.updateDesired(p)
		}
	}
}

func (s *Sync) markDirty(p netip.Prefix) { s.dirty[p] = struct{}{} }

// onKernelRoute keeps the view of the kernel current from netlink events.
// Our own writes echo back and change nothing; anyone else's change to one
// of our routes leaves installed != desired, and the next flush repairs it.
func (s *Sync) onKernelRoute(u netlink.RouteUpdate) {
	if u.Table != s.cfg.Table {
		return
	}
	p, ok := prefixOf(&u.Route)
	if !ok {
		return
	}
	if int(u.Protocol) == s.cfg.Protocol {
		if u.Type == unix.RTM_DELROUTE {
			delete(s.installed, p)
		} else {
			s.installed[p] = nexthopsOf(&u.Route)
			if s.learned[p] && u.Priority == 0 {
				// Ours replaced an alien route, and netlink reports no delete.
				delete(s.learned, p)
				s.learnedDirty = true
			}
		}
		s.markDirty(p)
		return
	}
	if u.Type == unix.RTM_NEWROUTE {
		if _, ours := s.installed[p]; ours && u.Priority == 0 {
			// A foreign route with our key replaced ours: take it back at
			// once, and do not learn what is about to be undone.
			delete(s.installed, p)
			s.clobbered[p] = true
			s.markDirty(p)
			return
		}
	}
	if s.cfg.Learn && s.learnable(&u.Route) {
		if u.Type == unix.RTM_DELROUTE {
			delete(s.learned, p)
		} else {
			s.learned[p] = true
		}
		s.learnedDirty = true
	}
	s.dev.forgetResolutions() // an alien route may change how gateways resolve
}

// flush writes every dirty prefix whose kernel state differs from the
// desired one, then tells the speaker about changed learned and direct
// routes.
func (s *Sync) flush(ctx context.Context) {
	s.writeDirty()
	if s.learnedDirty {
		s.learnedDirty = false
		s.inject(ctx, bgp.SourceKernel, s.learned)
	}
	if s.directDirty {
		s.directDirty = false
		s.inject(ctx, bgp.SourceDirect, s.dev.directPrefixes())
	}
}

func (s *Sync) inject(ctx context.Context, source string, set map[netip.Prefix]bool) {
	prefixes := make([]netip.Prefix, 0, len(set))
	for p := range set {
		prefixes = append(prefixes, p)
	}
	if err := s.speaker.SetInjected(ctx, source, prefixes); err != nil {
		s.log.Warn("updating the speaker's local routes", "source", source, "err", err)
	}
}

func (s *Sync) writeDirty() {
	for p := range s.dirty {
		delete(s.dirty, p)
		want, have := s.desired[p], s.installed[p]
		_, isInstalled := s.installed[p]
		switch {
		case want != nil && isInstalled && fibEqual(want, have):
			delete(s.stale, p) // refreshed without a write
		case want != nil:
			if err := s.install(p, want, isInstalled); err != nil {
				continue
			}
			s.installed[p] = want
			delete(s.stale, p)
		case isInstalled && s.graceful && s.stale[p]:
			// Adopted and not refreshed yet: keep it until restart ends.
		case isInstalled:
			if err := s.h.RouteDel(s.kernelRoute(p, have)); err != nil && !errors.Is(err, unix.ESRCH) {
				s.writeFailed(p, "delete", err)
				continue
			}
			s.Stats.Writes.Add(1)
			delete(s.installed, p)
			delete(s.stale, p)
		}
	}
	s.Stats.FIBRoutes.Store(int64(len(s.installed)))
}

// install writes one route. A route of ours (or one taken from us) is
// replaced in place; a new one is created exclusively, so a foreign route
// with the same key is never overwritten.
func (s *Sync) install(p netip.Prefix, want []nexthop, ours bool) error {
	r := s.kernelRoute(p, want)
	var err error
	switch {
	case ours || s.clobbered[p]:
		err = s.h.RouteReplace(r)
		if err == nil && s.clobbered[p] {
			s.Stats.Repairs.Add(1)
		}
	default:
		err = s.h.RouteAdd(r)
	}
	switch {
	case errors.Is(err, unix.EEXIST):
		s.log.Debug("prefix held by a route of another protocol; not overriding it", "prefix", p)
		return err
	case err != nil:
		s.writeFailed(p, "install", err)
		return err
	}
	delete(s.clobbered, p)
	s.Stats.Writes.Add(1)
	return nil
}

// writeFailed counts and logs a failed write; the next scan retries it.
func (s *Sync) writeFailed(p netip.Prefix, op string, err error) {
	s.Stats.WriteErrors.Add(1)
	s.log.Warn("kernel route write failed; retrying at the next scan", "prefix", p, "op", op, "err", err)
}

// reconcile is the safety net: re-read the kernel and make it match.
func (s *Sync) reconcile(ctx context.Context) {
	if err := s.scanDevices(ctx); err != nil {
		s.log.Warn("device scan", "err", err)
	}
	before := s.installed
	if err := s.scanRoutes(); err != nil {
		s.log.Warn("route scan", "err", err)
		return
	}
	for p := range before {
		s.markDirty(p)
	}
	for p := range s.installed {
		s.markDirty(p)
	}
	for p := range s.desired {
		s.markDirty(p)
	}
	s.Stats.Reconciles.Add(1)
}

// scanRoutes reads petrel's routes and the learnable alien ones.
func (s *Sync) scanRoutes() error {
	routes, err := s.h.RouteListFiltered(unix.AF_UNSPEC, &netlink.Route{Table: s.cfg.Table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("kernelsync: list routes: %w", err)
	}
	installed := make(map[netip.Prefix][]nexthop, len(s.installed))
	learned := map[netip.Prefix]bool{}
	for i := range routes {
		r := &routes[i]
		p, ok := prefixOf(r)
		if !ok {
			continue
		}
		if int(r.Protocol) == s.cfg.Protocol {
			installed[p] = nexthopsOf(r)
		} else if s.cfg.Learn && s.learnable(r) {
			learned[p] = true
		}
	}
	s.installed = installed
	s.Stats.FIBRoutes.Store(int64(len(installed)))
	if !mapsEqual(learned, s.learned) {
		s.learned = learned
		s.learnedDirty = true
	}
	return nil
}

// checkRestartDone ends graceful restart once the speaker has heard
// End-of-RIB from every peer.
func (s *Sync) checkRestartDone(why string) {
	if s.graceful && s.speaker.InitialSyncDone() {
		s.endGracefulRestart(why)
	}
}

func (s *Sync) endGracefulRestart(why string) {
	if !s.graceful {
		return
	}
	s.graceful = false
	s.Stats.GracefulRestart.Store(false)
	swept := 0
	for p := range s.stale {
		if s.desired[p] == nil {
			swept++
		}
		s.markDirty(p)
	}
	s.Stats.StaleSwept.Add(int64(swept))
	s.log.Info("graceful restart finished; sweeping routes nobody refreshed", "reason", why, "stale", swept)
}

func mapsEqual(a, b map[netip.Prefix]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
