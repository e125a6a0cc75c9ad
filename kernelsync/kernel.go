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
	FIBRoutes6      atomic.Int64 // the IPv6 ones among them
	Writes          atomic.Int64 // route adds/replaces/deletes done
	WriteErrors     atomic.Int64
	Repairs         atomic.Int64 // outside changes to our routes undone
	Reconciles      atomic.Int64 // full scans done
	StaleSwept      atomic.Int64 // adopted routes removed after graceful restart
	GracefulRestart atomic.Bool  // adopted routes are waiting for refresh
	// GRRemovals counts routes deleted during graceful restart (before
	// the sweep): it should stay 0.
	GRRemovals atomic.Int64
	// LastChange is when a route was last written (unix nanoseconds).
	LastChange atomic.Int64
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
	fib      fibTable
	graceful bool
	// dirty lists prefixes whose entry has flagDirty: their kernel state
	// is compared with the desired one at the next flush.
	dirty   []netip.Prefix
	learned map[netip.Prefix]bool
	// blackholes are the node's own blocks: unknown addresses in them are
	// dropped here instead of following a less specific route.
	blackholes   map[netip.Prefix]bool
	blackholeReq chan map[netip.Prefix]bool // from SetBlackholes to Run
	// excluded prefixes belong to another owner (the VXLAN dataplane):
	// kernel sync does not program them, whatever BGP says.
	excluded   map[netip.Prefix]bool
	excludeReq chan excludeRequest
	// notProgrammed are ranges whose BGP routes, of any length, are never
	// programmed (Service CIDRs: kube-proxy owns those addresses).
	notProgrammed    map[netip.Prefix]bool
	notProgrammedReq chan map[netip.Prefix]bool // from SetNotProgrammed to Run
	// queryReq runs read-only questions (explain, the FIB view) on Run's
	// goroutine, which owns the state they read.
	queryReq chan func()
	// stopped is closed when Run returns, so SetExcluded never waits for a
	// loop that is gone.
	stopped chan struct{}
	writer  routeWriter
	// lastWrite and lastScan pace the safety-net scan (scanDue).
	lastWrite, lastScan time.Time
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
		cfg:              cfg,
		log:              cfg.Logger.With("component", "kernel"),
		writer:           writer,
		fib:              newFibTable(),
		learned:          map[netip.Prefix]bool{},
		blackholes:       map[netip.Prefix]bool{},
		blackholeReq:     make(chan map[netip.Prefix]bool, 1),
		excluded:         map[netip.Prefix]bool{},
		excludeReq:       make(chan excludeRequest),
		notProgrammedReq: make(chan map[netip.Prefix]bool, 1),
		queryReq:         make(chan func()),
		stopped:          make(chan struct{}),
		dev:              newDevices(cfg.Interfaces, lookup),
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
//
// It returns once Run has removed our routes for them from the kernel
// (or when ctx ends, or with an error when Run has stopped), so the new
// owner writes its routes after ours are gone: a hand-off that raced
// would have kernel sync take the prefix back as "clobbered" and then
// delete it, leaving no route at all.
func (s *Sync) SetExcluded(ctx context.Context, prefixes []netip.Prefix) error {
	req := excludeRequest{want: prefixSet(prefixes), done: make(chan struct{})}
	select {
	case s.excludeReq <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return errStopped
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errStopped = errors.New("kernelsync: not running")

// excludeRequest carries a new excluded set to Run; done is closed once
// the kernel no longer holds our routes for it.
type excludeRequest struct {
	want map[netip.Prefix]bool
	done chan struct{}
}

// applyExcluded hands the prefixes in req to their other owner and writes
// the removal of our routes at once.
func (s *Sync) applyExcluded(req excludeRequest) {
	s.replaceSet(&s.excluded, req.want)
	s.writeDirty()
	close(req.done)
}

func prefixSet(prefixes []netip.Prefix) map[netip.Prefix]bool {
	set := make(map[netip.Prefix]bool, len(prefixes))
	for _, p := range prefixes {
		set[p.Masked()] = true
	}
	return set
}

// offer puts the set on ch, replacing a request Run has not taken yet.
func offer(ch chan map[netip.Prefix]bool, prefixes []netip.Prefix) {
	want := prefixSet(prefixes)
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
	for _, e := range s.fib.entries {
		if e.has(flagInstalled) {
			e.flags |= flagStale
		}
	}
	adopted := s.fib.installed
	s.graceful = adopted > 0
	s.Stats.GracefulRestart.Store(s.graceful)
	if s.graceful {
		s.log.Info("graceful restart: adopted routes left by the previous run", "routes", adopted, "wait", s.cfg.RestartWait)
	}
	return adopted, nil
}

// Run drives the loops until ctx ends, following speaker. Routes stay in
// the kernel when it returns (BIRD's "persist").
func (s *Sync) Run(ctx context.Context, speaker Speaker) error {
	defer close(s.stopped)
	defer s.h.Close()
	defer s.writer.Close()
	s.speaker = speaker
	routeSub := speaker.SubscribeRoutes(true)
	defer routeSub.Close()
	peerQ, cancelPeers := speaker.SubscribePeers()
	defer cancelPeers()
	drainRoutes := func() { routeSub.Drain(s.onBGPRoute) }

	events, err := subscribe(ctx, s.log, s.writer.port())
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
	pacer := newFlushPacer()
	defer pacer.timer.Stop()

	for {
		select {
		case <-ctx.Done():
			s.log.Info("kernel sync stopping; routes stay in the kernel", "routes", s.fib.installed)
			return nil
		case <-routeSub.Ready():
			routeSub.Drain(s.onBGPRoute)
		case want := <-s.blackholeReq:
			s.replaceSet(&s.blackholes, want)
		case req := <-s.excludeReq:
			s.applyExcluded(req)
		case want := <-s.notProgrammedReq:
			s.notProgrammed = want
			s.redesireAll()
		case q := <-s.queryReq:
			q()
		case <-peerQ.Ready():
			peerQ.Drain(func(netip.Addr, bgp.PeerEvent) {})
			s.checkRestartDone(drainRoutes)
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
			if events, err = s.resubscribe(ctx, events); err != nil {
				return err
			}
		case now := <-scan.C:
			if s.scanDue(now) {
				s.reconcile(ctx)
			}
			s.checkRestartDone(drainRoutes)
		case <-restartDeadline.C:
			s.endGracefulRestart("restart wait expired")
		case <-pacer.timer.C:
			pacer.armed = false
		}
		s.Stats.LastLoop.Store(time.Now().UnixNano())
		pacer.flush(ctx, s)
	}
}

// resubscribe replaces netlink subscriptions that lost events, then
// rescans: what was lost is found by comparison, not replayed.
func (s *Sync) resubscribe(ctx context.Context, old *subscriptions) (*subscriptions, error) {
	s.log.Warn("netlink events lost; resubscribing and rescanning")
	old.cancel()
	events, err := subscribe(ctx, s.log, s.writer.port())
	if err != nil {
		return old, err // Run's deferred cancel of old is then harmless
	}
	s.reconcile(ctx)
	return events, nil
}

// flushPacer decides when Run writes: at once when the writer has been
// idle, so a lone change reaches the kernel in microseconds; during a
// burst, changes gather for flushGap so they go out in large batches.
type flushPacer struct {
	timer     *time.Timer // wakes Run to write what gathered
	armed     bool
	lastFlush time.Time
}

func newFlushPacer() *flushPacer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &flushPacer{timer: t}
}

// flush writes now, or arms the timer to write when flushGap has passed.
func (p *flushPacer) flush(ctx context.Context, s *Sync) {
	if since := time.Since(p.lastFlush); since >= flushGap {
		s.flush(ctx)
		p.lastFlush = time.Now()
	} else if !p.armed {
		p.timer.Reset(flushGap - since)
		p.armed = true
	}
}

// scanDue reports whether the safety-net scan should run now. While the
// event path is writing a burst, a full dump costs as much as the burst and
// races with it (routes written behind the dump's cursor look missing), so
// the scan waits for the writes to go quiet, at most scanMaxDelay periods.
func (s *Sync) scanDue(now time.Time) bool {
	return now.Sub(s.lastWrite) >= scanQuiet || now.Sub(s.lastScan) >= scanMaxDelay*s.cfg.ScanTime
}

const (
	scanQuiet    = 500 * time.Millisecond
	scanMaxDelay = 3
)

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
	e := s.fib.entry(r.Prefix)
	if best, ok := r.Best(); !ok || best.Local {
		e.gateways = nil
	} else {
		e.gateways = gatewaysOf(r.Paths, e.gateways)
	}
	s.updateDesired(r.Prefix)
}

