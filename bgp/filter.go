package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Route policy in petrel's own terms: mesh/ builds it from BGPFilters,
// BGPPeer next-hop modes and BGPConfiguration prefixAdvertisements;
// filterpolicy.go renders it into GoBGP statements. It only ever narrows
// the leak-proof export rule (policy.go): a filter's Accept means "not
// rejected here", never "export what would otherwise stay home".

// MatchOp compares a route's prefix with a rule's CIDR (BGPFilter
// matchOperator).
type MatchOp string

const (
	MatchEqual    MatchOp = "Equal"
	MatchNotEqual MatchOp = "NotEqual"
	MatchIn       MatchOp = "In"
	MatchNotIn    MatchOp = "NotIn"
)

// FilterRule is one BGPFilter rule. Every criterion set must hold for the
// rule to match; the first matching rule of a peer's list decides.
type FilterRule struct {
	// Origin names the rule in its object (`BGPFilter "edge":
	// spec.exportV4[0]`), for explain; it changes nothing on the wire.
	Origin string
	// IPv6 says which family the rule is for (exportV6/importV6); a rule
	// never matches routes of the other family.
	IPv6 bool
	// Prefix and Op compare the route's prefix (invalid Prefix: any).
	// MinLen/MaxLen bound its length for In/NotIn (0: Prefix's own
	// length up to the family's longest).
	Prefix         netip.Prefix
	Op             MatchOp
	MinLen, MaxLen int
	// FromPeers matches only routes learned from BGP peers (source:
	// RemotePeers), not the ones this node originates.
	FromPeers bool
	// Community is a standard ("aa:nn") or large ("aa:nn:mm") community
	// the route must carry.
	Community string
	// ASPathPrefix is the start the route's AS path must have.
	ASPathPrefix []uint32
	// Never marks a rule with a criterion no route petrel handles can meet
	// (an outgoing interface, a kernel priority): it matches nothing.
	Never bool
	// Reject drops the route; otherwise it is accepted after
	// AddCommunities and PrependASPath are applied.
	Reject         bool
	AddCommunities []string
	PrependASPath  []uint32
}

// NextHopMode is BGPPeer nextHopMode: Auto leaves BGP's own rule (next
// hop self towards eBGP peers, unchanged over iBGP).
type NextHopMode string

const (
	NextHopAuto NextHopMode = ""
	NextHopSelf NextHopMode = "Self"
	NextHopKeep NextHopMode = "Keep"
)

// PeerPolicy is what one peer's filters and next-hop mode ask for.
type PeerPolicy struct {
	Export, Import []FilterRule
	NextHop        NextHopMode
}

func (p PeerPolicy) empty() bool {
	return len(p.Export) == 0 && len(p.Import) == 0 && p.NextHop == NextHopAuto
}

// PrefixCommunities adds communities to every exported route inside
// Prefix (BGPConfiguration prefixAdvertisements).
type PrefixCommunities struct {
	Prefix      netip.Prefix
	Communities []string // "aa:nn" standard, "aa:nn:mm" large
}

// RoutePolicy is the whole route policy of the speaker.
type RoutePolicy struct {
	Peers       map[netip.Addr]PeerPolicy
	Communities []PrefixCommunities
}

// Empty reports whether the policy changes nothing.
func (rp RoutePolicy) Empty() bool {
	for _, p := range rp.Peers {
		if !p.empty() {
			return false
		}
	}
	return len(rp.Communities) == 0
}

// Equal compares two policies, treating nil and empty alike.
func (rp RoutePolicy) Equal(o RoutePolicy) bool {
	if rp.Empty() && o.Empty() {
		return true
	}
	if len(rp.Communities) != len(o.Communities) || len(rp.Peers) != len(o.Peers) {
		return false
	}
	for i, c := range rp.Communities {
		if c.Prefix != o.Communities[i].Prefix || !slices.Equal(c.Communities, o.Communities[i].Communities) {
			return false
		}
	}
	for a, p := range rp.Peers {
		q, ok := o.Peers[a]
		if !ok || p.NextHop != q.NextHop || !slices.EqualFunc(p.Export, q.Export, FilterRule.equal) || !slices.EqualFunc(p.Import, q.Import, FilterRule.equal) {
			return false
		}
	}
	return true
}

func (r FilterRule) equal(o FilterRule) bool {
	return r.key() == o.key()
}

// key is a canonical text of the rule: peers whose rule lists have the
// same keys share GoBGP statements.
func (r FilterRule) key() string {
	return fmt.Sprintf("%v|%s|%s|%d-%d|%v|%s|%v|%v|%v|%v|%v|%s", r.IPv6, r.Prefix, r.Op, r.MinLen, r.MaxLen, r.FromPeers,
		r.Community, r.ASPathPrefix, r.Never, r.Reject, r.AddCommunities, r.PrependASPath, r.Origin)
}

// IsLargeCommunity tells "aa:nn:mm" from "aa:nn".
func IsLargeCommunity(c string) bool { return strings.Count(c, ":") == 2 }

// lengths is the prefix-length range an In/NotIn rule accepts.
func (r FilterRule) lengths() (minLen, maxLen int) {
	minLen, maxLen = r.Prefix.Bits(), r.Prefix.Addr().BitLen()
	if r.MinLen > 0 {
		minLen = r.MinLen
	}
	if r.MaxLen > 0 {
		maxLen = r.MaxLen
	}
	return minLen, maxLen
}
