//go:build linux

package dataplane

import (
	"net/netip"
	"slices"
	"sort"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// reachableBy's host routes against a real kernel: written via the
// gateway on eth0's subnet, moved when the gateway changes, put back when
// deleted behind petrel's back, removed when no BGPPeer asks; the
// dataplane's other protocol-80 routes (a workload /32, a tunnel route)
// are never touched.
func TestPeerRoutesSync(t *testing.T) {
	_, p, h := openInUnderlayNS(t, "pdpr", NewPeerRoutes)
	peer0, _ := h.LinkByName("peer0")
	others := []*netlink.Route{
		{LinkIndex: peer0.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("192.168.0.5/32")), Scope: netlink.SCOPE_LINK, Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN},
		onlinkRoute(peer0.Attrs().Index, netip.MustParsePrefix("192.168.1.0/26"), netip.MustParseAddr("172.16.0.2")),
	}
	for _, r := range others {
		if err := h.RouteAdd(r); err != nil {
			t.Fatal(err)
		}
	}
	sync := func(routes map[string]string, want ...string) {
		t.Helper()
		m := map[netip.Prefix]netip.Addr{}
		for pfx, gw := range routes {
			m[netip.MustParsePrefix(pfx)] = netip.MustParseAddr(gw)
		}
		if err := p.Sync(m); err != nil {
			t.Fatal(err)
		}
		rs, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			s := r.Dst.String()
			if r.Gw != nil {
				s += " via " + r.Gw.String()
			}
			got = append(got, s)
		}
		sort.Strings(got)
		want = append(want, "192.168.0.5/32", "192.168.1.0/26 via 172.16.0.2")
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("protocol 80 routes %v\nwant %v", got, want)
		}
	}
	sync(map[string]string{"10.99.0.1/32": "10.0.0.254"}, "10.99.0.1/32 via 10.0.0.254")
	sync(map[string]string{"10.99.0.1/32": "10.0.0.253", "10.99.0.2/32": "10.0.0.254"}, "10.99.0.1/32 via 10.0.0.253", "10.99.0.2/32 via 10.0.0.254")
	if err := h.RouteDel(peerRoute(netip.MustParsePrefix("10.99.0.2/32"), netip.MustParseAddr("10.0.0.254"))); err != nil {
		t.Fatal(err)
	}
	sync(map[string]string{"10.99.0.1/32": "10.0.0.253", "10.99.0.2/32": "10.0.0.254"}, "10.99.0.1/32 via 10.0.0.253", "10.99.0.2/32 via 10.0.0.254")
	sync(nil)
}
