package bgp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppacket "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/petrel-net/petrel/internal/coalesce"
)

// Config is the speaker's global configuration; it cannot change while the
// speaker runs (BIRD needs a restart for these too).
type Config struct {
	RouterID netip.Addr
	ASN      uint32 // 0 = DefaultASN
	// ListenAddresses restricts the listener; empty = all addresses.
	ListenAddresses []netip.Addr
	// ListenPort: 0 = 179; -1 = no listener (active sessions only).
	ListenPort int32
	// Restarting marks the peers as "local restarting" (RFC 4724): we came
	// back with routes still in the kernel and defer our updates until the
	// peers' End-of-RIB. GoBGP cannot detect this itself.
	Restarting bool
	Logger     *slog.Logger
}

// Speaker is petrel's BGP speaker. Its methods are safe for concurrent use.
type Speaker struct {
	cfg    Config
	log    *slog.Logger
	server *server.BgpServer
	bfd    bfdEngine // see bfd.go
	cancel context.CancelFunc

	// opMu serialises multi-step changes to originated and injected
	// prefixes and the export sets they imply, so GoBGP always sees them in
	// a consistent order. peersOpMu does the same for SetPeers, apart: adding
	// 500 peers takes GoBGP seconds, and kernel sync's injections (which
	// take opMu) must not wait for that.
	opMu      sync.Mutex
	peersOpMu sync.Mutex
	// sessionMu serialises the calls that change one peer (add, delete,
	// BFD on/off), so that syncBFD never acts on a peer SetPeers has just
	// replaced.
	sessionMu sync.Mutex
	// exported holds, per source (SourceOriginate, SourceService), the
	// prefixes injected and exported exactly.
	exported map[string]map[netip.Prefix]bool
	// serviceRanges are the configured Service CIDRs: a route reflector
	// passes on iBGP routes inside them, as Calico's do.
	serviceRanges map[exportRange]bool
	injected      map[netip.Prefix]map[string]bool // prefix -> sources injecting it
	exportable    rangeSet
	reflectable   rangeSet
	extra         map[exportRange]bool // export ranges beyond originated prefixes
	reflect       bool                 // route reflector: pass iBGP routes in extra on
	// routePolicy is the BGPFilter/next-hop/communities policy installed
	// as installedPolicy, generation policyGen (filterpolicy.go).
	routePolicy     RoutePolicy
	installedPolicy renderedPolicy
	policyGen       uint64
	ebgpPeers       listSet // eBGP peers: pool routes learned over iBGP go to them

	mu    sync.Mutex // guards peers and peerSubs
	peers map[netip.Addr]*peerEntry

	peerSubs map[*coalesce.Queue[netip.Addr, PeerEvent]]struct{}
	table    *routeTable

	// restarting starts as Config.Restarting and ends once every peer has
	// sent End-of-RIB or the selection deferral has passed: a peer added
	// after that (a node joining later) must not be told we are restarting.
	restarting atomic.Bool
	// peersSet is true once SetPeers has run (InitialSyncDone).
	peersSet atomic.Bool
}

type peerEntry struct {
	cfg    PeerConfig
	state  SessionState
	since  time.Time
	reason string
	flaps  uint32
	// overLimit: the peer went over MaxPrefixes and is held down.
	overLimit bool
	limitHits uint32
	eor       bool // End-of-RIB received at least once since the peer was added
	bfd       bool // its BFD session is running
}

