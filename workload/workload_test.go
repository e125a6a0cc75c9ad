package workload

import (
	"net/netip"
	"slices"
	"testing"
)

func TestAddrsOfAndFamilies(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")
	mapped := netip.MustParseAddr("::ffff:10.0.0.2")
	for _, tc := range []struct {
		in               []netip.Addr
		want             Addrs
		ipv4, ipv6, dual bool // Has(IPv4Only), Has(IPv6 only), Has(DualStack)
	}{
		{[]netip.Addr{v6, v4}, Addrs{v4, v6}, true, true, true},
		{[]netip.Addr{v4, netip.MustParseAddr("10.0.0.9")}, Addrs{IPv4: v4}, true, false, false},
		{[]netip.Addr{mapped}, Addrs{IPv4: mapped.Unmap()}, true, false, false},
		{[]netip.Addr{v6}, Addrs{IPv6: v6}, false, true, false},
		{nil, Addrs{}, false, false, false},
	} {
		got := AddrsOf(tc.in)
		if got != tc.want {
			t.Errorf("AddrsOf(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.Has(IPv4Only) != tc.ipv4 || got.Has(Families{IPv6: true}) != tc.ipv6 || got.Has(DualStack) != tc.dual {
			t.Errorf("%+v: Has IPv4 %v IPv6 %v dual %v", got, got.Has(IPv4Only), got.Has(Families{IPv6: true}), got.Has(DualStack))
		}
		// The zero Families is Calico's default, IPv4 only.
		if got.Has(Families{}) != got.Has(IPv4Only) {
			t.Errorf("%+v: the zero Families is not IPv4 only", got)
		}
	}
	if l := (Addrs{v4, v6}).List(); !slices.Equal(l, []netip.Addr{v4, v6}) {
		t.Errorf("List = %v, want IPv4 first", l)
	}
}
