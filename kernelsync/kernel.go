package kernelsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/internal/coalesce"
	"github.com/petrel-net/petrel/internal/nlretry"
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
	// Failing is how many prefixes' last write failed (retried each scan).
	Failing atomic.Int64
	// LastLoop is when the loop last did work (unix nanoseconds): the
	// liveness probe's proof that it is not stuck.
	LastLoop atomic.Int64
}

// Sync runs the kernel, device and direct loops for one network namespace.
type Sync struct {
	cfg     Config
	log     *slog.Logger
	h       *netlink.Handle
	speaker Speaker
	Stats   Stats

	// Everything below is owned by Run's goroutine.
	// gateways holds the speaker's decisions, unfiltered: the next hops of
	// each prefix's multipath set (nothing else is needed to re-filter
	// when links change, and 100k full routes would double the memory).
	gateways  map[netip.Prefix][]netip.Addr
	desired   map[netip.Prefix][]nexthop // what the FIB should hold
	installed map[netip.Prefix][]nexthop // our routes in the kernel, as last seen or written
	stale     map[netip.Prefix]bool      // adopted at start, not yet refreshed
	// clobbered marks prefixes whose route someone else deleted, changed or
	// replaced with one of another protocol: we put ours back. Anywhere else
	// a foreign route holds the key (a connected route, an operator's static
	// route that was there first) petrel does not override it.
	clobbered map[netip.Prefix]bool
	graceful  bool
	dirty     map[netip.Prefix]struct{}
	learned   map[netip.Prefix]bool
	// blackholes are the node's own blocks: unknown addresses in them are
	// dropped here instead of following a less specific route.
	blackholes   map[netip.Prefix]bool
	blackholeReq chan map[netip.Prefix]bool // from SetBlackholes to Run
	// excluded prefixes belong to another owner (the VXLAN dataplane):
	// kernel sync does not program them, whatever BGP says.
	excluded   map[netip.Prefix]bool
	excludeReq chan map[netip.Prefix]bool
	writer     routeWriter
	failing    map[netip.Prefix]bool
	// oldestUpdate is the earliest speaker change not yet written.
	oldestUpdate time.Time
	ops          []routeOp // reused between flushes
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
	writer, err := newBatchWriter(cfg.Protocol, cfg.Table)
	if err != nil {
		h.Close()
		return nil, err
	}
	s := newSync(cfg, writer, func(a netip.Addr) ([]netlink.Route, error) { return h.RouteGet(a.AsSlice()) })
	s.h = h
	return s, nil
}

// newSync builds the loop state around a writer and a route lookup.
func newSync(cfg Config, writer routeWriter, lookup func(netip.Addr) ([]netlink.Route, error)) *Sync {
	return &Sync{
		cfg:          cfg,
		log:          cfg.Logger.With("component", "kernel"),
		writer:       writer,
		gateways:     map[netip.Prefix][]netip.Addr{},
		desired:      map[netip.Prefix][]nexthop{},
		installed:    map[netip.Prefix][]nexthop{},
		stale:        map[netip.Prefix]bool{},
		clobbered:    map[netip.Prefix]bool{},
		dirty:        map[netip.Prefix]struct{}{},
		learned:      map[netip.Prefix]bool{},
		blackholes:   map[netip.Prefix]bool{},
		blackholeReq: make(chan map[netip.Prefix]bool, 1),
		excluded:     map[netip.Prefix]bool{},
		failing:      map[netip.Prefix]bool{},
		excludeReq:   make(chan map[netip.Prefix]bool, 1),
		dev:          newDevices(cfg.Interfaces, lookup),
	}
}

// Config returns the effective configuration (defaults filled in).
func (s *Sync) Config() Config { return s.cfg }

// SetBlackholes makes the blackhole routes petrel keeps in the kernel equal
// to prefixes (the node's affine blocks). Safe from any goroutine; the
// latest call wins.
func (s *Sync) SetBlackholes(prefixes []netip.Prefix) { offer(s.blackholeReq, prefixes) }

// SetExcluded hands prefixes to another owner: kernel sync removes its
// routes for them and programs none. Safe from any goroutine.
func (s *Sync) SetExcluded(prefixes []netip.Prefix) { offer(s.excludeReq, prefixes) }

// offer puts the set on ch, replacing a request Run has not taken yet.
func offer(ch chan map[netip.Prefix]bool, prefixes []netip.Prefix) {
	want := make(map[netip.Prefix]bool, len(prefixes))
	for _, p := range prefixes {
		want[p.Masked()] = true
	}
	for {
		select {
		case ch <- want:
			return
		default:
			select {
			case <-ch:
			default:
			}
		}
	}
}

