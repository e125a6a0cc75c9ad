package mesh

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/datastore"
)

func mkFilter(name string, spec datastore.BGPFilterSpec) *datastore.BGPFilter {
	f := &datastore.BGPFilter{Spec: spec}
	f.Name = name
	return f
}

func TestRoutePolicy(t *testing.T) {
	torV4 := netip.MustParseAddr("10.0.0.1")
	node := mkNode(selfName, selfIP)
	ebgpPeer := func(spec datastore.BGPPeerSpec) *datastore.BGPPeer {
		spec.PeerIP, spec.ASNumber = "10.0.0.1", 65001
		return mkPeer("tor", spec)
	}
	filter := mkFilter("edge", datastore.BGPFilterSpec{
		ExportV4: []datastore.BGPFilterRule{
			{CIDR: "192.168.0.0/16", MatchOperator: "In", PrefixLength: &datastore.BGPFilterPrefixLength{Min: ptr(int32(26))}, Action: "Accept",
				Operations: []datastore.BGPFilterOperation{{AddCommunity: &datastore.BGPFilterCommunityValue{Value: "65000:1"}}, {PrependASPath: &datastore.BGPFilterPrepend{Prefix: []uint32{64512}}}}},
			{PeerType: "iBGP", Action: "Reject"}, // not for this eBGP peer
			{Interface: "*.calico", Action: "Reject"},
			{Action: "Reject"},
		},
		ImportV4: []datastore.BGPFilterRule{{CIDR: "10.0.0.0/8", MatchOperator: "NotIn", Source: "RemotePeers", Action: "Reject"}},
		ExportV6: []datastore.BGPFilterRule{{Action: "Reject"}},
	})
	for _, tc := range []struct {
		name    string
		in      Input
		want    bgp.RoutePolicy
		peers   int
		problem string
	}{{
		name:  "no filters: no policy",
		in:    Input{Nodes: []*datastore.Node{node}, Peers: []*datastore.BGPPeer{ebgpPeer(datastore.BGPPeerSpec{})}},
		want:  bgp.RoutePolicy{Peers: map[netip.Addr]bgp.PeerPolicy{}, Communities: []bgp.PrefixCommunities{}},
		peers: 1,
	}, {
		name: "a filter's v4 rules for an eBGP peer, in order, iBGP-only rules left out",
		in: Input{Nodes: []*datastore.Node{node}, Filters: []*datastore.BGPFilter{filter},
			Peers: []*datastore.BGPPeer{ebgpPeer(datastore.BGPPeerSpec{Filters: []string{"edge"}, KeepOriginalNextHop: true})}},
		want: bgp.RoutePolicy{Peers: map[netip.Addr]bgp.PeerPolicy{torV4: {
			NextHop: bgp.NextHopKeep,
			Export: []bgp.FilterRule{
				{Origin: `BGPFilter "edge": spec.exportV4[0]`, Prefix: netip.MustParsePrefix("192.168.0.0/16"), Op: bgp.MatchIn, MinLen: 26, AddCommunities: []string{"65000:1"}, PrependASPath: []uint32{64512}},
				{Origin: `BGPFilter "edge": spec.exportV4[2]`, Never: true, Reject: true},
				{Origin: `BGPFilter "edge": spec.exportV4[3]`, Reject: true},
			},
			Import: []bgp.FilterRule{{Origin: `BGPFilter "edge": spec.importV4[0]`, Prefix: netip.MustParsePrefix("10.0.0.0/8"), Op: bgp.MatchNotIn, FromPeers: true, Reject: true}},
		}}, Communities: []bgp.PrefixCommunities{}},
		peers:   1,
		problem: `BGPFilter "edge": spec.exportV4[2]: interface and priority criteria match no route`,
	}, {
		name: "a missing filter: that peer is skipped, never unfiltered",
		in: Input{Nodes: []*datastore.Node{node},
			Peers: []*datastore.BGPPeer{ebgpPeer(datastore.BGPPeerSpec{Filters: []string{"nope"}})}},
		want:    bgp.RoutePolicy{Peers: map[netip.Addr]bgp.PeerPolicy{}, Communities: []bgp.PrefixCommunities{}},
		problem: `BGPPeer "tor": spec.filters: BGPFilter "nope" is not found; peer 10.0.0.1 skipped`,
	}, {
		name: "nextHopMode Self",
		in: Input{Nodes: []*datastore.Node{node},
			Peers: []*datastore.BGPPeer{ebgpPeer(datastore.BGPPeerSpec{NextHopMode: "Self"})}},
		want:  bgp.RoutePolicy{Peers: map[netip.Addr]bgp.PeerPolicy{torV4: {NextHop: bgp.NextHopSelf}}, Communities: []bgp.PrefixCommunities{}},
		peers: 1,
	}, {
		name: "prefixAdvertisements: names resolved, the node's entry overrides the default's",
		in: Input{NodeName: selfName, Nodes: []*datastore.Node{node}, Configs: []*datastore.BGPConfiguration{
			mkCfg("default", datastore.BGPConfigurationSpec{
				Communities: []datastore.Community{{Name: "gold", Value: "65000:300"}},
				PrefixAdvertisements: []datastore.PrefixAdvert{
					{CIDR: "192.168.0.0/16", Communities: []string{"gold", "65000:1:1"}},
					{CIDR: "172.16.0.0/16", Communities: []string{"silver"}},
				}}),
			mkCfg("node."+selfName, datastore.BGPConfigurationSpec{PrefixAdvertisements: []datastore.PrefixAdvert{{CIDR: "192.168.0.0/16", Communities: []string{"65000:2"}}}}),
		}},
		want: bgp.RoutePolicy{Peers: map[netip.Addr]bgp.PeerPolicy{}, Communities: []bgp.PrefixCommunities{
			{Prefix: netip.MustParsePrefix("172.16.0.0/16")},
			{Prefix: netip.MustParsePrefix("192.168.0.0/16"), Communities: []string{"65000:2"}},
		}},
		problem: `BGPConfiguration "default": spec.prefixAdvertisements[1].communities[0]: "silver" is neither`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.NodeName = selfName
			res := Desired(tc.in)
			if !reflect.DeepEqual(res.Policy, tc.want) {
				t.Errorf("policy\n got %+v\nwant %+v", res.Policy, tc.want)
			}
			if len(res.Peers) != tc.peers {
				t.Errorf("%d peers, want %d", len(res.Peers), tc.peers)
			}
			got := errs(res.Problems)
			if (tc.problem == "") != (got == "") || !strings.Contains(got, tc.problem) {
				t.Errorf("problems %q, want one containing %q", got, tc.problem)
			}
		})
	}
}

