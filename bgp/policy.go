package bgp

import (
	"context"
	"fmt"
	"net/netip"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Purposes of petrel's prefix sets. GoBGP's prefix sets hold one address
// family each, so each purpose has a -v4 and a -v6 set.
const (
	setExportable    = "petrel-exportable"  // local routes that may leave
	setReflectable   = "petrel-reflectable" // iBGP routes a route reflector passes on
	exportPolicyName = "calico_export_to_bgp_peers"
)

// exportPolicy is the one export rule petrel installs, assigned globally
// (GoBGP's per-peer assignments only work for route-server clients):
//
//	route put into the RIB by this node, prefix in the exportable set  -> accept
//	route learned over iBGP, prefix in the reflectable set             -> accept
//	route learned over iBGP, prefix in the exportable set, to eBGP     -> accept
//	anything else                                                      -> reject
//
// The exportable set holds the originated blocks and Service prefixes
// (each exactly) and the pools (with their subnets). The reflectable set
// is empty unless this node is a route reflector (then: the pools and the
// Service ranges). The third rule is Calico's: every node passes the pool
// routes it learned from the mesh on to its eBGP peers (a few gateway
// nodes can front the whole cluster to a ToR). A route learned over eBGP,
// or outside these sets, is never re-advertised. The sets are edited in place (Append/Remove, never Replace: the
// policy keeps a pointer to the set object it was built with), so changing
// what leaves never touches a session.
func exportPolicy() *api.Policy {
	policy := &api.Policy{Name: exportPolicyName}
	for _, family := range []string{"-v4", "-v6"} {
		for _, st := range []struct {
			purpose string
			typ     api.Conditions_RouteType
		}{{setExportable, api.Conditions_ROUTE_TYPE_LOCAL}, {setReflectable, api.Conditions_ROUTE_TYPE_INTERNAL}} {
			policy.Statements = append(policy.Statements, &api.Statement{
				Name: st.purpose + family,
				Conditions: &api.Conditions{
					PrefixSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: st.purpose + family},
					RouteType: st.typ,
				},
				Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
			})
		}
		policy.Statements = append(policy.Statements, &api.Statement{
			Name: "petrel-to-ebgp" + family,
			Conditions: &api.Conditions{
				PrefixSet:   &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: setExportable + family},
				NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: ebgpPeersSet},
				RouteType:   api.Conditions_ROUTE_TYPE_INTERNAL,
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
		})
	}
	return policy
}

// noPeer keeps the eBGP neighbor set from ever being empty: GoBGP reads an
// empty neighbor set as "every peer".
var noPeer = []string{"0.0.0.0/32", "::/128"}

// listSet is a neighbor set edited in place, like rangeSet.
type listSet struct {
	name string
	have map[string]bool
}

// sync edits GoBGP's set so it holds exactly want (plus noPeer).
func (ls *listSet) sync(ctx context.Context, server *server.BgpServer, want map[string]bool) error {
	if ls.have == nil {
		ls.have = map[string]bool{}
	}
	add, remove := diffSet(ls.have, want)
	if len(add) > 0 {
		if err := server.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: ls.name, List: add}}); err != nil {
			return fmt.Errorf("bgp: %s add: %w", ls.name, err)
		}
	}
	if len(remove) > 0 {
		if err := server.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: ls.name, List: remove}}); err != nil {
			return fmt.Errorf("bgp: %s remove: %w", ls.name, err)
		}
	}
	ls.have = want
	return nil
}

func exportAssignment() *api.PolicyAssignment {
	return &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		Policies:      []*api.Policy{{Name: exportPolicyName}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}
}

// exportRange is one entry of the exportable set: a prefix and the mask
// lengths accepted inside it.
type exportRange struct {
	prefix         netip.Prefix
	minLen, maxLen int
}

// admits mirrors GoBGP's prefix-set match for one entry.
func (r exportRange) admits(p netip.Prefix) bool {
	return r.prefix.Contains(p.Addr()) && p.Bits() >= r.minLen && p.Bits() <= r.maxLen
}

// exactly exports only the prefix itself (an originated block).
func exactly(p netip.Prefix) exportRange {
	return exportRange{prefix: p.Masked(), minLen: p.Bits(), maxLen: p.Bits()}
}

// within exports the prefix and anything more specific inside it (a pool).
func within(p netip.Prefix) exportRange {
	return exportRange{prefix: p.Masked(), minLen: p.Bits(), maxLen: p.Addr().BitLen()}
}

// prefixSets groups ranges into one defined set per family; an empty input
// yields the two empty sets that exist from start-up.
func prefixSets(purpose string, ranges []exportRange) []*api.DefinedSet {
	v4 := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: purpose + "-v4"}
	v6 := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: purpose + "-v6"}
	for _, r := range ranges {
		set := v6
		if r.prefix.Addr().Is4() {
			set = v4
		}
		set.Prefixes = append(set.Prefixes, &api.Prefix{
			IpPrefix:      r.prefix.String(),
			MaskLengthMin: uint32(r.minLen),
			MaskLengthMax: uint32(r.maxLen),
		})
	}
	var out []*api.DefinedSet
	for _, set := range []*api.DefinedSet{v4, v6} {
		if len(ranges) == 0 || len(set.Prefixes) > 0 {
			out = append(out, set)
		}
	}
	return out
}

// rangeSet is one purpose's prefix sets as GoBGP holds them.
type rangeSet struct {
	purpose string
	have    map[exportRange]bool
}

// sync edits GoBGP's sets so they hold exactly want.
func (rs *rangeSet) sync(ctx context.Context, server *server.BgpServer, want map[exportRange]bool) error {
	add, remove := diffSet(rs.have, want)
	if len(add) > 0 {
		for _, set := range prefixSets(rs.purpose, add) {
			if err := server.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: set}); err != nil {
				return fmt.Errorf("bgp: %s set add: %w", rs.purpose, err)
			}
		}
	}
	if len(remove) > 0 {
		for _, set := range prefixSets(rs.purpose, remove) {
			if err := server.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: set, All: false}); err != nil {
				return fmt.Errorf("bgp: %s set remove: %w", rs.purpose, err)
			}
		}
	}
	rs.have = want
	return nil
}

// diffSet returns what must be added to and removed from have to get want.
func diffSet[K comparable](have, want map[K]bool) (add, remove []K) {
	for r := range want {
		if !have[r] {
			add = append(add, r)
		}
	}
	for r := range have {
		if !want[r] {
			remove = append(remove, r)
		}
	}
	return add, remove
}
