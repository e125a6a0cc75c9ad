package bgp

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	api "github.com/osrg/gobgp/v4/api"
)

// GoBGP evaluates statements in order and stops at the first ACCEPT or
// REJECT; a statement without a route action only modifies the route and
// goes on. A BGPFilter Accept must stop the peer's filter rules without
// accepting the route outright (the leak-proof rule still decides), so it
// tags the route with a marker (a route target of the reserved AS 65535,
// RFC 7300) that later rules check for and that is removed before the
// route leaves or enters the RIB. Markers a peer sends are removed on
// import first: nobody can skip our rules by sending one.
const (
	markerAS       = 65535
	anyMarker      = "rt:^65535:[0-9]+$"
	ebgpPeersSet   = "petrel-ebgp-peers"
	filterPolicyEx = "petrel-filters-export"
	filterPolicyIm = "petrel-filters-import"
)

// renderedPolicy is a RoutePolicy as GoBGP objects. Names carry the
// generation, so a new policy is installed beside the old one and the
// assignment switches in one step.
type renderedPolicy struct {
	sets            []*api.DefinedSet
	export, import_ *api.Policy // nil when empty
}

type policyRenderer struct {
	gen        uint64
	sets       []*api.DefinedSet
	markers    int
	statements int
}

// stmt names a new statement.
func (pr *policyRenderer) stmt(kind string) string {
	pr.statements++
	return pr.name(kind, pr.statements)
}

func (pr *policyRenderer) name(kind string, n int) string {
	return fmt.Sprintf("petrel-g%d-%s%d", pr.gen, kind, n)
}

func (pr *policyRenderer) set(typ api.DefinedType, kind string, list []string) string {
	name := pr.name(kind, len(pr.sets))
	pr.sets = append(pr.sets, &api.DefinedSet{DefinedType: typ, Name: name, List: list})
	return name
}

func (pr *policyRenderer) prefixSet(r FilterRule) string {
	name := pr.name("prefix", len(pr.sets))
	minLen, maxLen := r.Prefix.Bits(), r.Prefix.Bits()
	if r.Op == MatchIn || r.Op == MatchNotIn {
		minLen, maxLen = r.lengths()
	}
	pr.sets = append(pr.sets, &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: name,
		Prefixes: []*api.Prefix{{IpPrefix: r.Prefix.Masked().String(), MaskLengthMin: uint32(minLen), MaskLengthMax: uint32(maxLen)}}})
	return name
}

func match(name string) *api.MatchSet { return &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: name} }
func noMatch(name string) *api.MatchSet {
	return &api.MatchSet{Type: api.MatchSet_TYPE_INVERT, Name: name}
}

func neighborList(peers []netip.Addr) []string {
	out := make([]string, len(peers))
	for i, a := range peers {
		out[i] = netip.PrefixFrom(a, a.BitLen()).String()
	}
	return out
}

func familyCond(v6 bool) []*api.Family {
	if v6 {
		return []*api.Family{{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}}
	}
	return []*api.Family{{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}}
}

// stripMarkers removes every marker and goes on.
func (pr *policyRenderer) stripMarkers(markers string) *api.Statement {
	return &api.Statement{
		Name:       pr.stmt("strip"),
		Conditions: &api.Conditions{ExtCommunitySet: match(markers)},
		Actions: &api.Actions{ExtCommunity: &api.CommunityAction{
			Type: api.CommunityAction_TYPE_REMOVE, Communities: []string{anyMarker}}},
	}
}

// addCommunities builds the actions that add standard and large
// communities.
func addCommunities(a *api.Actions, communities []string) {
	var std, large []string
	for _, c := range communities {
		if IsLargeCommunity(c) {
			large = append(large, c)
		} else {
			std = append(std, c)
		}
	}
	if len(std) > 0 {
		a.Community = &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: std}
	}
	if len(large) > 0 {
		a.LargeCommunity = &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: large}
	}
}