// replaceSet swaps *set for want and re-filters every prefix in either.
func (s *Sync) replaceSet(set *map[netip.Prefix]bool, want map[netip.Prefix]bool) {
	old := *set
	*set = want
	for p := range old {
		s.updateDesired(p)
	}
	for p := range want {
		s.updateDesired(p)
	}
}

// Adopt reads the routes a previous petrel left in the kernel and keeps
// them, marked stale, instead of deleting and re-adding them: traffic keeps
// flowing through a restart. It returns how many were adopted; call it
// before the speaker connects to its peers, and tell them we are restarting
// when it is not zero.
func (s *Sync) Adopt() (int, error) {
	if err := nlretry.Do(s.scanRoutes); err != nil {
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
	defer s.writer.Close()
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
		s.log.Warn("device scan; retrying at the next scan", "err", err) // churn must not stop petrel
	}
	scan := time.NewTicker(s.cfg.ScanTime)
	defer scan.Stop()
	restartDeadline := time.NewTimer(s.cfg.RestartWait)
	defer restartDeadline.Stop()
	batch := time.NewTimer(time.Hour)
	batch.Stop()
	batchArmed := false
	var lastFlush time.Time

	for {
		select {
		case <-ctx.Done():
			s.log.Info("kernel sync stopping; routes stay in the kernel", "routes", len(s.installed))
			return nil
		case <-routeSub.Ready():
			routeSub.Drain(s.onBGPRoute)
		case want := <-s.blackholeReq:
			s.replaceSet(&s.blackholes, want)
		case want := <-s.excludeReq:
			s.replaceSet(&s.excluded, want)
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
		case <-batch.C:
			batchArmed = false
		}
		s.Stats.LastLoop.Store(time.Now().UnixNano())
		// Write at once when the writer has been idle, so a lone change
		// reaches the kernel in microseconds; during a burst, let changes
		// gather for flushGap so they go out in large batches.
		if since := time.Since(lastFlush); since >= flushGap {
			s.flush(ctx)
			lastFlush = time.Now()
		} else if !batchArmed {
			batch.Reset(flushGap - since)
			batchArmed = true
		}
	}
}

// deviceScanEvery is how many route scans pass between device scans.
const deviceScanEvery = 5

// flushGap is how long changes may gather during a burst before they are
// written.
const flushGap = 2 * time.Millisecond

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

// onBGPRoute records the speaker's new decision for one prefix. Routes
// this node injected itself (its own blocks, learned and direct routes)
// are already where they belong and are never programmed.
func (s *Sync) onBGPRoute(r bgp.Route) {
	if !r.At.IsZero() && (s.oldestUpdate.IsZero() || r.At.Before(s.oldestUpdate)) {
		s.oldestUpdate = r.At
	}
	if best, ok := r.Best(); !ok || best.Local {
		delete(s.gateways, r.Prefix)
	} else {
		gws := make([]netip.Addr, len(r.Paths))
		for i, path := range r.Paths {
			gws[i] = path.NextHop
		}
		s.gateways[r.Prefix] = gws
	}
	s.updateDesired(r.Prefix)
}