// New creates a speaker; Start brings it up.
func New(cfg Config) (*Speaker, error) {
	if !cfg.RouterID.Is4() {
		return nil, fmt.Errorf("bgp: routerID %q must be an IPv4 address", cfg.RouterID)
	}
	if cfg.ASN == 0 {
		cfg.ASN = DefaultASN
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Speaker{
		cfg:         cfg,
		log:         cfg.Logger.With("component", "bgp"),
		exported:    map[string]map[netip.Prefix]bool{},
		injected:    map[netip.Prefix]map[string]bool{},
		exportable:  rangeSet{purpose: setExportable, have: map[exportRange]bool{}},
		reflectable: rangeSet{purpose: setReflectable, have: map[exportRange]bool{}},
		ebgpPeers:   listSet{name: ebgpPeersSet},
		extra:       map[exportRange]bool{},
		peers:       map[netip.Addr]*peerEntry{},
		peerSubs:    map[*coalesce.Queue[netip.Addr, PeerEvent]]struct{}{},
		table:       newRouteTable(),
	}
	s.table.overLimit = s.onPrefixLimit
	s.restarting.Store(cfg.Restarting)
	return s, nil
}

// Start runs the embedded GoBGP server, installs the export policy and the
// watches that feed the route table. ctx bounds the watches.
func (s *Speaker) Start(ctx context.Context) error {
	logger := slog.New(newReasonHandler(s.log.With("lib", "gobgp").Handler(), s.setReason, s.onPrefixLimit))
	s.server = server.NewBgpServer(server.LoggerOption(logger, nil))
	go s.server.Serve()

	ctx, s.cancel = context.WithCancel(ctx)
	listen := make([]string, 0, len(s.cfg.ListenAddresses))
	for _, a := range s.cfg.ListenAddresses {
		listen = append(listen, a.String())
	}
	err := s.server.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:              s.cfg.ASN,
		RouterId:         s.cfg.RouterID.String(),
		ListenPort:       s.cfg.ListenPort,
		ListenAddresses:  listen,
		UseMultiplePaths: true, // BIRD's "merge paths on"
		// Only the families petrel routes. Left empty, GoBGP builds its
		// global tables for all ~30 it knows, each with 2048 shards: about
		// 12 MB and start-up CPU for tables that stay empty.
		Families: []uint32{familyIPv4Unicast, familyIPv6Unicast},
	}})
	if err != nil {
		return fmt.Errorf("bgp: start (AS %d, router id %s, port %d): %w", s.cfg.ASN, s.cfg.RouterID, s.cfg.ListenPort, err)
	}
	if s.bfd, err = newBFDEngine(ctx, s, logger); err != nil {
		return fmt.Errorf("bgp: BFD: %w", err)
	}
	if err := s.installPolicy(ctx); err != nil {
		return err
	}
	if s.restarting.Load() {
		time.AfterFunc(selectionDeferral, func() { s.endRestart("selection deferral passed") })
	}
	return s.watch(ctx)
}

// GoBGP's numbering of address families in api.Global.Families (the
// index of the AFI-SAFI name in its OpenConfig model).
const (
	familyIPv4Unicast = 0
	familyIPv6Unicast = 1
)

func (s *Speaker) installPolicy(ctx context.Context) error {
	sets := append(prefixSets(setExportable, nil), prefixSets(setReflectable, nil)...)
	sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: ebgpPeersSet, List: noPeer})
	for _, set := range sets {
		if err := s.server.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: set}); err != nil {
			return fmt.Errorf("bgp: export set %s: %w", set.Name, err)
		}
	}
	if err := s.server.AddPolicy(ctx, &api.AddPolicyRequest{Policy: exportPolicy(), ReferExistingStatements: false}); err != nil {
		return fmt.Errorf("bgp: export policy: %w", err)
	}
	if err := s.server.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: exportAssignment()}); err != nil {
		return fmt.Errorf("bgp: export policy assignment: %w", err)
	}
	return nil
}

func (s *Speaker) watch(ctx context.Context) error {
	err := s.server.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnBestPath:   s.table.apply,
		OnPathEor:    s.onEndOfRIB,
		OnPeerUpdate: s.onPeerUpdate,
	}, server.WatchBestPath(true), server.WatchEor(false), server.WatchPeer())
	if err != nil {
		return fmt.Errorf("bgp: watch: %w", err)
	}
	return nil
}

// onEndOfRIB and onPeerUpdate run on GoBGP's watcher goroutine; they must
// stay quick.
func (s *Speaker) onEndOfRIB(p *apiutil.Path, _ time.Time) {
	if !p.PeerAddress.IsValid() {
		return
	}
	s.markEndOfRIB(p.PeerAddress)
	s.table.release(p.PeerAddress, 0) // what a re-created peer did not refresh is gone
	s.publishPeer(p.PeerAddress, func(ev PeerEvent) PeerEvent { ev.EndOfRIB = true; return ev })
}

