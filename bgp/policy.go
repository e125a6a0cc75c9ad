package bgp

import (
	"net/netip"

	api "github.com/osrg/gobgp/v3/api"
)

// Names of the GoBGP objects that make up petrel's export policy. GoBGP's
// prefix sets hold one address family each, hence one set per family.
const (
	exportSetV4      = "petrel-exportable-v4"
	exportSetV6      = "petrel-exportable-v6"
	exportPolicyName = "calico_export_to_bgp_peers"
)

func exportSetFor(p netip.Prefix) string {
	if p.Addr().Is4() {
		return exportSetV4
	}
	return exportSetV6
}

// exportPolicy is the one export rule petrel installs, assigned globally
// (GoBGP's per-peer assignments only work for route-server clients):
//
//	if the route was put into the RIB by this node (route type LOCAL)
//	and its prefix is in the exportable set  -> accept
//	anything else                            -> reject (default action)
//
// A route learned from any peer is therefore never re-advertised, whatever
// its prefix. The exportable sets are edited in place (Append/Remove, never
// Replace: the policy keeps a pointer to the set object it was built with),
// so changing what leaves never touches a session.
func exportPolicy() *api.Policy {
	policy := &api.Policy{Name: exportPolicyName}
	for _, set := range []string{exportSetV4, exportSetV6} {
		policy.Statements = append(policy.Statements, &api.Statement{
			Name: set + "-local",
			Conditions: &api.Conditions{
				PrefixSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: set},
				RouteType: api.Conditions_ROUTE_TYPE_LOCAL,
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		})
	}
	return policy
}

func exportAssignment() *api.PolicyAssignment {
	return &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_EXPORT,
		Policies:      []*api.Policy{{Name: exportPolicyName}},
		DefaultAction: api.RouteAction_REJECT,
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
func prefixSets(ranges []exportRange) []*api.DefinedSet {
	sets := map[string]*api.DefinedSet{}
	for _, name := range []string{exportSetV4, exportSetV6} {
		sets[name] = &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name}
	}
	for _, r := range ranges {
		set := sets[exportSetFor(r.prefix)]
		set.Prefixes = append(set.Prefixes, &api.Prefix{
			IpPrefix:      r.prefix.String(),
			MaskLengthMin: uint32(r.minLen),
			MaskLengthMax: uint32(r.maxLen),
		})
	}
	var out []*api.DefinedSet
	for _, name := range []string{exportSetV4, exportSetV6} {
		if len(ranges) == 0 || len(sets[name].Prefixes) > 0 {
			out = append(out, sets[name])
		}
	}
	return out
}

// diffRanges returns what must be added to and removed from have to get want.
func diffRanges(have, want map[exportRange]bool) (add, remove []exportRange) {
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
