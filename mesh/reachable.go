package mesh

import (
	"fmt"
	"net/netip"

	"github.com/petrel-net/petrel/datastore"
)

// StaticRoute is a host route to a BGP peer through a gateway: BGPPeer
// spec.reachableBy, which Calico renders as a BIRD static route
// `<peerIP>/32 via <reachableBy>` so the session never follows a route
// learned over BGP itself (which would flap it).
type StaticRoute struct {
	Peer    netip.Prefix // the peer's /32 (/128)
	Gateway netip.Addr
	BGPPeer string // the BGPPeer that asked for it
}

// reachableBy records the static route of a BGPPeer that applies to this
// node with a peerIP (Calico renders reachableBy for those only). A bad
// gateway is a Problem for that field alone: the session is still made.
func (c *computation) reachableBy(bp *datastore.BGPPeer) {
	if bp.Spec.ReachableBy == "" || bp.Spec.PeerIP == "" {
		return
	}
	addr, _, _ := datastore.ParsePeerIP(bp.Spec.PeerIP) // validated
	gw, err := netip.ParseAddr(bp.Spec.ReachableBy)
	switch {
	case err != nil:
		c.problem(fmt.Errorf("BGPPeer %q: spec.reachableBy: %q is not an IP address; no static route to the peer", bp.Name, bp.Spec.ReachableBy))
	case gw.Is4() != addr.Is4():
		c.problem(fmt.Errorf("BGPPeer %q: spec.reachableBy: %s is not of the peer's address family (%s); no static route to the peer", bp.Name, gw, addr))
	default:
		c.static = append(c.static, StaticRoute{Peer: netip.PrefixFrom(addr, addr.BitLen()), Gateway: gw, BGPPeer: bp.Name})
	}
}
