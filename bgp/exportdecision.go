package bgp

import (
	"fmt"
	"net/netip"
	"slices"
)

// This file answers "is this route sent to that peer, and which rule
// decided?" without asking GoBGP: it replays, in Go, the statements
// policy.go and filterpolicy.go install, in the order GoBGP runs them.
// explain and dry-run use it; the tests hold it to GoBGP's behaviour.

// ExportInput is what decides whether one route goes to one peer.
type ExportInput struct {
	Prefix netip.Prefix
	// Best is the path that would be sent (Paths[0] of the route).
	Best Path
	// FromIBGP: Best was learned over iBGP; FromRRClient: from a route
	// reflector client of ours.
	FromIBGP, FromRRClient bool
	// Peer is the session the route would go to; LocalASN the speaker's.
	Peer     PeerConfig
	LocalASN uint32
	// Exportable and Reflectable are the leak-proof rule's prefix sets
	// (Speaker.exportRanges).
	Exportable, Reflectable []netip.Prefix
	// Originated are the node's exact prefixes (exported exactly).
	Originated []netip.Prefix
	// Rules are the peer's BGPFilter export rules, in order.
	Rules []FilterRule
}

// ExportDecision says whether the route is sent and names the rule.
type ExportDecision struct {
	Exported bool
	// Rule names what decided: a BGPFilter rule, a leak-proof statement,
	// or why BGP itself never sends it.
	Rule string
	// ByFilter: a BGPFilter rule rejected the route.
	ByFilter bool
}

// Rules of the leak-proof export policy and of BGP itself, as explain
// names them.
const (
	RuleOriginated    = "leak-proof: originated by this node (exportable set)"
	RuleLocalInPool   = "leak-proof: local route inside an export range (IPPool)"
	RuleGateway       = "leak-proof: pool route learned over iBGP, passed on to an eBGP peer (gateway)"
	RuleReflected     = "leak-proof: route reflector passes pool routes on"
	RuleFromEBGP      = "leak-proof: learned over eBGP, never re-advertised"
	RuleOutsidePools  = "leak-proof: outside every export range (no IPPool allows it)"
	RuleIBGPToIBGP    = "not exportable: learned over iBGP, and BGP does not pass iBGP routes to iBGP peers (no route reflection)"
	RuleSplitHorizon  = "not exportable: learned from this peer"
	RuleNotReflecting = "leak-proof: learned over iBGP; this node reflects no routes"
)

// DecideExport runs a route through a peer's filter rules and then the
// leak-proof rule, as GoBGP does.
func DecideExport(in ExportInput) ExportDecision {
	peerIBGP := in.Peer.ASN == localASNOf(in.Peer, in.LocalASN)
	if !in.Best.Local && in.Best.Peer == in.Peer.Address {
		return ExportDecision{Rule: RuleSplitHorizon}
	}
	if in.FromIBGP && peerIBGP && !in.FromRRClient && !in.Peer.RouteReflectorClient {
		return ExportDecision{Rule: RuleIBGPToIBGP}
	}
	asPath := in.Best.ASPath
	if !peerIBGP {
		// GoBGP prepends our AS before export policy runs.
		asPath = append([]uint32{localASNOf(in.Peer, in.LocalASN)}, asPath...)
	}
	for _, r := range in.Rules {
		if !r.Matches(in.Prefix, in.Best, asPath) {
			continue
		}
		if r.Reject {
			return ExportDecision{Rule: r.Origin + " (Reject)", ByFilter: true}
		}
		break // Accept: the leak-proof rule still decides
	}
	return leakProof(in, peerIBGP)
}

// leakProof is exportPolicy's statements in their order.
func leakProof(in ExportInput, peerIBGP bool) ExportDecision {
	exportable := func() bool {
		return slices.Contains(in.Originated, in.Prefix) || inRanges(in.Exportable, in.Prefix)
	}
	switch {
	case in.Best.Local && slices.Contains(in.Originated, in.Prefix):
		return ExportDecision{Exported: true, Rule: RuleOriginated}
	case in.Best.Local && exportable():
		return ExportDecision{Exported: true, Rule: RuleLocalInPool}
	case in.Best.Local:
		return ExportDecision{Rule: RuleOutsidePools}
	case !in.FromIBGP:
		return ExportDecision{Rule: RuleFromEBGP}
	case inRanges(in.Reflectable, in.Prefix):
		return ExportDecision{Exported: true, Rule: RuleReflected}
	case !peerIBGP && exportable():
		return ExportDecision{Exported: true, Rule: RuleGateway}
	case !exportable():
		return ExportDecision{Rule: RuleOutsidePools}
	}
	return ExportDecision{Rule: RuleNotReflecting}
}

func localASNOf(p PeerConfig, speakerASN uint32) uint32 {
	if p.LocalASN != 0 {
		return p.LocalASN
	}
	return speakerASN
}

// inRanges reports whether p lies in one of ranges (pools: the range and
// anything more specific).
func inRanges(ranges []netip.Prefix, p netip.Prefix) bool {
	return slices.ContainsFunc(ranges, func(r netip.Prefix) bool { return within(r).admits(p) })
}

// Matches reports whether every criterion of the rule holds for a route
// to prefix with path (asPath as the policy sees it), as the statements
// ruleStatements renders match.
func (r FilterRule) Matches(prefix netip.Prefix, path Path, asPath []uint32) bool {
	if r.Never || r.IPv6 != prefix.Addr().Is6() {
		return false
	}
	if r.Prefix.IsValid() && !r.prefixMatches(prefix) {
		return false
	}
	if r.FromPeers && path.Local {
		return false
	}
	if r.Community != "" && !slices.Contains(path.Communities, r.Community) {
		return false
	}
	if len(r.ASPathPrefix) > 0 && (len(asPath) < len(r.ASPathPrefix) || !slices.Equal(asPath[:len(r.ASPathPrefix)], r.ASPathPrefix)) {
		return false
	}
	return true
}

func (r FilterRule) prefixMatches(p netip.Prefix) bool {
	set := exactly(r.Prefix)
	if r.Op == MatchIn || r.Op == MatchNotIn {
		set.minLen, set.maxLen = r.lengths()
	}
	in := set.admits(p)
	if r.Op == MatchNotEqual || r.Op == MatchNotIn {
		return !in
	}
	return in
}

// String is the rule in one line, for explain.
func (d ExportDecision) String() string {
	if d.Exported {
		return fmt.Sprintf("exported (%s)", d.Rule)
	}
	return fmt.Sprintf("not exported (%s)", d.Rule)
}
