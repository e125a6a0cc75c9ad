package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/datastore"
)

// Change is a datastore change dry-run evaluates: objects to apply
// (create or update) and objects to delete (kind and name are read).
type Change struct {
	Apply, Delete []datastore.Object
}

// NodeImpact is what a change would do on one node, computed with the
// daemon's own code: computeDesired on the datastore's objects before and
// after, bgp.PlanPeers for the sessions and bgp.DecideExport for what
// leaves the node.
type NodeImpact struct {
	Node string
	// Sessions added, removed and reset (re-created: the session goes
	// down), each "ADDRESS (NAME, TYPE)".
	Added, Removed, Reset []string
	// PolicyChanged: the route policy changes and is re-applied with soft
	// resets (no session goes down).
	PolicyChanged bool
	// ExportStarts and ExportStops are "PREFIX -> PEER: RULE"; a new
	// session's exports start. ExportHeld are the prefixes a BGPFilter
	// would keep from a new session.
	ExportStarts, ExportStops, ExportHeld []string
	// NewProblems are problems the change would add (skipped objects).
	NewProblems []string
}

// Empty reports whether the change does nothing on the node.
func (n NodeImpact) Empty() bool {
	return len(n.Added)+len(n.Removed)+len(n.Reset)+len(n.ExportStarts)+len(n.ExportStops)+len(n.ExportHeld)+len(n.NewProblems) == 0 && !n.PolicyChanged
}

// DryRun reads the datastore, applies ch in memory and reports, per node,
// what the daemons would do. Nothing is written.
func DryRun(ctx context.Context, b datastore.Backend, ch Change) ([]NodeImpact, error) {
	snaps, err := listWatched(ctx, b)
	if err != nil {
		return nil, err
	}
	before := snapshotOf(snaps, nil)
	after := snapshotOf(changed(snaps, ch), nil)
	var out []NodeImpact
	for _, n := range mergeNodes(before.Nodes, after.Nodes) {
		out = append(out, nodeImpact(n, before, after))
	}
	return out, nil
}

// listWatched reads every watched kind once, as the daemon's informers
// would (IPPools validated); objects that cannot be decoded are left out.
func listWatched(ctx context.Context, b datastore.Backend) (map[datastore.Kind]datastore.Snapshot, error) {
	snaps := map[datastore.Kind]datastore.Snapshot{}
	for _, kind := range watchedKinds {
		objs, _, err := b.List(ctx, kind)
		if _, partial := datastore.SkippedObjects(err); err != nil && !partial && !optionalKinds[kind] {
			return nil, fmt.Errorf("dry-run: list %s: %w", kind, err)
		}
		s := datastore.Snapshot{}
		for _, o := range objs {
			s[o.GetName()] = o
		}
		if kind == datastore.KindIPPool {
			s, _ = validPools(s)
		}
		snaps[kind] = s
	}
	return snaps, nil
}

// changed returns snaps with ch applied (copied: snaps is the "before").
func changed(snaps map[datastore.Kind]datastore.Snapshot, ch Change) map[datastore.Kind]datastore.Snapshot {
	out := map[datastore.Kind]datastore.Snapshot{}
	for kind, s := range snaps {
		c := make(datastore.Snapshot, len(s))
		for name, o := range s {
			c[name] = o
		}
		out[kind] = c
	}
	for _, o := range ch.Apply {
		if s, watched := out[o.Kind()]; watched && (o.Kind() != datastore.KindIPPool || o.Validate() == nil) {
			s[o.GetName()] = o
		}
	}
	for _, o := range ch.Delete {
		if s, watched := out[o.Kind()]; watched {
			delete(s, o.GetName())
		}
	}
	return out
}

// mergeNodes lists the nodes of either side, by name (the "after" object
// when both have it).
func mergeNodes(before, after []*datastore.Node) []*datastore.Node {
	out := slices.Clone(after)
	for _, n := range before {
		if !slices.ContainsFunc(after, func(a *datastore.Node) bool { return a.Name == n.Name }) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b *datastore.Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// nodeImpact compares what node n would do before and after.
func nodeImpact(n *datastore.Node, before, after snapshot) NodeImpact {
	me := self{Name: n.Name}
	if ip, ok := n.IPv4(); ok {
		me.Subnet = ip.Masked()
	}
	if ip, ok := n.IPv6(); ok {
		me.Subnet6 = ip.Masked()
	}
	was, will := computeDesired(before, me), computeDesired(after, me)
	imp := NodeImpact{Node: n.Name, PolicyChanged: !was.RoutePolicy.Equal(will.RoutePolicy)}
	add, remove, reset := bgp.PlanPeers(was.Peers, will.Peers)
	imp.Added, imp.Removed, imp.Reset = peerNames(add), peerNames(remove), peerNames(reset)
	if !reflect.DeepEqual(exportInputs(was), exportInputs(will)) {
		imp.ExportStarts, imp.ExportStops, imp.ExportHeld = exportChanges(was, will, otherBlocks(before, after, n.Name))
	}
	for _, p := range will.Problems {
		if !slices.Contains(was.Problems, p) {
			imp.NewProblems = append(imp.NewProblems, p)
		}
	}
	return imp
}

func peerNames(ps []bgp.PeerConfig) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s (%s, %s)", p.Address, p.Name, p.Type))
	}
	return out
}