func (s *Speaker) onPeerUpdate(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	addr := ev.Peer.State.NeighborAddress
	state := sessionState(ev.Peer.State.SessionState)
	prev, bfd := s.setState(addr, state)
	if bfd {
		go s.syncBFD(addr)
	}
	now := time.Now()
	s.publishPeer(addr, func(ev PeerEvent) PeerEvent { ev.State, ev.StateSince = state, now; return ev })
	if state == StateEstablished && !s.restarting.Load() {
		time.AfterFunc(resendDelay, func() { s.resendAll(addr) })
	}
	if prev == StateEstablished {
		go s.recreateRestartingPeer(addr)
	}
}

// recreateRestartingPeer re-creates a peer whose session dropped for a
// graceful restart, so that the peer's next connection is accepted at
// once: GoBGP keeps a dropped peer Idle for 5 s and closes every
// connection meanwhile, which turned a 1 s daemon restart into 7 s without
// a session. Deleting the peer makes GoBGP forget its paths, so the table
// holds them (stale, in the kernel) until the peer's End-of-RIB or its
// restart time, as GoBGP's helper would have. Not done for a route
// reflector (its clients would see the withdrawals), nor under LLGR.
// The re-created peer dials again every RestartingConnectRetry, not every
// ConnectRetry: a first dial that reaches the peer before its new process
// listens would otherwise keep the session down 5 s more.
func (s *Speaker) recreateRestartingPeer(addr netip.Addr) {
	s.peersOpMu.Lock()
	defer s.peersOpMu.Unlock()
	s.opMu.Lock()
	reflect := s.reflect
	s.opMu.Unlock()
	s.mu.Lock()
	pe, ok := s.peers[addr]
	down := ok && pe.state != StateEstablished && !pe.overLimit // a peer over its limit stays down
	clients := false
	for _, other := range s.peers {
		clients = clients || other.cfg.RouteReflectorClient
	}
	s.mu.Unlock()
	// LLGR keeps a peer's routes longer and depreferred, which only
	// GoBGP's own helper does: such a peer keeps the idle hold.
	if !down || !pe.cfg.GracefulRestart || pe.cfg.LongLivedStaleTime > 0 || reflect || clients {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	restarting := false
	err := s.server.ListPeer(ctx, &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) {
		restarting = p.GetGracefulRestart().GetPeerRestarting()
	})
	if err != nil || !restarting {
		return // not a graceful drop: GoBGP dropped the routes already
	}
	s.sessionMu.Lock() // with syncBFD: the BFD session goes with the peer
	defer s.sessionMu.Unlock()
	gen, fresh := s.table.hold(addr)
	if pe.cfg.BFD.Enabled {
		_ = s.bfd.DeletePeer(ctx, addr) // stopped already if the drop was seen
		s.mu.Lock()
		pe.bfd = false
		s.mu.Unlock()
	}
	if err := s.server.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
		s.table.release(addr, gen)
		s.log.Warn("re-creating a restarting peer", "address", addr, "err", err)
		return
	}
	again := toAPIPeer(pe.cfg, s.restarting.Load())
	again.Timers.Config.ConnectRetry = uint64(RestartingConnectRetry.Seconds())
	if err := s.server.AddPeer(ctx, &api.AddPeerRequest{Peer: again}); err != nil {
		s.table.release(addr, gen)
		s.mu.Lock()
		delete(s.peers, addr)
		s.mu.Unlock()
		s.log.Error("re-creating a restarting peer; it is gone until the next configuration change", "address", addr, "err", err)
		return
	}
	restartTime := pe.cfg.WithDefaults().RestartTime
	if fresh {
		time.AfterFunc(restartTime, func() { s.table.release(addr, gen) })
	}
	s.log.Info("peer restarting gracefully; re-created its session to accept it at once, its routes kept until End-of-RIB",
		"peer", pe.cfg.Name, "address", addr, "restartTime", restartTime)
}

// resendDelay is how long after a session comes up resendAll runs: GoBGP
// marks the peer Established right after the event that brings us here.
const resendDelay = 100 * time.Millisecond