// gatewaysOf returns the next hops of paths, reusing old when they are
// the same (a refresh after graceful restart changes nothing).
func gatewaysOf(paths []bgp.Path, old []netip.Addr) []netip.Addr {
	if len(old) == len(paths) {
		same := true
		for i, path := range paths {
			same = same && old[i] == path.NextHop
		}
		if same {
			return old
		}
	}
	gws := make([]netip.Addr, len(paths))
	for i, path := range paths {
		gws[i] = path.NextHop
	}
	return gws
}

// updateDesired applies the kernel-programming filter to one prefix: next
// hops that are our own addresses or behind a down link are dropped, the
// rest becomes one (multipath) route.
func (s *Sync) updateDesired(p netip.Prefix) {
	e := s.fib.entry(p)
	var want []nexthop
	switch {
	case s.blackholes[p]:
		want = blackhole // the node's own block, whatever BGP says
	case s.excluded[p], s.inNotProgrammed(p):
		// another owner programs it
	default:
		for _, gw := range e.gateways {
			if nh, ok := s.dev.resolve(gw); ok && !slices.Contains(want, nh) {
				want = append(want, nh)
			}
		}
		slices.SortFunc(want, compareNexthop)
	}
	if fibEqual(want, e.desired) && (want == nil) == (e.desired == nil) {
		s.fib.forget(p, e)
		return
	}
	if e.has(flagInstalled) && fibEqual(want, e.installed) {
		want = e.installed // share the slice: one copy per route, not two
	}
	e.desired = want
	s.markDirty(p, e)
}