// exportInputs is the part of desired that decides exports.
func exportInputs(d desired) []any {
	return []any{d.Peers, d.RoutePolicy.Peers, d.ExportRanges, d.Reflector, d.Originated}
}

// otherBlock is another node's block as this node learns it: over iBGP
// from that node's address.
type otherBlock struct {
	prefix netip.Prefix
	from   netip.Addr
}

// otherBlocks are the other nodes' confirmed blocks on either side.
func otherBlocks(before, after snapshot, self string) []otherBlock {
	var out []otherBlock
	for _, snap := range []snapshot{before, after} {
		for _, a := range snap.Affinities {
			if a.Spec.Node == self || a.Spec.Deleted == "true" || (a.Spec.State != "" && a.Spec.State != "confirmed") {
				continue
			}
			p, err := netip.ParsePrefix(a.Spec.CIDR)
			from := nodeAddr(snap.Nodes, a.Spec.Node, p.Addr().Is6())
			if ob := (otherBlock{p.Masked(), from}); err == nil && from.IsValid() && !slices.Contains(out, ob) {
				out = append(out, ob)
			}
		}
	}
	return out
}

// nodeAddr is node name's BGP address of one family: the session of that
// family brings its blocks of that family.
func nodeAddr(nodes []*datastore.Node, name string, ipv6 bool) netip.Addr {
	for _, n := range nodes {
		if n.Name != name {
			continue
		}
		ip, ok := n.IPv4()
		if ipv6 {
			ip, ok = n.IPv6()
		}
		if ok {
			return ip.Addr()
		}
	}
	return netip.Addr{}
}

// exportChanges decides every (prefix, peer) pair on both sides. A new
// session starts with nothing exported; a removed one is reported as
// removed, not prefix by prefix.
func exportChanges(was, will desired, others []otherBlock) (starts, stops, held []string) {
	routes := routesToDecide(was, will, others)
	for _, peer := range will.Peers {
		i := slices.IndexFunc(was.Peers, func(p bgp.PeerConfig) bool { return p.Address == peer.Address })
		for _, r := range routes {
			old := bgp.ExportDecision{}
			if i >= 0 {
				old = decideFor(was, was.Peers[i], r)
			}
			now := decideFor(will, peer, r)
			line := fmt.Sprintf("%s -> %s (%s): %s", r.prefix, peer.Address, peer.Name, now.Rule)
			switch {
			case now.Exported && !old.Exported:
				starts = append(starts, line)
			case old.Exported && !now.Exported:
				stops = append(stops, line)
			case i < 0 && now.ByFilter:
				held = append(held, line)
			}
		}
	}
	return starts, stops, held
}

// routeToDecide is a route the node has: one it originates (local) or
// another node's block (learned over iBGP from that node).
type routeToDecide struct {
	prefix netip.Prefix
	best   bgp.Path
}

func routesToDecide(was, will desired, others []otherBlock) []routeToDecide {
	var out []routeToDecide
	for _, p := range append(slices.Clone(was.Originated), will.Originated...) {
		if !slices.ContainsFunc(out, func(r routeToDecide) bool { return r.prefix == p }) {
			out = append(out, routeToDecide{prefix: p, best: bgp.Path{Local: true}})
		}
	}
	for _, o := range others {
		out = append(out, routeToDecide{prefix: o.prefix, best: bgp.Path{Peer: o.from, NextHop: o.from}})
	}
	return out
}

// decideFor runs bgp.DecideExport for route r to peer under d. A
// prefix d does not originate has no local path there.
func decideFor(d desired, peer bgp.PeerConfig, r routeToDecide) bgp.ExportDecision {
	if r.best.Local && !slices.Contains(d.Originated, r.prefix) {
		return bgp.ExportDecision{Rule: "not originated"}
	}
	in := bgp.ExportInput{Prefix: r.prefix, Best: r.best, Peer: peer, LocalASN: d.ASN,
		Exportable: d.ExportRanges, Originated: d.Originated, Rules: d.RoutePolicy.Peers[peer.Address].Export}
	if d.Reflector {
		in.Reflectable = d.ExportRanges
	}
	if !r.best.Local {
		from := slices.IndexFunc(d.Peers, func(p bgp.PeerConfig) bool { return p.Address == r.best.Peer })
		if from < 0 && !hasReflectorPath(d) {
			return bgp.ExportDecision{Rule: "not learned: no session brings it"}
		}
		in.FromIBGP = from < 0 || d.Peers[from].ASN == d.ASN // via a reflector when not a direct peer
		in.FromRRClient = from >= 0 && d.Peers[from].RouteReflectorClient
	}
	return bgp.DecideExport(in)
}

// hasReflectorPath reports whether another node's block can reach this
// node other than from that node: over an iBGP session outside the mesh
// (a route reflector, a global iBGP BGPPeer).
func hasReflectorPath(d desired) bool {
	return slices.ContainsFunc(d.Peers, func(p bgp.PeerConfig) bool { return p.ASN == d.ASN && p.Type != bgp.PeerTypeMesh })
}
