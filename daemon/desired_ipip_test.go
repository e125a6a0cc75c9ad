package daemon

import (
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/petrel-net/petrel/datastore"
)

func testIPIPPool(name, cidr, mode string) *datastore.IPPool {
	p := testPool(name, cidr, "", false, false)
	p.Spec.IPIPMode = mode
	return p
}

// Which remote blocks tunl0 carries, as calico_kernel_programming gives
// them krt_tunnel = "tunl0": every block of an Always pool, via the
// owner's address; in a CrossSubnet pool only the blocks of nodes outside
// our subnet (the others are plain BGP routes, kernel sync's); never our
// own, a pending one, or a non-IPIP pool's. The tunnel address comes from
// the enabled IPIP pools that select this node.
func TestPlanIPIP(t *testing.T) {
	me := testNode("a", "172.16.0.1/24", "")
	me.Labels = map[string]string{"zone": "east"}
	pending := testAffinity("c", "10.7.0.64/26")
	pending.Spec.State = "pending"
	westOnly := testIPIPPool("west", "10.8.0.0/16", "Always")
	westOnly.Spec.NodeSelector = "zone == 'west'"
	retired := testIPIPPool("retired", "10.9.0.0/16", "Always")
	retired.Spec.Disabled = true
	snap := snapshot{
		Nodes: []*datastore.Node{
			me,
			testNode("b", "172.16.0.2/24", ""), // our subnet
			testNode("c", "172.16.9.3/24", ""), // another subnet
		},
		Pools: []*datastore.IPPool{
			testIPIPPool("always", "10.5.0.0/16", "Always"),
			testIPIPPool("cross", "10.7.0.0/16", "CrossSubnet"),
			testIPIPPool("never", "10.4.0.0/16", "Never"),
			westOnly, retired,
		},
		Affinities: []*datastore.BlockAffinity{
			testAffinity("a", "10.5.0.0/26"), // ours
			testAffinity("b", "10.5.0.64/26"), testAffinity("c", "10.5.0.128/26"),
			testAffinity("b", "10.7.0.0/26"), pending, testAffinity("c", "10.7.0.128/26"),
			testAffinity("b", "10.4.0.0/26"),
			testAffinity("c", "10.9.0.0/26"), // a disabled pool's blocks stay routed
		},
	}
	plan := planIPIP(snap, self{Name: "a", Subnet: netip.MustParsePrefix("172.16.0.0/24")})

	want := map[netip.Prefix]netip.Addr{
		netip.MustParsePrefix("10.5.0.64/26"):  netip.MustParseAddr("172.16.0.2"), // Always, same subnet: tunl0
		netip.MustParsePrefix("10.5.0.128/26"): netip.MustParseAddr("172.16.9.3"),
		netip.MustParsePrefix("10.7.0.128/26"): netip.MustParseAddr("172.16.9.3"), // CrossSubnet, other subnet: tunl0
		netip.MustParsePrefix("10.9.0.0/26"):   netip.MustParseAddr("172.16.9.3"),
	}
	if !maps.Equal(plan.Routes, want) {
		t.Errorf("tunl0 routes %v\nwant %v (10.7.0.0/26, CrossSubnet in our subnet, is a plain BGP route)", plan.Routes, want)
	}
	if got, keys := slices.SortedFunc(slices.Values(plan.Excluded), netip.Prefix.Compare), slices.SortedFunc(maps.Keys(want), netip.Prefix.Compare); !slices.Equal(got, keys) {
		t.Errorf("handed over from kernel sync %v, want exactly the tunl0 routes' blocks", got)
	}
	if !slices.Equal(plan.Pools, pfx("10.5.0.0/16", "10.7.0.0/16")) {
		t.Errorf("tunnel address pools %v, want the enabled IPIP pools selecting the node", plan.Pools)
	}
	if want := []string{"always (Always)", "cross (CrossSubnet)", "west (Always)", "retired (Always)"}; !slices.Equal(plan.Names, want) {
		t.Errorf("IPIP pools named %v, want %v", plan.Names, want)
	}

	if p := planIPIP(snapshot{Nodes: snap.Nodes, Pools: []*datastore.IPPool{testPool("vx", "10.1.0.0/16", "Always", false, false)}, Affinities: snap.Affinities},
		self{Name: "a"}); len(p.Routes)+len(p.Pools)+len(p.Names) != 0 {
		t.Errorf("without IPIP pools: %+v, want nothing", p)
	}
}
