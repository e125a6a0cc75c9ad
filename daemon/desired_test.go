package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/petrel-net/petrel/datastore"
)

func testNode(name, ip, tunnel string) *datastore.Node {
	o, _ := datastore.New(datastore.KindNode)
	n := o.(*datastore.Node)
	n.Name = name
	n.Spec.BGP = &datastore.NodeBGPSpec{IPv4Address: ip}
	if tunnel != "" {
		n.Spec.IPv4VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddr = tunnel, "66:00:00:00:00:01"
	}
	return n
}

func testPool(name, cidr, vxlan string, disabled, noExport bool) *datastore.IPPool {
	o, _ := datastore.New(datastore.KindIPPool)
	p := o.(*datastore.IPPool)
	p.Name = name
	p.Spec = datastore.IPPoolSpec{CIDR: cidr, VXLANMode: vxlan, Disabled: disabled, DisableBGPExport: noExport, BlockSize: 26}
	return p
}

func testAffinity(node, cidr string) *datastore.BlockAffinity {
	o, _ := datastore.New(datastore.KindBlockAffinity)
	a := o.(*datastore.BlockAffinity)
	a.Name = node + "-" + cidr
	a.Spec = datastore.BlockAffinitySpec{State: "confirmed", Node: node, CIDR: cidr, Deleted: "false"}
	return a
}

// computeDesired turns one snapshot into every concern's part: the node's
// blocks originated and blackholed, only exportable pools as export
// ranges, the reflector flag, and VXLAN for the remote outside our subnet
// only (CrossSubnet).
func TestComputeDesired(t *testing.T) {
	me := testNode("a", "172.16.0.1/24", "10.1.0.1")
	me.Spec.BGP.RouteReflectorClusterID = "1.0.0.1"
	snap := snapshot{
		Nodes: []*datastore.Node{
			me,
			testNode("b", "172.16.0.2/24", "10.1.0.2"), // our subnet: BGP routes it
			testNode("c", "172.16.9.3/24", "10.1.0.3"), // another subnet: VXLAN
		},
		Pools: []*datastore.IPPool{
			testPool("cross", "10.1.0.0/16", "CrossSubnet", false, false),
			testPool("off", "10.2.0.0/16", "", true, false),
			testPool("private", "10.3.0.0/16", "", false, true),
		},
		Affinities: []*datastore.BlockAffinity{
			testAffinity("a", "10.1.0.0/26"), testAffinity("b", "10.1.0.64/26"), testAffinity("c", "10.1.0.128/26"),
		},
		LeftOut: []string{"IPPool broken: spec.cidr: not a CIDR; pool ignored"},
	}
	d := computeDesired(snap, self{Name: "a", Subnet: netip.MustParsePrefix("172.16.0.0/24")})

	if want := pfx("10.1.0.0/26"); !slices.Equal(d.Originated, want) || !slices.Equal(d.Blackholes, want) {
		t.Errorf("originated %v, blackholes %v, want %v for both", d.Originated, d.Blackholes, want)
	}
	if want := pfx("10.1.0.0/16", "10.2.0.0/16"); !slices.Equal(d.ExportRanges, want) {
		t.Errorf("export ranges %v, want %v (the disabled pool too, not the one without BGP export)", d.ExportRanges, want)
	}
	if !d.Reflector {
		t.Error("a node with a routeReflectorClusterID is not a reflector")
	}
	if !d.VXLAN.Enabled || !slices.Equal(d.VXLAN.Excluded, pfx("10.1.0.128/26")) {
		t.Errorf("VXLAN %+v, want enabled with only c's block excluded", d.VXLAN)
	}
	if len(d.VXLAN.Remotes) != 2 || len(d.VXLAN.Remotes[0].Blocks) != 0 || !slices.Equal(d.VXLAN.Remotes[1].Blocks, pfx("10.1.0.128/26")) {
		t.Errorf("VXLAN remotes %+v, want b without blocks and c with its block", d.VXLAN.Remotes)
	}
	if !slices.Equal(d.Problems, snap.LeftOut) {
		t.Errorf("problems %v, want %v", d.Problems, snap.LeftOut)
	}
}

// A disabled VXLAN pool keeps its blocks on the tunnel.
func TestDisabledPoolsStayRouted(t *testing.T) {
	off := testPool("retired", "10.6.0.0/16", "Always", true, false)
	d := computeDesired(snapshot{Pools: []*datastore.IPPool{off}}, self{Name: "a", Subnet: netip.MustParsePrefix("172.16.0.0/24")})
	if !d.VXLAN.Enabled {
		t.Error("a disabled VXLAN pool's blocks lost their tunnel")
	}
}

// bindMode NodeIP: the node's own BGPConfiguration first, then default's.
func TestBindModeNodeIP(t *testing.T) {
	cfg := func(name, mode string) *datastore.BGPConfiguration {
		c := &datastore.BGPConfiguration{Spec: datastore.BGPConfigurationSpec{BindMode: mode}}
		c.Name = name
		return c
	}
	for _, tc := range []struct {
		configs []*datastore.BGPConfiguration
		want    bool
	}{
		{nil, false},
		{[]*datastore.BGPConfiguration{cfg("default", "NodeIP")}, true},
		{[]*datastore.BGPConfiguration{cfg("default", "NodeIP"), cfg("node.a", "None")}, false},
		{[]*datastore.BGPConfiguration{cfg("default", "None"), cfg("node.b", "NodeIP")}, false},
	} {
		if d := computeDesired(snapshot{Configs: tc.configs}, self{Name: "a"}); d.BindNodeIP != tc.want {
			t.Errorf("configs %v: BindNodeIP %v, want %v", tc.configs, d.BindNodeIP, tc.want)
		}
	}
}