// resendAll sends the peer our whole export table once more, right after
// its session came up. GoBGP v4 handles each peer's FSM on its own
// goroutine: it sends a new peer the table, publishes the Established
// event and only then marks the peer Established, while updates learned
// from other peers (or originated here) in that window skip the peer as
// not yet Established and never reach it. A route reflector with 500
// clients left 2-5 % of them short of some routes for good. A soft reset
// out closes the window; resending what the peer has is harmless.
func (s *Speaker) resendAll(addr netip.Addr) {
	s.mu.Lock()
	pe, ok := s.peers[addr]
	up := ok && pe.state == StateEstablished
	s.mu.Unlock()
	if !up {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.server.ResetPeer(ctx, &api.ResetPeerRequest{Address: addr.String(), Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT}); err != nil {
		s.log.Warn("resending the table to a new session", "address", addr, "err", err)
	}
}

// sessionState maps GoBGP's FSM state (Idle = 0) to petrel's (Idle = 1,
// leaving 0 for "unknown").
func sessionState(st bgppacket.FSMState) SessionState {
	return SessionState(int(st) + 1)
}

// setState records a peer's new session state and returns the one it
// replaces, and whether the peer's BFD must follow (syncBFD).
func (s *Speaker) setState(addr netip.Addr, state SessionState) (prev SessionState, bfd bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pe, ok := s.peers[addr]
	if !ok || pe.state == state {
		return state, false
	}
	prev = pe.state
	if pe.state == StateEstablished {
		pe.flaps++
	}
	if state == StateEstablished {
		pe.reason = ""
	}
	pe.state, pe.since = state, time.Now()
	s.log.Info("peer state", "peer", pe.cfg.Name, "address", addr, "state", state)
	return prev, pe.cfg.BFD.Enabled
}

// syncBFD runs a peer's BFD session while its BGP session is Established
// and stops it otherwise: BFD watches a live session, and a BFD timeout
// after the session ended (the peer restarting gracefully) must not count.
func (s *Speaker) syncBFD(addr netip.Addr) {
	s.sessionMu.Lock()
	defer s.sessionMu.Unlock()
	s.mu.Lock()
	pe, ok := s.peers[addr]
	if !ok || !pe.cfg.BFD.Enabled {
		s.mu.Unlock()
		return
	}
	want := pe.state == StateEstablished
	cfg, have := pe.cfg, pe.bfd
	s.mu.Unlock()
	if want == have {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if want {
		err = s.bfd.AddPeer(ctx, addr, bfdConfig(cfg.BFD), "")
	} else {
		err = s.bfd.DeletePeer(ctx, addr)
	}
	if err != nil {
		s.log.Warn("switching BFD", "peer", cfg.Name, "address", addr, "on", want, "err", err)
		return
	}
	s.mu.Lock()
	pe.bfd = want
	s.mu.Unlock()
	s.log.Debug("BFD follows the session", "peer", cfg.Name, "address", addr, "on", want)
}

func (s *Speaker) markEndOfRIB(addr netip.Addr) {
	s.mu.Lock()
	if pe, ok := s.peers[addr]; ok {
		pe.eor = true
	}
	s.mu.Unlock()
	if s.InitialSyncDone() {
		s.endRestart("every peer sent End-of-RIB")
	}
}

// endRestart ends this speaker's own graceful restart (RFC 4724 restarting
// speaker): later peers are added as for a fresh start.
func (s *Speaker) endRestart(why string) {
	if s.restarting.CompareAndSwap(true, false) {
		s.log.Info("graceful restart of this speaker finished", "reason", why)
	}
}

// InitialSyncDone reports whether every configured peer has sent its
// End-of-RIB: the RIB then holds everything the peers have, and routes
// that were not refreshed by now are truly gone. False until SetPeers has
// run once (kernel sync may start before the peers are configured, and
// must not sweep a restart's routes for want of peers); then true with no
// peers.
func (s *Speaker) InitialSyncDone() bool {
	if !s.peersSet.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pe := range s.peers {
		if !pe.eor {
			return false
		}
	}
	return true
}

// ResetPeer tears the session to addr down at once (a hard reset: its
// routes are flushed without waiting for graceful restart); GoBGP then
// tries to reconnect on its own.
func (s *Speaker) ResetPeer(ctx context.Context, addr netip.Addr, why string) error {
	s.setReason(addr, why)
	return s.server.ResetPeer(ctx, &api.ResetPeerRequest{Address: addr.String(), Communication: why})
}

// SessionStates returns every configured peer's session state, cheaply
// (no GoBGP round trip): what readiness probes poll.
func (s *Speaker) SessionStates() map[netip.Addr]SessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[netip.Addr]SessionState, len(s.peers))
	for a, pe := range s.peers {
		out[a] = pe.state
	}
	return out
}

