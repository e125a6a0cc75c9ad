package bgp

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppacket "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/petrel-net/petrel/internal/coalesce"
)

// routeTable is the speaker's view of GoBGP's decisions: per prefix, the
// multipath set (the best path and every path equal to it). It is fed only
// by the best-path watch and read by status calls and new subscribers.
type routeTable struct {
	mu     sync.RWMutex
	routes map[netip.Prefix][]Path
	subs   map[*RouteSubscription]struct{}
}

func newRouteTable() *routeTable {
	return &routeTable{routes: map[netip.Prefix][]Path{}, subs: map[*RouteSubscription]struct{}{}}
}

// RouteSubscription delivers route changes, coalesced per prefix: a consumer
// that falls behind sees only the latest state of each prefix, never a
// backlog, and never slows BGP down.
type RouteSubscription struct {
	q     *coalesce.Queue[netip.Prefix, Route]
	table *routeTable
}

// Ready is signalled when routes are waiting; closed after Close.
func (s *RouteSubscription) Ready() <-chan struct{} { return s.q.Ready() }

// Drain hands every waiting route change to fn, oldest prefix first.
func (s *RouteSubscription) Drain(fn func(Route)) int {
	return s.q.Drain(func(_ netip.Prefix, r Route) { fn(r) })
}

// Close stops delivery.
func (s *RouteSubscription) Close() {
	s.table.mu.Lock()
	delete(s.table.subs, s)
	s.table.mu.Unlock()
	s.q.Close()
}

// subscribe registers a subscriber and, with replay, queues the whole
// current table for it, under the lock so that no update slips between
// replay and live feed.
func (t *routeTable) subscribe(replay bool) *RouteSubscription {
	s := &RouteSubscription{q: coalesce.New[netip.Prefix, Route](), table: t}
	t.mu.Lock()
	defer t.mu.Unlock()
	for p, paths := range t.routes {
		if !replay {
			break
		}
		s.q.Put(p, Route{Prefix: p, Paths: paths})
	}
	t.subs[s] = struct{}{}
	return s
}

func (t *routeTable) snapshot() []Route {
	t.mu.RLock()
	out := make([]Route, 0, len(t.routes))
	for p, paths := range t.routes {
		out = append(out, Route{Prefix: p, Paths: paths})
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b Route) int { return comparePrefix(a.Prefix, b.Prefix) })
	return out
}

// each calls fn for every prefix under the read lock, without copying or
// sorting the table: for counts that run on every status call and scrape.
func (t *routeTable) each(fn func(netip.Prefix, []Path)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for p, paths := range t.routes {
		fn(p, paths)
	}
}

func (t *routeTable) get(p netip.Prefix) (Route, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	paths, ok := t.routes[p]
	return Route{Prefix: p, Paths: paths}, ok
}

func (t *routeTable) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.routes)
}

// apply folds one best-path event into the table and fans the changed
// prefixes out to subscribers.
//
// With multipath on, GoBGP reports each change to a prefix's multipath set
// as a delta: members that left (Withdrawal) and members that joined or
// changed, each identified by its source and add-path ID. The start-up
// replay lists every member of every set, which is the same as joining an
// empty table.
func (t *routeTable) apply(batch []*apiutil.Path, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ap := range batch {
		prefix, ok := nlriPrefix(ap.Nlri)
		if !ok {
			continue
		}
		paths := t.routes[prefix]
		if ap.Withdrawal {
			paths = removeMember(paths, memberKeyOf(ap))
		} else {
			paths = putMember(paths, fromNativePath(ap))
		}
		if len(paths) == 0 {
			delete(t.routes, prefix)
		} else {
			t.routes[prefix] = paths
		}
		t.publishLocked(prefix, at)
	}
}

// publishLocked queues prefix's current paths for every subscriber. The
// queue coalesces per prefix, so the members of one set published one by
// one cost one delivery.
func (t *routeTable) publishLocked(prefix netip.Prefix, at time.Time) {
	paths := t.routes[prefix]
	for s := range t.subs {
		s.q.Put(prefix, Route{Prefix: prefix, Paths: paths, At: at})
	}
}

// memberKey identifies one multipath member: its source and add-path ID.
type memberKey struct {
	peer netip.Addr
	id   uint32
}

func memberKeyOf(ap *apiutil.Path) memberKey {
	k := memberKey{id: ap.RemoteID}
	if ap.PeerAddress.IsValid() && !ap.PeerAddress.IsUnspecified() {
		k.peer = ap.PeerAddress
	}
	return k
}

func (p Path) key() memberKey { return memberKey{peer: p.Peer, id: p.ID} }

// putMember returns paths with p added, or replacing the member with p's
// key. The slice is copied: subscribers may still hold the old one.
func putMember(paths []Path, p Path) []Path {
	out := make([]Path, 0, len(paths)+1)
	for _, old := range paths {
		if old.key() != p.key() {
			out = append(out, old)
		}
	}
	out = append(out, p)
	slices.SortFunc(out, compareMember)
	return out
}

// removeMember returns paths without the member k (copied, as putMember).
func removeMember(paths []Path, k memberKey) []Path {
	i := slices.IndexFunc(paths, func(p Path) bool { return p.key() == k })
	if i < 0 {
		return paths
	}
	if len(paths) == 1 {
		return nil
	}
	return slices.Delete(slices.Clone(paths), i, i+1)
}

// compareMember orders a multipath set: GoBGP's delta events do not say
// which member is best (they are equal by definition), so the order is by
// source, stable for status output and kernel writes.
func compareMember(a, b Path) int {
	if a.Local != b.Local {
		if a.Local {
			return -1
		}
		return 1
	}
	if c := a.Peer.Compare(b.Peer); c != 0 {
		return c
	}
	return int(a.ID) - int(b.ID)
}

func nlriPrefix(n bgppacket.NLRI) (netip.Prefix, bool) {
	if p, ok := n.(*bgppacket.IPAddrPrefix); ok {
		return p.Prefix, true
	}
	return netip.Prefix{}, false
}

// fromNativePath reads the attributes petrel uses straight from GoBGP's
// decoded attributes: no copies, no protobuf.
func fromNativePath(ap *apiutil.Path) Path {
	k := memberKeyOf(ap)
	p := Path{Peer: k.peer, ID: k.id, PeerASN: ap.PeerASN, Stale: ap.Stale, Local: !k.peer.IsValid()}
	for _, attr := range ap.Attrs {
		switch a := attr.(type) {
		case *bgppacket.PathAttributeNextHop:
			p.NextHop = usableNextHop(a.Value)
		case *bgppacket.PathAttributeMpReachNLRI:
			p.NextHop = usableNextHop(a.Nexthop)
		case *bgppacket.PathAttributeLocalPref:
			p.LocalPref = a.Value
		case *bgppacket.PathAttributeAsPath:
			for _, seg := range a.Value {
				p.ASPath = append(p.ASPath, seg.GetAS()...)
			}
		case *bgppacket.PathAttributeCommunities:
			p.LLGRStale = slices.Contains(a.Value, uint32(bgppacket.COMMUNITY_LLGR_STALE))
		}
	}
	return p
}

// usableNextHop returns the next hop, or the zero Addr for the unspecified
// address that marks a route this node originates.
func usableNextHop(a netip.Addr) netip.Addr {
	if !a.IsValid() || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a.Unmap()
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