// ruleStatements renders one rule for the peers in neighbors.
func (pr *policyRenderer) ruleStatements(neighbors, markers string, r FilterRule) []*api.Statement {
	if r.Never {
		return nil
	}
	var prefix, community, largeCommunity, asPath *api.MatchSet
	if r.Prefix.IsValid() {
		set := pr.prefixSet(r)
		if r.Op == MatchNotEqual || r.Op == MatchNotIn {
			prefix = noMatch(set)
		} else {
			prefix = match(set)
		}
	}
	if r.Community != "" {
		if IsLargeCommunity(r.Community) {
			largeCommunity = match(pr.set(api.DefinedType_DEFINED_TYPE_LARGE_COMMUNITY, "lcomm", []string{r.Community}))
		} else {
			community = match(pr.set(api.DefinedType_DEFINED_TYPE_COMMUNITY, "comm", []string{r.Community}))
		}
	}
	if len(r.ASPathPrefix) > 0 {
		parts := make([]string, len(r.ASPathPrefix))
		for i, as := range r.ASPathPrefix {
			parts[i] = fmt.Sprint(as)
		}
		asPath = match(pr.set(api.DefinedType_DEFINED_TYPE_AS_PATH, "aspath", []string{"^" + strings.Join(parts, "_") + "_"}))
	}
	decide := &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT}
	var ops []*api.Statement
	if !r.Reject {
		pr.markers++
		marker := fmt.Sprintf("rt:%d:%d", markerAS, pr.markers)
		decide = &api.Actions{ExtCommunity: &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: []string{marker}}}
		ops = pr.operations(marker, r)
	}
	types := []api.Conditions_RouteType{api.Conditions_ROUTE_TYPE_UNSPECIFIED}
	if r.FromPeers {
		types = []api.Conditions_RouteType{api.Conditions_ROUTE_TYPE_INTERNAL, api.Conditions_ROUTE_TYPE_EXTERNAL}
	}
	var out []*api.Statement
	for _, t := range types {
		out = append(out, &api.Statement{Name: pr.stmt("rule"), Actions: decide, Conditions: &api.Conditions{
			NeighborSet: match(neighbors), ExtCommunitySet: noMatch(markers), AfiSafiIn: familyCond(r.IPv6),
			PrefixSet: prefix, CommunitySet: community, LargeCommunitySet: largeCommunity, AsPathSet: asPath, RouteType: t,
		}})
	}
	return append(out, ops...)
}

// operations renders an Accept rule's modifications, applied to the
// routes its marker tags. GoBGP prepends one AS (repeated) per action, so
// the list is prepended last AS first.
func (pr *policyRenderer) operations(marker string, r FilterRule) []*api.Statement {
	if len(r.AddCommunities) == 0 && len(r.PrependASPath) == 0 {
		return nil
	}
	tagged := &api.Conditions{ExtCommunitySet: match(pr.set(api.DefinedType_DEFINED_TYPE_EXT_COMMUNITY, "marker", []string{"rt:^" + strings.TrimPrefix(marker, "rt:") + "$"}))}
	var out []*api.Statement
	if len(r.AddCommunities) > 0 {
		a := &api.Actions{}
		addCommunities(a, r.AddCommunities)
		out = append(out, &api.Statement{Name: pr.stmt("ops"), Conditions: tagged, Actions: a})
	}
	for i := len(r.PrependASPath) - 1; i >= 0; i-- {
		out = append(out, &api.Statement{Name: pr.stmt("prepend"), Conditions: tagged,
			Actions: &api.Actions{AsPrepend: &api.AsPrependAction{Asn: r.PrependASPath[i], Repeat: 1}}})
	}
	return out
}

// group gathers the peers whose rule lists are the same, in a stable
// order.
type group struct {
	key   string
	rules []FilterRule
	peers []netip.Addr
}

func groupPeers(peers map[netip.Addr]PeerPolicy, rulesOf func(PeerPolicy) []FilterRule) []group {
	byKey := map[string]*group{}
	for addr, p := range peers {
		rules := rulesOf(p)
		if len(rules) == 0 {
			continue
		}
		var b strings.Builder
		for _, r := range rules {
			b.WriteString(r.key())
			b.WriteByte('\n')
		}
		g := byKey[b.String()]
		if g == nil {
			g = &group{key: b.String(), rules: rules}
			byKey[g.key] = g
		}
		g.peers = append(g.peers, addr)
	}
	out := make([]group, 0, len(byKey))
	for _, g := range byKey {
		slices.SortFunc(g.peers, netip.Addr.Compare)
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b group) int { return a.peers[0].Compare(b.peers[0]) })
	return out
}

// filterStatements renders one direction's rules for every peer group.
func (pr *policyRenderer) filterStatements(markers string, groups []group) []*api.Statement {
	var out []*api.Statement
	for _, g := range groups {
		neighbors := pr.set(api.DefinedType_DEFINED_TYPE_NEIGHBOR, "peers", neighborList(g.peers))
		for _, r := range g.rules {
			out = append(out, pr.ruleStatements(neighbors, markers, r)...)
		}
	}
	return out
}