// Responsive checks that GoBGP's event loop answers within ctx.
func (s *Speaker) Responsive(ctx context.Context) error {
	_, err := s.server.GetBgp(ctx, &api.GetBgpRequest{})
	return err
}

// PeerAddresses lists the configured peers.
func (s *Speaker) PeerAddresses() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.peers))
}

func (s *Speaker) setReason(addr netip.Addr, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pe, ok := s.peers[addr]; ok {
		pe.reason = reason
	}
}

func (s *Speaker) publishPeer(addr netip.Addr, fold func(PeerEvent) PeerEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	state := StateUnknown
	if pe, ok := s.peers[addr]; ok {
		state = pe.state
	}
	for q := range s.peerSubs {
		q.Merge(addr, func(old PeerEvent, had bool) PeerEvent {
			if !had {
				old = PeerEvent{Address: addr, State: state}
			}
			ev := fold(old)
			ev.At = time.Now()
			return ev
		})
	}
}

// SubscribePeers returns a queue of peer events coalesced per peer: the
// latest state, with EndOfRIB kept until drained.
func (s *Speaker) SubscribePeers() (q *coalesce.Queue[netip.Addr, PeerEvent], cancel func()) {
	q = coalesce.New[netip.Addr, PeerEvent]()
	s.mu.Lock()
	s.peerSubs[q] = struct{}{}
	s.mu.Unlock()
	return q, func() {
		s.mu.Lock()
		delete(s.peerSubs, q)
		s.mu.Unlock()
		q.Close()
	}
}

// SubscribeRoutes returns a subscription that follows route changes; with
// replay it first delivers every current route.
func (s *Speaker) SubscribeRoutes(replay bool) *RouteSubscription { return s.table.subscribe(replay) }

// Config returns the speaker's global configuration.
func (s *Speaker) Config() Config { return s.cfg }

// Routes returns the current best/multipath table, sorted by prefix.
func (s *Speaker) Routes() []Route { return s.table.snapshot() }

// Route returns the current decision for one prefix.
func (s *Speaker) Route(p netip.Prefix) (Route, bool) { return s.table.get(p.Masked()) }

