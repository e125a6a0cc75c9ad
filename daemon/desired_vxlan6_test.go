package daemon

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/datastore"
)

// testNode6 is a node with an IPv6 address and IPv6 VXLAN tunnel address
// (no MAC published: the one Felix computes is used), and optionally an
// IPv4 address and tunnel address.
func testNode6(name, ip6, tunnel6, ip4, tunnel4 string) *datastore.Node {
	n := testNode(name, ip4, tunnel4)
	n.Spec.BGP.IPv6Address, n.Spec.IPv6VXLANTunnelAddr = ip6, tunnel6
	return n
}

// The IPv6 plan is vxlan-v6.calico's alone: IPv6 blocks of IPv6 VXLAN
// pools, via IPv6 tunnel addresses over IPv6 node addresses; CrossSubnet
// compares IPv6 subnets; the IPv4 plan never sees an IPv6 block, and an
// IPv6-only node is a remote of the IPv6 plan only.
func TestPlanVXLANIPv6(t *testing.T) {
	nodes := []*datastore.Node{
		testNode6("a", "fd00:a::1/64", "fd10::1", "172.16.0.1/24", "10.1.0.1"),    // us
		testNode6("b", "fd00:a::2/64", "fd10::41", "172.16.0.2/24", "10.1.0.65"),  // our subnets
		testNode6("c", "fd00:b::3/64", "fd10::81", "172.16.9.3/24", "10.1.0.129"), // other subnets
		testNode6("d", "fd00:b::4/64", "fd10::c1", "", ""),                        // IPv6 only, other subnet
		testNode6("e", "fd00:b::5/64", "", "", ""),                                // no IPv6 tunnel yet
	}
	affinities := []*datastore.BlockAffinity{
		testAffinity("a", "fd10::/122"), testAffinity("b", "fd10::40/122"), testAffinity("c", "fd10::80/122"),
		testAffinity("d", "fd10::c0/122"), testAffinity("e", "fd10::100/122"), testAffinity("c", "fd20::/122"),
		testAffinity("b", "10.1.0.64/26"), testAffinity("c", "10.1.0.128/26"),
	}
	me := self{Name: "a", Subnet: netip.MustParsePrefix("172.16.0.0/24"), Subnet6: netip.MustParsePrefix("fd00:a::/64")}
	for _, tc := range []struct {
		mode     string
		enabled  bool
		excluded []netip.Prefix
	}{
		{"CrossSubnet", true, pfx("fd10::80/122", "fd10::c0/122")},
		{"Always", true, pfx("fd10::40/122", "fd10::80/122", "fd10::c0/122")},
		{"Never", false, nil},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			pools := []*datastore.IPPool{
				testPool("v4", "10.1.0.0/16", "CrossSubnet", false, false),
				testPool("v6", "fd10::/112", tc.mode, false, false),
				testPool("plain6", "fd20::/112", "", false, false),
			}
			d := computeDesired(snapshot{Nodes: nodes, Pools: pools, Affinities: affinities}, me)
			v6 := d.VXLANV6
			if v6.Enabled != tc.enabled || !slices.Equal(v6.Excluded, tc.excluded) {
				t.Errorf("IPv6 plan enabled %v excluding %v, want %v and %v", v6.Enabled, v6.Excluded, tc.enabled, tc.excluded)
			}
			if !slices.Equal(d.VXLAN.Excluded, pfx("10.1.0.128/26")) || len(d.VXLAN.Remotes) != 2 {
				t.Errorf("IPv4 plan %+v, want c's IPv4 block only and remotes b and c", d.VXLAN)
			}
			if !tc.enabled {
				return
			}
			if !slices.Equal(v6.Pools, pfx("fd10::/112")) {
				t.Errorf("tunnel address pools %v, want the IPv6 VXLAN pool", v6.Pools)
			}
			var names []string
			for _, r := range v6.Remotes {
				names = append(names, r.Node)
				if !r.Underlay.Is6() || !r.TunnelAddr.Is6() {
					t.Errorf("remote %s: underlay %s tunnel %s, want IPv6", r.Node, r.Underlay, r.TunnelAddr)
				}
				if !slices.Equal(r.MAC, dataplane.VTEPMACV6(r.Node)) {
					t.Errorf("remote %s MAC %s, want Felix's %s", r.Node, r.MAC, dataplane.VTEPMACV6(r.Node))
				}
			}
			if !slices.Equal(names, []string{"b", "c", "d"}) {
				t.Errorf("IPv6 remotes %v, want b, c, d (e has no tunnel address)", names)
			}
		})
	}
}

// An IPv6-only node (no IPv4 address, no IPv4 subnet) with only an IPv6
// VXLAN pool needs vxlan-v6.calico and not vxlan.calico.
func TestPlanVXLANIPv6Only(t *testing.T) {
	me := testNode6("a", "fd00:a::1/64", "fd10::1", "", "")
	c := testNode6("c", "fd00:b::3/64", "fd10::81", "", "")
	d := computeDesired(snapshot{
		Nodes:      []*datastore.Node{me, c},
		Pools:      []*datastore.IPPool{testPool("v6", "fd10::/112", "CrossSubnet", false, false)},
		Affinities: []*datastore.BlockAffinity{testAffinity("c", "fd10::80/122")},
	}, self{Name: "a", Subnet6: netip.MustParsePrefix("fd00:a::/64")})
	if d.VXLAN.Enabled {
		t.Error("vxlan.calico wanted without an IPv4 VXLAN pool")
	}
	if !d.VXLANV6.Enabled || !slices.Equal(d.VXLANV6.Excluded, pfx("fd10::80/122")) {
		t.Errorf("IPv6 plan %+v, want c's block through vxlan-v6.calico", d.VXLANV6)
	}
}

// An IPv6-only node and an IPv4 VXLAN pool: no vxlan.calico (it has no
// underlay), and one problem in status instead of a setup that fails on
// every pass.
func TestPlanVXLANWithoutUnderlay(t *testing.T) {
	d := computeDesired(snapshot{
		Nodes: []*datastore.Node{testNode6("a", "fd00:a::1/64", "", "", "")},
		Pools: []*datastore.IPPool{testPool("v4", "10.6.0.0/16", "Always", false, false)},
	}, self{Name: "a", Subnet6: netip.MustParsePrefix("fd00:a::/64")})
	if d.VXLAN.Enabled {
		t.Error("vxlan.calico wanted on a node without an IPv4 address")
	}
	if len(d.Problems) != 1 || !strings.Contains(d.Problems[0], "VXLAN for IPv4 pools: this node has no IPv4 address") {
		t.Errorf("problems %q, want the IPv4 VXLAN pools named", d.Problems)
	}
}
