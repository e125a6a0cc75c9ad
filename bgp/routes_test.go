package bgp

import (
	"net/netip"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppacket "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// TestLLGRStalePathsAreMarked: a path carrying LLGR_STALE (RFC 9494), as
// GoBGP tags a long-lived graceful restart's routes, is reported so.
func TestLLGRStalePathsAreMarked(t *testing.T) {
	nlri, _ := bgppacket.NewIPAddrPrefix(netip.MustParsePrefix("10.94.0.0/24"))
	nh, _ := bgppacket.NewPathAttributeNextHop(netip.MustParseAddr("10.0.41.2"))
	path := func(communities ...uint32) *apiutil.Path {
		attrs := []bgppacket.PathAttributeInterface{nh}
		if communities != nil {
			attrs = append(attrs, bgppacket.NewPathAttributeCommunities(communities))
		}
		return &apiutil.Path{Nlri: nlri, Attrs: attrs, PeerAddress: netip.MustParseAddr("10.0.41.2"), Stale: true}
	}
	for _, tt := range []struct {
		name string
		ap   *apiutil.Path
		want bool
	}{
		{"no communities", path(), false},
		{"other communities", path(65001<<16|1, uint32(bgppacket.COMMUNITY_NO_EXPORT)), false},
		{"LLGR_STALE among others", path(65001<<16|1, uint32(bgppacket.COMMUNITY_LLGR_STALE)), true},
	} {
		p := fromNativePath(tt.ap)
		if p.LLGRStale != tt.want || !p.Stale || p.NextHop.String() != "10.0.41.2" {
			t.Errorf("%s: %+v, want LLGRStale %v", tt.name, p, tt.want)
		}
	}
}