// nextHopStatements renders nextHopMode Self and Keep.
func (pr *policyRenderer) nextHopStatements(peers map[netip.Addr]PeerPolicy) []*api.Statement {
	var out []*api.Statement
	for _, mode := range []NextHopMode{NextHopSelf, NextHopKeep} {
		var addrs []netip.Addr
		for a, p := range peers {
			if p.NextHop == mode {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) == 0 {
			continue
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		set := pr.set(api.DefinedType_DEFINED_TYPE_NEIGHBOR, "nexthop", neighborList(addrs))
		action := &api.NexthopAction{Self: mode == NextHopSelf, Unchanged: mode == NextHopKeep}
		out = append(out, &api.Statement{Name: pr.stmt("nexthop"),
			Conditions: &api.Conditions{NeighborSet: match(set)}, Actions: &api.Actions{Nexthop: action}})
	}
	return out
}

// communityStatements renders prefixAdvertisements: most specific first,
// so a node's own /26 can carry other communities than its pool.
func (pr *policyRenderer) communityStatements(adverts []PrefixCommunities) []*api.Statement {
	adverts = slices.Clone(adverts)
	slices.SortStableFunc(adverts, func(a, b PrefixCommunities) int { return cmp.Compare(b.Prefix.Bits(), a.Prefix.Bits()) })
	var out []*api.Statement
	for _, ad := range adverts {
		set := pr.prefixSet(FilterRule{Prefix: ad.Prefix, Op: MatchIn})
		a := &api.Actions{}
		addCommunities(a, ad.Communities)
		out = append(out, &api.Statement{Name: pr.stmt("advert"),
			Conditions: &api.Conditions{PrefixSet: match(set)}, Actions: a})
	}
	return out
}

// renderRoutePolicy turns rp into GoBGP sets and the export and import
// filter policies, named for generation gen.
func renderRoutePolicy(rp RoutePolicy, gen uint64) renderedPolicy {
	pr := &policyRenderer{gen: gen}
	if rp.Empty() {
		return renderedPolicy{}
	}
	markers := pr.set(api.DefinedType_DEFINED_TYPE_EXT_COMMUNITY, "markers", []string{anyMarker})
	var export, imp []*api.Statement
	export = append(export, pr.filterStatements(markers, groupPeers(rp.Peers, func(p PeerPolicy) []FilterRule { return p.Export }))...)
	export = append(export, pr.stripMarkers(markers))
	export = append(export, pr.communityStatements(rp.Communities)...)
	export = append(export, pr.nextHopStatements(rp.Peers)...)
	imp = append(imp, pr.stripMarkers(markers))
	imp = append(imp, pr.filterStatements(markers, groupPeers(rp.Peers, func(p PeerPolicy) []FilterRule { return p.Import }))...)
	imp = append(imp, pr.stripMarkers(markers))
	return renderedPolicy{
		sets:    pr.sets,
		export:  &api.Policy{Name: fmt.Sprintf("%s-g%d", filterPolicyEx, gen), Statements: export},
		import_: &api.Policy{Name: fmt.Sprintf("%s-g%d", filterPolicyIm, gen), Statements: imp},
	}
}

// SetRoutePolicy installs rp: BGPFilter rules, next-hop modes and
// prefixAdvertisements communities. An unchanged policy costs nothing; a
// changed one is installed beside the old, switched to in one step, and
// applied with soft resets (in and out), so no session goes down.
func (s *Speaker) SetRoutePolicy(ctx context.Context, rp RoutePolicy) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if rp.Equal(s.routePolicy) {
		return nil
	}
	s.policyGen++
	next := renderRoutePolicy(rp, s.policyGen)
	for _, set := range next.sets {
		if err := s.server.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: set}); err != nil {
			return fmt.Errorf("bgp: route policy set %s: %w", set.Name, err)
		}
	}
	exportPolicies := []*api.Policy{{Name: exportPolicyName}}
	var importPolicies []*api.Policy
	for _, p := range []*api.Policy{next.export, next.import_} {
		if p == nil {
			continue
		}
		if err := s.server.AddPolicy(ctx, &api.AddPolicyRequest{Policy: p}); err != nil {
			return fmt.Errorf("bgp: route policy %s: %w", p.Name, err)
		}
	}
	if next.export != nil {
		exportPolicies = []*api.Policy{{Name: next.export.Name}, {Name: exportPolicyName}}
		importPolicies = []*api.Policy{{Name: next.import_.Name}}
	}
	assign := exportAssignment()
	assign.Policies = exportPolicies
	if err := s.server.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: assign}); err != nil {
		return fmt.Errorf("bgp: export policy assignment: %w", err)
	}
	if err := s.server.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies: importPolicies, DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
	}}); err != nil {
		return fmt.Errorf("bgp: import policy assignment: %w", err)
	}
	old := s.installedPolicy
	s.installedPolicy, s.routePolicy = next, rp
	for _, p := range []*api.Policy{old.export, old.import_} {
		if p != nil {
			if err := s.server.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: p.Name}, All: true}); err != nil {
				s.log.Warn("removing a replaced route policy", "policy", p.Name, "err", err)
			}
		}
	}
	for _, set := range old.sets {
		if err := s.server.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: set, All: true}); err != nil {
			s.log.Warn("removing a replaced route policy set", "set", set.Name, "err", err)
		}
	}
	for _, dir := range []api.ResetPeerRequest_Direction{api.ResetPeerRequest_DIRECTION_IN, api.ResetPeerRequest_DIRECTION_OUT} {
		if err := s.server.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: dir}); err != nil {
			return fmt.Errorf("bgp: apply route policy: %w", err)
		}
	}
	return nil
}
