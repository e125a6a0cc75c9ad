package dataplane

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// The requests IPIP makes, as BIRD's kernel protocol makes them for a
// route with krt_tunnel = "tunl0": the remote block via the remote node's
// own address, out of tunl0, onlink (the node is not a neighbour on any
// subnet of tunl0), in the main table, with the dataplane's protocol.
func TestIPIPRequests(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block string
		node  string
		want  string // `ip route` form
	}{
		{"a remote /26", "192.168.1.64/26", "10.0.0.2", "192.168.1.64/26 via 10.0.0.2 dev #7 onlink proto 80 table 254"},
		{"a node in another subnet", "192.168.2.0/26", "172.16.5.9", "192.168.2.0/26 via 172.16.5.9 dev #7 onlink proto 80 table 254"},
		{"a borrowed /32", "192.168.3.7/32", "10.0.0.3", "192.168.3.7/32 via 10.0.0.3 dev #7 onlink proto 80 table 254"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := onlinkRoute(7, netip.MustParsePrefix(tc.block), netip.MustParseAddr(tc.node))
			if got := routeString(r); got != tc.want {
				t.Errorf("route %q, want %q", got, tc.want)
			}
		})
	}

	a := hostAddr(netip.MustParseAddr("192.168.0.1"))
	if got := a.IPNet.String(); got != "192.168.0.1/32" {
		t.Errorf("tunl0 address %s, want the tunnel address as a /32", got)
	}
	l := ipipLink(1480)
	if l.Name != IPIPDevice || l.MTU != 1480 || l.Type() != "ipip" || l.Remote != nil || l.Local != nil {
		t.Errorf("tunl0 request %+v: want an ipip device named tunl0 with MTU 1480 and no fixed endpoints", l)
	}
}

func routeString(r *netlink.Route) string {
	s := fmt.Sprintf("%s via %s dev #%d", r.Dst, r.Gw, r.LinkIndex)
	if r.Flags&int(netlink.FLAG_ONLINK) != 0 {
		s += " onlink"
	}
	return s + fmt.Sprintf(" proto %d table %d", r.Protocol, r.Table)
}
