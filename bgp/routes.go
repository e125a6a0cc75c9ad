package bgp

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/petrel-net/petrel/internal/coalesce"
)

// routeTable is the speaker's view of GoBGP's decisions: per prefix, the
// best path followed by the other multipath members. It is fed only by the
// BEST watch and read by status calls and new subscribers.
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

// apply folds one BEST watch batch into the table and fans the changed
// prefixes out to subscribers.
//
// With multipath on, GoBGP sends for each changed prefix its whole new
// multipath set (best first); a withdrawn prefix arrives as one path with
// IsWithdraw. Each group therefore replaces the prefix's paths.
func (t *routeTable) apply(batch []*api.Path) {
	groups := groupByPrefix(batch)
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, g := range groups {
		next := g.paths
		if len(next) == 0 {
			delete(t.routes, g.prefix)
		} else {
			t.routes[g.prefix] = next
		}
		for s := range t.subs {
			s.q.Put(g.prefix, Route{Prefix: g.prefix, Paths: next, At: now})
		}
	}
}

// prefixGroup is one prefix's share of a watch batch: its live paths, or
// none when GoBGP only withdrew it.
type prefixGroup struct {
	prefix netip.Prefix
	paths  []Path
}

func groupByPrefix(batch []*api.Path) []prefixGroup {
	var groups []prefixGroup
	index := map[netip.Prefix]int{}
	for _, ap := range batch {
		prefix, ok := pathPrefix(ap)
		if !ok {
			continue
		}
		i, seen := index[prefix]
		if !seen {
			i = len(groups)
			index[prefix] = i
			groups = append(groups, prefixGroup{prefix: prefix})
		}
		if !ap.IsWithdraw {
			groups[i].paths = append(groups[i].paths, fromAPIPath(ap))
		}
	}
	return groups
}

func pathPrefix(ap *api.Path) (netip.Prefix, bool) {
	if ap.Nlri == nil {
		return netip.Prefix{}, false
	}
	var nlri api.IPAddressPrefix
	if err := ap.Nlri.UnmarshalTo(&nlri); err != nil {
		return netip.Prefix{}, false
	}
	addr, err := netip.ParseAddr(nlri.Prefix)
	if err != nil {
		return netip.Prefix{}, false
	}
	p, err := addr.Prefix(int(nlri.PrefixLen))
	return p, err == nil
}

// fromAPIPath decodes the attributes petrel uses. Only the few attribute
// types it needs are unmarshalled: this runs for every path GoBGP selects.
func fromAPIPath(ap *api.Path) Path {
	p := Path{PeerASN: ap.SourceAsn, ID: ap.Identifier, Stale: ap.Stale}
	if addr, err := netip.ParseAddr(ap.NeighborIp); err == nil && !addr.IsUnspecified() {
		p.Peer = addr
	} else {
		p.Local = true
	}
	for _, attr := range ap.Pattrs {
		decodeAttr(attr, &p)
	}
	return p
}

func decodeAttr(attr *anypb.Any, p *Path) {
	switch attr.MessageName() {
	case "apipb.NextHopAttribute":
		var nh api.NextHopAttribute
		if attr.UnmarshalTo(&nh) == nil {
			p.NextHop = parseNextHop(nh.NextHop)
		}
	case "apipb.MpReachNLRIAttribute":
		var mp api.MpReachNLRIAttribute
		if attr.UnmarshalTo(&mp) == nil && len(mp.NextHops) > 0 {
			p.NextHop = parseNextHop(mp.NextHops[0])
		}
	case "apipb.LocalPrefAttribute":
		var lp api.LocalPrefAttribute
		if attr.UnmarshalTo(&lp) == nil {
			p.LocalPref = lp.LocalPref
		}
	case "apipb.AsPathAttribute":
		var asp api.AsPathAttribute
		if attr.UnmarshalTo(&asp) == nil {
			for _, seg := range asp.Segments {
				p.ASPath = append(p.ASPath, seg.Numbers...)
			}
		}
	}
}

// parseNextHop returns the next hop, or the zero Addr for the unspecified
// address that marks a route this node originates.
func parseNextHop(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