func TestBGPFilterValidation(t *testing.T) {
	for _, tc := range []struct {
		rule datastore.BGPFilterRule
		want string
	}{
		{datastore.BGPFilterRule{Action: "Drop"}, `spec.exportV4[0].action: "Drop" must be Accept or Reject`},
		{datastore.BGPFilterRule{CIDR: "10.0.0.0/8", Action: "Accept"}, "and cidr must both be set"},
		{datastore.BGPFilterRule{CIDR: "fd00::/8", MatchOperator: "In", Action: "Accept"}, "is not of the rule list's address family"},
		{datastore.BGPFilterRule{CIDR: "10.0.0.0/8", MatchOperator: "In", Action: "Accept", PrefixLength: &datastore.BGPFilterPrefixLength{Min: ptr(int32(33))}}, "prefixLength.min: 33 is outside 0-32"},
		{datastore.BGPFilterRule{Action: "Reject", Operations: []datastore.BGPFilterOperation{{AddCommunity: &datastore.BGPFilterCommunityValue{Value: "1:1"}}}}, "only be used with action Accept"},
		{datastore.BGPFilterRule{Action: "Accept", Operations: []datastore.BGPFilterOperation{{AddCommunity: &datastore.BGPFilterCommunityValue{Value: "70000:1"}}}}, `addCommunity.value: "70000:1" has "70000", not a 16-bit number`},
		{datastore.BGPFilterRule{Action: "Accept", Communities: &datastore.BGPFilterCommunities{Values: []string{"1:2:3", "1:2"}}}, "exactly one is supported"},
	} {
		err := mkFilter("f", datastore.BGPFilterSpec{ExportV4: []datastore.BGPFilterRule{tc.rule}}).Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `BGPFilter "f"`) {
			t.Errorf("rule %+v: error %v, want one naming the filter and containing %q", tc.rule, err, tc.want)
		}
	}
}

func TestLocalWorkloadSelectorIsNamed(t *testing.T) {
	res := Desired(Input{NodeName: selfName, Nodes: []*datastore.Node{mkNode(selfName, selfIP)},
		Peers: []*datastore.BGPPeer{mkPeer("pods", datastore.BGPPeerSpec{LocalWorkloadSelector: "app == 'lb'", ASNumber: 65001})}})
	if len(res.Peers) != 0 || !strings.Contains(errs(res.Problems), `BGPPeer "pods": spec.localWorkloadSelector: peering with local workloads is not supported`) {
		t.Errorf("peers %v, problems %q", res.Peers, errs(res.Problems))
	}
}