// updateDesired applies the kernel-programming filter to one prefix: next
// hops that are our own addresses or behind a down link are dropped, the
// rest becomes one (multipath) route.
func (s *Sync) updateDesired(p netip.Prefix) {
	var want []nexthop
	switch {
	case s.blackholes[p]:
		want = blackhole // the node's own block, whatever BGP says
	case s.excluded[p]:
		// another owner programs it
	default:
		for _, gw := range s.gateways[p] {
			if nh, ok := s.dev.resolve(gw); ok && !slices.Contains(want, nh) {
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
	for p := range s.gateways {
		s.updateDesired(p)
	}
	for p := range s.desired {
		if _, ok := s.gateways[p]; !ok && !s.blackholes[p] {
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
			if _, wanted := s.desired[p]; wanted {
				s.clobbered[p] = true // deleted by someone else: put it back
			}
		} else {
			if want, wanted := s.desired[p]; wanted && !fibEqual(want, nexthopsOf(&u.Route)) {
				s.clobbered[p] = true // changed by someone else
			}
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
	ops := s.ops[:0]
	for p := range s.dirty {
		delete(s.dirty, p)
		want := s.desired[p]
		have, isInstalled := s.installed[p]
		if want == nil {
			delete(s.clobbered, p) // nothing of ours to put back
		}
		switch {
		case want != nil && isInstalled && fibEqual(want, have):
			delete(s.stale, p) // refreshed without a write
		case want != nil:
			// A route of ours (or one taken from us) is replaced in place; a
			// new one is created exclusively, so a foreign route holding the
			// key is never overwritten.
			kind := opAdd
			if isInstalled || s.clobbered[p] {
				kind = opReplace
			}
			ops = append(ops, routeOp{prefix: p, kind: kind, nexthop: want})
		case isInstalled && s.graceful && s.stale[p]:
			// Adopted and not refreshed yet: keep it until restart ends.
		case isInstalled:
			ops = append(ops, routeOp{prefix: p, kind: opDelete})
		}
	}
	start := time.Now()
	s.writer.run(ops)
	for _, op := range ops {
		s.applied(op)
	}
	if len(ops) > 0 {
		var sinceUpdate time.Duration
		if !s.oldestUpdate.IsZero() {
			sinceUpdate = time.Since(s.oldestUpdate)
		}
		s.cfg.Observer.Flush(len(ops), time.Since(start), sinceUpdate)
	}
	s.oldestUpdate = time.Time{}
	s.ops = ops[:0]
	s.Stats.FIBRoutes.Store(int64(len(s.installed)))
	s.Stats.Failing.Store(int64(len(s.failing)))
}

// applied records the outcome of one write.
func (s *Sync) applied(op routeOp) {
	p := op.prefix
	switch {
	case op.kind == opAdd && errors.Is(op.err, unix.EEXIST):
		s.log.Debug("prefix held by a route of another protocol; not overriding it", "prefix", p)
		return
	case op.kind == opDelete && errors.Is(op.err, unix.ESRCH):
		// Already gone.
	case op.err != nil:
		s.writeFailed(p, op.kind, op.err)
		s.failing[p] = true
		return
	}
	delete(s.failing, p)
	s.Stats.Writes.Add(1)
	delete(s.stale, p)
	if op.kind == opDelete {
		delete(s.installed, p)
		return
	}
	s.installed[p] = op.nexthop
	if s.clobbered[p] {
		delete(s.clobbered, p)
		s.Stats.Repairs.Add(1)
	}
}

// writeFailed counts and logs a failed write; the next scan retries it.
func (s *Sync) writeFailed(p netip.Prefix, op opKind, err error) {
	s.Stats.WriteErrors.Add(1)
	s.log.Warn("kernel route write failed; retrying at the next scan", "prefix", p, "op", op.String(), "err", err)
}

// reconcile is the safety net: re-read the kernel and mark every prefix
// whose kernel state differs from the desired one.
func (s *Sync) reconcile(ctx context.Context) {
	defer func(start time.Time) { s.cfg.Observer.Reconcile(time.Since(start)) }(time.Now())
	// Links and addresses change rarely and arrive as events; dumping
	// thousands of links (with all their attributes) is most of an idle
	// node's CPU, so their scan runs every deviceScanEvery route scans.
	if s.Stats.Reconciles.Load()%deviceScanEvery == 0 {
		if err := s.scanDevices(ctx); err != nil {
			s.log.Warn("device scan", "err", err)
		}
	}
	before := s.installed
	if err := nlretry.Do(s.scanRoutes); err != nil {
		s.log.Warn("route scan", "err", err)
		return
	}
	for p, nhs := range s.installed {
		if want, ok := s.desired[p]; !ok || !fibEqual(want, nhs) {
			s.markDirty(p)
		}
	}
	for p := range s.desired {
		if _, ok := s.installed[p]; !ok {
			s.markDirty(p)
		}
	}
	for p := range before {
		if _, ok := s.installed[p]; !ok {
			s.markDirty(p)
		}
	}
	s.Stats.Reconciles.Add(1)
}

// scanRoutes reads petrel's routes and the learnable alien ones. It walks
// the dump without collecting it: at 100k routes a slice of them is tens
// of megabytes of garbage every scan.
func (s *Sync) scanRoutes() error {
	installed := make(map[netip.Prefix][]nexthop, len(s.installed))
	learned := map[netip.Prefix]bool{}
	err := s.h.RouteListFilteredIter(unix.AF_UNSPEC, &netlink.Route{Table: s.cfg.Table}, netlink.RT_FILTER_TABLE, func(r netlink.Route) bool {
		p, ok := prefixOf(&r)
		switch {
		case !ok:
		case int(r.Protocol) == s.cfg.Protocol:
			nhs := nexthopsOf(&r)
			if old, ok := s.installed[p]; ok && fibEqual(old, nhs) {
				nhs = old // keep the existing slice: no garbage for unchanged routes
			}
			installed[p] = nhs
		case s.cfg.Learn && s.learnable(&r):
			learned[p] = true
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("kernelsync: list routes: %w", err)
	}
	s.installed = installed
	s.Stats.FIBRoutes.Store(int64(len(installed)))
	if !maps.Equal(learned, s.learned) {
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