// LastRouteChange is when a prefix's paths last changed (zero: never).
func (s *Speaker) LastRouteChange() time.Time {
	if n := s.table.lastChange.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// RouteCount is the number of prefixes with at least one path.
func (s *Speaker) RouteCount() int { return s.table.len() }

// RouteCounts is RouteCount per address family.
func (s *Speaker) RouteCounts() (ipv4, ipv6 int) { return s.table.lenByFamily() }

// SetPeers makes the running peer set equal to desired. Peers whose
// configuration is unchanged are not touched, so their sessions stay up.
// Invalid entries are skipped and reported; everything valid is applied.
func (s *Speaker) SetPeers(ctx context.Context, desired []PeerConfig) error {
	s.peersOpMu.Lock()
	defer s.peersOpMu.Unlock()

	s.mu.Lock()
	running := make(map[netip.Addr]PeerConfig, len(s.peers))
	for a, pe := range s.peers {
		running[a] = pe.cfg
	}
	s.mu.Unlock()

	defer s.peersSet.Store(true)
	plan, want, planErr := planPeers(running, desired)
	errs := []error{planErr, s.syncEBGPPeers(ctx, want)}
	for _, p := range append(slices.Clone(plan.remove), plan.replace...) {
		if err := s.deletePeer(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: delete: %w", p.Address, err))
			continue
		}
		s.table.forget(p.Address)
		s.log.Info("peer removed", "peer", p.Name, "address", p.Address)
	}
	for _, p := range append(slices.Clone(plan.replace), plan.add...) {
		if err := s.addPeer(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: add: %w", p.Address, err))
			continue
		}
		s.log.Info("peer added", "peer", p.Name, "address", p.Address, "asn", p.ASN)
	}
	return errors.Join(errs...)
}

// syncEBGPPeers keeps the set of eBGP peers that learned pool routes go
// to; it is set before the peers are added, so their first UPDATEs carry
// those routes.
func (s *Speaker) syncEBGPPeers(ctx context.Context, peers map[netip.Addr]PeerConfig) error {
	local := cmp.Or(s.cfg.ASN, DefaultASN)
	want := map[string]bool{}
	for a, p := range peers {
		if p.ASN != cmp.Or(p.LocalASN, local) {
			want[netip.PrefixFrom(a, a.BitLen()).String()] = true
		}
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	return s.ebgpPeers.sync(ctx, s.server, want)
}

func (s *Speaker) deletePeer(ctx context.Context, p PeerConfig) error {
	s.sessionMu.Lock()
	defer s.sessionMu.Unlock()
	if err := s.server.DeletePeer(ctx, &api.DeletePeerRequest{Address: p.Address.String()}); err != nil {
		return err
	}
	if err := s.bfd.DeletePeer(ctx, p.Address); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.peers, p.Address)
	s.mu.Unlock()
	return nil
}

// addPeer adds p; syncBFD starts its BFD once the session is up.
func (s *Speaker) addPeer(ctx context.Context, p PeerConfig) error {
	s.sessionMu.Lock()
	defer s.sessionMu.Unlock()
	pe := &peerEntry{cfg: p, state: StateIdle, since: time.Now()}
	s.table.welcome(p.Address)
	if p.MaxPrefixes == 0 { // the default limit; GoBGP enforces an explicit one
		s.table.setLimit(p.Address, DefaultMaxPrefixes)
	} else {
		s.table.setLimit(p.Address, 0)
	}
	// Register before AddPeer so the first state events find the entry.
	s.mu.Lock()
	s.peers[p.Address] = pe
	s.mu.Unlock()
	err := s.server.AddPeer(ctx, &api.AddPeerRequest{Peer: toAPIPeer(p, s.restarting.Load())})
	if err != nil {
		s.mu.Lock()
		delete(s.peers, p.Address)
		s.mu.Unlock()
	}
	return err
}

// Peers returns the status of every configured peer, sorted by address.
func (s *Speaker) Peers(ctx context.Context) ([]PeerStatus, error) {
	counts := map[netip.Addr]*api.Peer{}
	err := s.server.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress()); err == nil {
			counts[a] = p
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bgp: list peers: %w", err)
	}
	exported := s.exportedCount()
	s.mu.Lock()
	out := make([]PeerStatus, 0, len(s.peers))
	for addr, pe := range s.peers {
		st := PeerStatus{Config: pe.cfg, State: pe.state, Since: pe.since, Flaps: pe.flaps, PrefixLimitHits: pe.limitHits, Info: pe.state.String()}
		if pe.state != StateEstablished && pe.reason != "" {
			st.Info += "  " + pe.reason
		}
		if ap, ok := counts[addr]; ok {
			st.RemoteRouterID = ap.GetState().GetRouterId()
			for _, af := range ap.AfiSafis {
				if af.State != nil {
					st.PrefixesReceived += af.State.Received
					st.PrefixesAccepted += af.State.Accepted
				}
			}
		}
		if pe.state == StateEstablished {
			st.PrefixesAdvertised = exported[pe.cfg.Address.Is4()]
		}
		if pe.cfg.BFD.Enabled {
			st.BFD, _ = bfdState(s.bfd, addr)
			st.BFD = cmp.Or(st.BFD, "Down") // not running: the session is down
		}
		out = append(out, st)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerStatus) int { return a.Config.Address.Compare(b.Config.Address) })
	return out, nil
}

// exportedCount counts, per family (true = IPv4), the routes the export
// policy lets out: best paths this node injected whose prefix is in the
// exportable set. GoBGP's own "advertised" counter is taken before export
// policy and would overstate it; every peer gets the same set, so one count
// serves all.
func (s *Speaker) exportedCount() map[bool]uint64 {
	s.opMu.Lock()
	ranges := slices.Collect(maps.Keys(s.exportable.have))
	s.opMu.Unlock()
	counts := map[bool]uint64{}
	s.table.each(func(p netip.Prefix, paths []Path) {
		if paths[0].Local && slices.ContainsFunc(ranges, func(er exportRange) bool { return er.admits(p) }) {
			counts[p.Addr().Is4()]++
		}
	})
	return counts
}

