package mesh

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/datastore"
)

// reachableBy, as confd renders it: a static /32 to the peer via the
// gateway, for the BGPPeers with a peerIP that apply to this node only;
// a bad gateway is named and the session still made.
func TestReachableBy(t *testing.T) {
	peers := []*datastore.BGPPeer{
		mkPeer("tor", datastore.BGPPeerSpec{PeerIP: "10.99.0.1", ASNumber: 65001, ReachableBy: "10.0.0.254"}),
		mkPeer("tor-port", datastore.BGPPeerSpec{PeerIP: "10.99.0.2:1179", ASNumber: 65001, ReachableBy: "10.0.0.253"}),
		mkPeer("elsewhere", datastore.BGPPeerSpec{Node: "node-b", PeerIP: "10.99.0.3", ASNumber: 65001, ReachableBy: "10.0.0.254"}),
		mkPeer("plain", datastore.BGPPeerSpec{PeerIP: "10.99.0.4", ASNumber: 65001}),
		mkPeer("typo", datastore.BGPPeerSpec{PeerIP: "10.99.0.5", ASNumber: 65001, ReachableBy: "10.0.0.x"}),
		mkPeer("family", datastore.BGPPeerSpec{PeerIP: "10.99.0.6", ASNumber: 65001, ReachableBy: "fd00::1"}),
	}
	res := Desired(Input{NodeName: selfName, Nodes: threeNodes(), Peers: peers})
	want := []StaticRoute{
		{Peer: netip.MustParsePrefix("10.99.0.1/32"), Gateway: netip.MustParseAddr("10.0.0.254"), BGPPeer: "tor"},
		{Peer: netip.MustParsePrefix("10.99.0.2/32"), Gateway: netip.MustParseAddr("10.0.0.253"), BGPPeer: "tor-port"},
	}
	if !slices.Equal(res.ReachableBy, want) {
		t.Errorf("static routes %+v\nwant %+v", res.ReachableBy, want)
	}
	problems := errs(res.Problems)
	for _, w := range []string{
		`BGPPeer "typo": spec.reachableBy: "10.0.0.x" is not an IP address`,
		`BGPPeer "family": spec.reachableBy: fd00::1 is not of the peer's address family`,
	} {
		if !strings.Contains(problems, w) {
			t.Errorf("problems %q, want %q", problems, w)
		}
	}
	for _, ip := range []string{"10.99.0.5", "10.99.0.6"} {
		if !slices.ContainsFunc(res.Peers, func(p bgp.PeerConfig) bool { return p.Address == netip.MustParseAddr(ip) }) {
			t.Errorf("the session to %s was dropped for a bad reachableBy", ip)
		}
	}
}