// redesireAll re-runs the filter for every prefix after a link or address
// change moved what next hops are usable.
func (s *Sync) redesireAll() {
	for p := range s.fib.entries {
		s.updateDesired(p)
	}
}

// markDirty queues p (whose entry is e) for the next flush, once.
func (s *Sync) markDirty(p netip.Prefix, e *fibEntry) {
	if !e.has(flagDirty) {
		e.flags |= flagDirty
		s.dirty = append(s.dirty, p)
	}
}

// onKernelRoute keeps the view of the kernel current from netlink events.
// The echoes of our own writes never get here (watchRoutes drops them);
// anyone else's change to one of our routes leaves installed != desired,
// and the next flush repairs it.
func (s *Sync) onKernelRoute(u netlink.RouteUpdate) {
	if u.Table != s.cfg.Table {
		return
	}
	p, ok := prefixOf(&u.Route)
	if !ok {
		return
	}
	if int(u.Protocol) == s.cfg.Protocol {
		e := s.fib.entry(p)
		if u.Type == unix.RTM_DELROUTE {
			s.fib.clearInstalled(p, e)
			if e.desired != nil {
				e.flags |= flagClobbered // deleted by someone else: put it back
			}
		} else {
			nhs := nexthopsOf(&u.Route)
			if e.desired != nil && !fibEqual(e.desired, nhs) {
				e.flags |= flagClobbered // changed by someone else
			}
			if e.has(flagInstalled) && fibEqual(e.installed, nhs) {
				nhs = e.installed // our own write echoing back: keep the slice
			}
			s.fib.setInstalled(p, e, nhs)
			if u.Priority == 0 {
				s.unlearnReplaced(p)
			}
		}
		s.markDirty(p, e)
		return
	}
	if u.Type == unix.RTM_NEWROUTE && u.Priority == 0 {
		if e := s.fib.get(p); e != nil && e.has(flagInstalled) {
			// A foreign route with our key replaced ours: take it back at
			// once, and do not learn what is about to be undone.
			s.fib.clearInstalled(p, e)
			e.flags |= flagClobbered
			s.markDirty(p, e)
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
	for _, p := range s.dirty {
		e := s.fib.get(p)
		if e == nil {
			continue
		}
		e.flags &^= flagDirty
		if op, ok := s.opFor(p, e); ok {
			ops = append(ops, op)
		} else {
			s.fib.forget(p, e)
		}
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	start := time.Now()
	s.writer.run(ops)
	for _, op := range ops {
		s.applied(op)
	}
	if len(ops) > 0 {
		s.lastWrite = time.Now()
		s.Stats.LastChange.Store(s.lastWrite.UnixNano())
		var sinceUpdate time.Duration
		if !s.oldestUpdate.IsZero() {
			sinceUpdate = time.Since(s.oldestUpdate)
		}
		s.cfg.Observer.Flush(len(ops), time.Since(start), sinceUpdate)
	}
	s.oldestUpdate = time.Time{}
	clear(s.ops)
	s.ops = ops[:0]
	s.Stats.FIBRoutes.Store(int64(s.fib.installed))
	s.Stats.FIBRoutes6.Store(int64(s.fib.installed6))
	s.Stats.Failing.Store(int64(s.fib.failing))
}

// opFor decides the kernel write that brings p's route to the desired
// state; ok is false when none is needed.
func (s *Sync) opFor(p netip.Prefix, e *fibEntry) (op routeOp, ok bool) {
	want, isInstalled := e.desired, e.has(flagInstalled)
	if want == nil {
		e.flags &^= flagClobbered | flagForeignHeld // nothing of ours to put back or to hold
	}
	switch {
	case want != nil && isInstalled && fibEqual(want, e.installed):
		e.flags &^= flagStale // refreshed without a write
	case want != nil:
		// A route of ours (or one taken from us) is replaced in place; a
		// new one is created exclusively, so a foreign route holding the
		// key is never overwritten.
		kind := opAdd
		if isInstalled || e.has(flagClobbered) {
			kind = opReplace
		}
		return routeOp{prefix: p, kind: kind, nexthop: want}, true
	case isInstalled && s.graceful && e.has(flagStale):
		// Adopted and not refreshed yet: keep it until restart ends.
	case isInstalled:
		return routeOp{prefix: p, kind: opDelete}, true
	}
	return routeOp{}, false
}

// applied records the outcome of one write.
func (s *Sync) applied(op routeOp) {
	p := op.prefix
	e := s.fib.entry(p)
	defer s.fib.forget(p, e)
	switch {
	case op.kind == opAdd && errors.Is(op.err, unix.EEXIST):
		s.log.Debug("prefix held by a route of another protocol; not overriding it", "prefix", p)
		e.flags |= flagForeignHeld
		return
	case op.kind == opDelete && errors.Is(op.err, unix.ESRCH):
		// Already gone.
	case op.err != nil:
		s.writeFailed(p, op.kind, op.err)
		s.fib.setFailing(e, true)
		return
	}
	s.fib.setFailing(e, false)
	s.Stats.Writes.Add(1)
	e.flags &^= flagStale | flagForeignHeld
	if op.kind == opDelete {
		if s.graceful {
			s.Stats.GRRemovals.Add(1) // routes must stay while we restart
		}
		s.fib.clearInstalled(p, e)
		return
	}
	s.fib.setInstalled(p, e, op.nexthop)
	s.unlearnReplaced(p)
	if e.has(flagClobbered) {
		e.flags &^= flagClobbered
		s.Stats.Repairs.Add(1)
	}
}

// unlearnReplaced forgets the learned alien route at p once a route of
// ours holds the prefix: ours replaced it, and netlink reports no delete.
func (s *Sync) unlearnReplaced(p netip.Prefix) {
	if s.learned[p] {
		delete(s.learned, p)
		s.learnedDirty = true
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
	s.lastScan = time.Now()
	defer func(start time.Time) { s.cfg.Observer.Reconcile(time.Since(start)) }(s.lastScan)
	// Links and addresses change rarely and arrive as events; dumping
	// thousands of links (with all their attributes) is most of an idle
	// node's CPU, so their scan runs every deviceScanEvery route scans.
	if s.Stats.Reconciles.Load()%deviceScanEvery == 0 {
		if err := s.scanDevices(ctx); err != nil {
			s.log.Warn("device scan", "err", err)
		}
	}
	if err := nlretry.Do(s.scanRoutes); err != nil {
		s.log.Warn("route scan", "err", err)
		return
	}
	s.Stats.Reconciles.Add(1)
}

// scanRoutes reads petrel's routes and the learnable alien ones, and
// queues every prefix whose kernel state differs from the desired one. It
// walks the dump without collecting it: at 100k routes a slice of them is
// tens of megabytes of garbage every scan.
func (s *Sync) scanRoutes() error {
	learned := map[netip.Prefix]bool{}
	err := s.h.RouteListFilteredIter(unix.AF_UNSPEC, &netlink.Route{Table: s.cfg.Table}, netlink.RT_FILTER_TABLE, func(r netlink.Route) bool {
		p, ok := prefixOf(&r)
		switch {
		case !ok:
		case int(r.Protocol) == s.cfg.Protocol:
			e := s.fib.entry(p)
			nhs := nexthopsOf(&r)
			if e.has(flagInstalled) && fibEqual(e.installed, nhs) {
				nhs = e.installed // keep the existing slice: no garbage for unchanged routes
			}
			s.fib.setInstalled(p, e, nhs)
			e.flags |= flagSeen
		case s.cfg.Learn && s.learnable(&r):
			learned[p] = true
		}
		return true
	})
	if err != nil {
		// Marks of a partial scan must not survive into the next one.
		for _, e := range s.fib.entries {
			e.flags &^= flagSeen
		}
		return fmt.Errorf("kernelsync: list routes: %w", err)
	}
	// One pass over the table: what the dump did not show is gone from the
	// kernel, and every prefix whose kernel state differs from the desired
	// one is queued for the next flush.
	for p, e := range s.fib.entries {
		if !e.has(flagSeen) && e.has(flagInstalled) {
			s.fib.clearInstalled(p, e)
		}
		e.flags &^= flagSeen
		if e.has(flagInstalled) != (e.desired != nil) || !fibEqual(e.desired, e.installed) {
			s.markDirty(p, e)
		}
		s.fib.forget(p, e) // a route gone from the kernel may leave nothing to keep
	}
	s.Stats.FIBRoutes.Store(int64(s.fib.installed))
	s.Stats.FIBRoutes6.Store(int64(s.fib.installed6))
	if !maps.Equal(learned, s.learned) {
		s.learned = learned
		s.learnedDirty = true
	}
	return nil
}

// checkRestartDone ends graceful restart once the speaker has heard
// End-of-RIB from every peer. The speaker queues a peer's refreshed routes
// before its End-of-RIB, so they are taken first (drainRoutes): the sweep
// must not delete routes whose refresh is already waiting.
func (s *Sync) checkRestartDone(drainRoutes func()) {
	if s.graceful && s.speaker.InitialSyncDone() {
		drainRoutes()
		s.endGracefulRestart("every peer sent End-of-RIB")
	}
}

func (s *Sync) endGracefulRestart(why string) {
	if !s.graceful {
		return
	}
	s.graceful = false
	s.Stats.GracefulRestart.Store(false)
	swept := 0
	for p, e := range s.fib.entries {
		if !e.has(flagStale) {
			continue
		}
		if e.desired == nil {
			swept++
		}
		s.markDirty(p, e)
	}
	s.Stats.StaleSwept.Add(int64(swept))
	s.log.Info("graceful restart finished; sweeping routes nobody refreshed", "reason", why, "stale", swept)
}
