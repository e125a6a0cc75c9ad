package mesh

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/datastore"
)

// This file turns BGPFilters, BGPPeer next-hop modes and BGPConfiguration
// prefixAdvertisements into bgp.RoutePolicy, as confd renders them for
// BIRD, with one difference the issue asks for: an export Accept never
// widens petrel's leak-proof export rule.

func (c *computation) loadFilters() {
	c.filters = map[string]*datastore.BGPFilter{}
	for _, f := range c.in.Filters {
		if f == nil {
			continue
		}
		if err := f.Validate(); err != nil {
			c.problem(fmt.Errorf("%w; peers that use it are skipped", err))
			c.badFilters = append(c.badFilters, f.Name)
			continue
		}
		c.filters[f.Name] = f
	}
}

// peerPolicy is what bp's filters and next-hop mode ask of the session p.
func (c *computation) peerPolicy(bp *datastore.BGPPeer, p bgp.PeerConfig) (bgp.PeerPolicy, error) {
	var pol bgp.PeerPolicy
	if bp == nil {
		return pol, nil
	}
	localASN := c.self.asn
	if p.LocalASN != 0 {
		localASN = p.LocalASN
	}
	ibgp := p.ASN == localASN
	switch {
	case bp.Spec.NextHopMode == "Self":
		pol.NextHop = bgp.NextHopSelf
	case bp.Spec.NextHopMode == "Keep", bp.Spec.NextHopMode == "" && bp.Spec.KeepOriginalNextHop && !ibgp:
		pol.NextHop = bgp.NextHopKeep
	}
	v6 := p.Address.Is6()
	for _, name := range bp.Spec.Filters {
		f := c.filters[name]
		if f == nil {
			why := "not found"
			if slices.Contains(c.badFilters, name) {
				why = "invalid"
			}
			return pol, fmt.Errorf("BGPPeer %q: spec.filters: BGPFilter %q is %s; peer %s skipped (it would be unfiltered)", bp.Name, name, why, p.Address)
		}
		exports, imports, exportField, importField := f.Spec.ExportV4, f.Spec.ImportV4, "spec.exportV4", "spec.importV4"
		if v6 {
			exports, imports, exportField, importField = f.Spec.ExportV6, f.Spec.ImportV6, "spec.exportV6", "spec.importV6"
		}
		pol.Export = append(pol.Export, c.filterRules(f, exportField, exports, v6, ibgp)...)
		pol.Import = append(pol.Import, c.filterRules(f, importField, imports, v6, ibgp)...)
	}
	return pol, nil
}

// filterRules translates one rule list for a peer of the given family and
// type; rules for the other peer type are left out.
func (c *computation) filterRules(f *datastore.BGPFilter, field string, rules []datastore.BGPFilterRule, v6, ibgp bool) []bgp.FilterRule {
	var out []bgp.FilterRule
	for i, r := range rules {
		if (r.PeerType == "iBGP" && !ibgp) || (r.PeerType == "eBGP" && ibgp) {
			continue
		}
		at := fmt.Sprintf("BGPFilter %q: %s[%d]", f.Name, field, i)
		fr := bgp.FilterRule{Origin: at, IPv6: v6, Op: bgp.MatchOp(r.MatchOperator), FromPeers: r.Source == "RemotePeers",
			ASPathPrefix: r.ASPathPrefix, Reject: r.Action == "Reject"}
		if r.CIDR != "" {
			fr.Prefix, _ = netip.ParsePrefix(r.CIDR) // validated
		}
		if pl := r.PrefixLength; pl != nil {
			if pl.Min != nil {
				fr.MinLen = int(*pl.Min)
			}
			if pl.Max != nil {
				fr.MaxLen = int(*pl.Max)
			}
		}
		if r.Communities != nil {
			fr.Community = r.Communities.Values[0] // validated: exactly one
		}
		// petrel originates prefixes, not interface routes, and keeps no
		// kernel priority on BGP routes: such criteria match nothing.
		if r.Interface != "" || r.Priority != nil {
			fr.Never = true
			c.noteOnce(fmt.Errorf("%s: interface and priority criteria match no route petrel exports or imports; the rule matches nothing", at))
		}
		for j, op := range r.Operations {
			switch {
			case op.AddCommunity != nil:
				fr.AddCommunities = append(fr.AddCommunities, op.AddCommunity.Value)
			case op.PrependASPath != nil:
				fr.PrependASPath = append(fr.PrependASPath, op.PrependASPath.Prefix...)
			case op.SetPriority != nil:
				c.noteOnce(fmt.Errorf("%s.operations[%d].setPriority: petrel does not set kernel route priorities; ignored", at, j))
			}
		}
		out = append(out, fr)
	}
	return out
}

// noteOnce records a problem once, however many peers use the filter.
func (c *computation) noteOnce(err error) {
	for _, p := range c.problems {
		if p.Error() == err.Error() {
			return
		}
	}
	c.problem(err)
}

// prefixCommunities resolves prefixAdvertisements: a node's own
// BGPConfiguration overrides the default's entry for the same CIDR;
// names resolve through the communities of the object that uses them,
// then the default's.
func (c *computation) prefixCommunities() []bgp.PrefixCommunities {
	byCIDR := map[netip.Prefix]bgp.PrefixCommunities{}
	for _, cfg := range []*datastore.BGPConfiguration{c.defCfg, c.nodeCfgs[c.in.NodeName]} {
		if cfg == nil {
			continue
		}
		for i, ad := range cfg.Spec.PrefixAdvertisements {
			at := fmt.Sprintf("BGPConfiguration %q: spec.prefixAdvertisements[%d]", cfg.Name, i)
			prefix, err := netip.ParsePrefix(ad.CIDR)
			if err != nil {
				c.problem(fmt.Errorf("%s.cidr: %q is not a CIDR; ignored", at, ad.CIDR))
				continue
			}
			entry := bgp.PrefixCommunities{Prefix: prefix.Masked()}
			for j, name := range ad.Communities {
				value, err := c.communityValue(cfg, name)
				if err != nil {
					c.problem(fmt.Errorf("%s.communities[%d]: %w; ignored", at, j, err))
					continue
				}
				entry.Communities = append(entry.Communities, value)
			}
			byCIDR[entry.Prefix] = entry
		}
	}
	out := make([]bgp.PrefixCommunities, 0, len(byCIDR))
	for _, e := range byCIDR {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b bgp.PrefixCommunities) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out
}

func (c *computation) communityValue(cfg *datastore.BGPConfiguration, name string) (string, error) {
	if datastore.ValidCommunity(name) == nil {
		return name, nil
	}
	for _, from := range []*datastore.BGPConfiguration{cfg, c.defCfg} {
		if from == nil {
			continue
		}
		for _, cm := range from.Spec.Communities {
			if cm.Name == name {
				if err := datastore.ValidCommunity(cm.Value); err != nil {
					return "", fmt.Errorf("community %q has value %q that %w", name, cm.Value, err)
				}
				return cm.Value, nil
			}
		}
	}
	return "", fmt.Errorf("%q is neither a community value nor the name of one in spec.communities", name)
}