// Sources of locally injected routes.
const (
	SourceOriginate = "originate" // the node's own blocks
	SourceKernel    = "kernel"    // alien kernel routes (BIRD's "learn")
	SourceDirect    = "direct"    // connected prefixes (BIRD's protocol direct)
)

// SetOriginated makes the set of prefixes this node originates equal to
// prefixes: new ones are announced, missing ones withdrawn, the rest left
// alone. Each originated prefix is exported exactly (not its subnets).
func (s *Speaker) SetOriginated(ctx context.Context, prefixes []netip.Prefix) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	return s.setExportedLocked(ctx, SourceOriginate, prefixes)
}

// setExportedLocked makes the prefixes source injects, each exported
// exactly, equal to prefixes.
func (s *Speaker) setExportedLocked(ctx context.Context, source string, prefixes []netip.Prefix) error {
	want, err := prefixSet(prefixes)
	if err != nil {
		return err
	}
	// The export set must admit a prefix before its path is added, and lose
	// it only after the path is gone.
	s.exported[source] = union(s.exported[source], want)
	errs := []error{s.syncExportSetLocked(ctx), s.setInjectedLocked(source, want)}
	s.exported[source] = want
	errs = append(errs, s.syncExportSetLocked(ctx))
	return errors.Join(errs...)
}

// union is a new set holding the members of a and b.
func union[K comparable](a, b map[K]bool) map[K]bool {
	out := make(map[K]bool, len(a)+len(b))
	maps.Copy(out, a)
	maps.Copy(out, b)
	return out
}

// SetInjected makes the routes that source injects into the RIB equal to
// prefixes. Injected routes are local: the export policy lets them out only
// inside the exportable set, and kernel sync never installs them. A prefix
// injected by several sources is one path, withdrawn with its last source.
func (s *Speaker) SetInjected(ctx context.Context, source string, prefixes []netip.Prefix) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	want, err := prefixSet(prefixes)
	if err != nil {
		return err
	}
	return s.setInjectedLocked(source, want)
}

func prefixSet(prefixes []netip.Prefix) (map[netip.Prefix]bool, error) {
	set := make(map[netip.Prefix]bool, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			return nil, fmt.Errorf("bgp: invalid prefix %q", p)
		}
		set[p.Masked()] = true
	}
	return set, nil
}

func (s *Speaker) setInjectedLocked(source string, want map[netip.Prefix]bool) error {
	var withdraw, announce []netip.Prefix
	for p, sources := range s.injected {
		switch {
		case !sources[source] || want[p]:
		case len(sources) == 1:
			withdraw = append(withdraw, p)
		default:
			delete(sources, source)
		}
	}
	for p := range want {
		sources := s.injected[p]
		switch {
		case sources[source]:
		case len(sources) == 0:
			announce = append(announce, p)
		default:
			sources[source] = true
		}
	}
	withdrawn, errW := s.changeLocalPaths(withdraw, true)
	for _, p := range withdrawn {
		delete(s.injected, p)
	}
	announced, errA := s.changeLocalPaths(announce, false)
	for _, p := range announced {
		s.injected[p] = map[string]bool{source: true}
	}
	if err := errors.Join(errW, errA); err != nil {
		return fmt.Errorf("bgp: local routes from %s: %w", source, err)
	}
	return nil
}

