package dataplane

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/petrel-net/petrel/internal/nlretry"
)

// PeerRoutes keeps the host routes to BGP peers that BGPPeer
// spec.reachableBy asks for: `<peer>/32 via <gateway> proto 80`, what
// BIRD's static protocol writes in calico-node. Its routes are told apart
// from the dataplane's other protocol-80 routes by their shape: a host
// prefix with a gateway and not onlink (workload routes have no gateway,
// tunnel routes are onlink).
type PeerRoutes struct {
	h *netlink.Handle
	w tunnelWriter
}

// NewPeerRoutes works in the current network namespace.
func NewPeerRoutes() (*PeerRoutes, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	return &PeerRoutes{h: h, w: h}, nil
}

func (p *PeerRoutes) Close() { p.h.Close() }

// Sync makes the peer routes equal to want (peer prefix -> gateway),
// writing only the difference.
func (p *PeerRoutes) Sync(want map[netip.Prefix]netip.Addr) error {
	have, _ := nlretry.Dump(func() ([]netlink.Route, error) {
		return p.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	})
	return applyDiff(want, have,
		func(r netlink.Route) (netip.Prefix, bool) {
			pfx, ok := prefixOfRoute(r)
			return pfx, ok && pfx.IsSingleIP() && r.Gw != nil && r.Flags&int(netlink.FLAG_ONLINK) == 0 && r.Table == unix.RT_TABLE_MAIN
		},
		func(gw netip.Addr, r netlink.Route) bool { return addrOf(r.Gw) == gw },
		func(pfx netip.Prefix, gw netip.Addr) error {
			if err := p.w.RouteReplace(peerRoute(pfx, gw)); err != nil {
				return fmt.Errorf("route %s via %s (reachableBy): %w", pfx, gw, err)
			}
			return nil
		},
		p.w.RouteDel)
}

// peerRoute is the request for `<peer> via <gateway> proto 80` in the main
// table; the kernel picks the interface the gateway is on.
func peerRoute(peer netip.Prefix, gw netip.Addr) *netlink.Route {
	return &netlink.Route{Dst: ipNet(peer), Gw: gw.AsSlice(), Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
}
