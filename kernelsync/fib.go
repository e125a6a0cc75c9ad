package kernelsync

import (
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// nexthop is one gateway of a FIB route. A blackhole route is the route
// whose only next hop is the zero nexthop: one representation for both
// kinds keeps comparing, writing and repairing them the same code.
type nexthop struct {
	gw      netip.Addr
	ifindex int
}

// blackhole is the next-hop set of a blackhole route.
var blackhole = []nexthop{{}}

func isBlackhole(nhs []nexthop) bool { return len(nhs) == 1 && nhs[0] == nexthop{} }

func compareNexthop(a, b nexthop) int {
	if c := a.gw.Compare(b.gw); c != 0 {
		return c
	}
	return a.ifindex - b.ifindex
}

// fibEqual compares two sorted next-hop sets.
func fibEqual(a, b []nexthop) bool { return slices.Equal(a, b) }

// nexthopsOf reads the gateways of a kernel route, sorted; nil for a route
// without gateways (blackhole, device route).
func nexthopsOf(r *netlink.Route) []nexthop {
	if r.Type == unix.RTN_BLACKHOLE {
		return blackhole
	}
	var out []nexthop
	if len(r.MultiPath) > 0 {
		for _, mp := range r.MultiPath {
			if gw, ok := netip.AddrFromSlice(mp.Gw); ok {
				out = append(out, nexthop{gw: gw.Unmap(), ifindex: mp.LinkIndex})
			}
		}
	} else if gw, ok := netip.AddrFromSlice(r.Gw); ok {
		out = append(out, nexthop{gw: gw.Unmap(), ifindex: r.LinkIndex})
	}
	slices.SortFunc(out, compareNexthop)
	return out
}

// prefixOf returns the destination of a kernel route (the default route
// has a nil Dst).
func prefixOf(r *netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		switch r.Family {
		case unix.AF_INET:
			return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
		case unix.AF_INET6:
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0), true
		}
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(r.Dst.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := r.Dst.Mask.Size()
	return netip.PrefixFrom(addr.Unmap(), ones).Masked(), true
}

func family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}