// changeLocalPaths announces (or withdraws) the local paths for prefixes in
// one call into GoBGP's loop. GoBGP fails a whole batch for one bad path,
// so a failed batch is retried path by path to keep the good ones and name
// the bad. It returns the prefixes that were changed.
func (s *Speaker) changeLocalPaths(prefixes []netip.Prefix, withdraw bool) ([]netip.Prefix, error) {
	if len(prefixes) == 0 {
		return nil, nil
	}
	paths := make([]*apiutil.Path, len(prefixes))
	for i, p := range prefixes {
		paths[i] = localPath(p)
	}
	if s.applyLocalPaths(paths, withdraw) == nil {
		return prefixes, nil
	}
	var done []netip.Prefix
	var errs []error
	for i, p := range prefixes {
		if err := s.applyLocalPaths(paths[i:i+1], withdraw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		done = append(done, p)
	}
	return done, errors.Join(errs...)
}

func (s *Speaker) applyLocalPaths(paths []*apiutil.Path, withdraw bool) error {
	if withdraw {
		// Never empty here: an empty DeletePath would delete every local path.
		return s.server.DeletePath(apiutil.DeletePathRequest{Paths: paths})
	}
	_, err := s.server.AddPath(apiutil.AddPathRequest{Paths: paths})
	return err
}

// Originated returns the prefixes this node currently originates.
func (s *Speaker) Originated() []netip.Prefix { return s.exportedBy(SourceOriginate) }

// exportedBy returns the prefixes source exports, sorted.
func (s *Speaker) exportedBy(source string) []netip.Prefix {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	out := slices.Collect(maps.Keys(s.exported[source]))
	slices.SortFunc(out, comparePrefix)
	return out
}

// SetReflect makes this node a route reflector's exporter (or not): routes
// learned over iBGP inside the export ranges are passed on, as Calico's
// route reflectors do for pool routes. Off, nothing learned ever leaves.
func (s *Speaker) SetReflect(ctx context.Context, on bool) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.reflect == on {
		return nil
	}
	s.reflect = on
	return s.resyncExportLocked(ctx)
}

// SetExportRanges sets the ranges (pools) inside which locally injected
// routes of any length may be exported, on top of the originated prefixes.
// GoBGP does not re-run export policy when a set changes, so a change is
// followed by a soft reset out: routes now allowed are sent, routes no
// longer allowed are withdrawn, and no session is reset.
func (s *Speaker) SetExportRanges(ctx context.Context, ranges []netip.Prefix) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	extra := map[exportRange]bool{}
	for _, r := range ranges {
		extra[within(r)] = true
	}
	if maps.Equal(extra, s.extra) {
		return nil
	}
	s.extra = extra
	return s.resyncExportLocked(ctx)
}

func (s *Speaker) resyncExportLocked(ctx context.Context) error {
	if err := s.syncExportSetLocked(ctx); err != nil {
		return err
	}
	if err := s.server.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT}); err != nil {
		return fmt.Errorf("bgp: re-evaluate export policy: %w", err)
	}
	return nil
}

func (s *Speaker) syncExportSetLocked(ctx context.Context) error {
	want := maps.Clone(s.extra)
	for _, set := range s.exported {
		for p := range set {
			want[exactly(p)] = true
		}
	}
	reflect := map[exportRange]bool{}
	if s.reflect {
		reflect = union(s.extra, s.serviceRanges)
	}
	return errors.Join(s.exportable.sync(ctx, s.server, want), s.reflectable.sync(ctx, s.server, reflect))
}

// localPath builds the path petrel originates for p: origin IGP, next hop
// unspecified so GoBGP fills in the session's local address.
func localPath(p netip.Prefix) *apiutil.Path {
	nlri, _ := bgppacket.NewIPAddrPrefix(p)
	attrs := []bgppacket.PathAttributeInterface{bgppacket.NewPathAttributeOrigin(bgppacket.BGP_ORIGIN_ATTR_TYPE_IGP)}
	family := bgppacket.RF_IPv6_UC
	if p.Addr().Is4() {
		family = bgppacket.RF_IPv4_UC
		nh, _ := bgppacket.NewPathAttributeNextHop(netip.IPv4Unspecified())
		attrs = append(attrs, nh)
	} else {
		mp, _ := bgppacket.NewPathAttributeMpReachNLRI(family, []bgppacket.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		attrs = append(attrs, mp)
	}
	return &apiutil.Path{Family: family, Nlri: nlri, Attrs: attrs}
}

// Shutdown deconfigures every peer with a Cease, so peers drop our routes at
// once. Use it for a deliberate removal; a restart should simply exit and
// let graceful restart keep the routes.
func (s *Speaker) Shutdown(ctx context.Context) error {
	defer s.cancel()
	defer s.bfd.Stop()
	return s.server.StopBgp(ctx, &api.StopBgpRequest{})
}

// Close stops the watches without telling peers anything: the process is
// about to exit and graceful restart will keep our routes at the peers.
func (s *Speaker) Close() {
	if s.cancel != nil {
		s.cancel()
	}
}
