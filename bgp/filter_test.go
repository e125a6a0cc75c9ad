package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppacket "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// communitiesAt lists the communities (standard and large, as text) on
// n's best path for prefix.
func communitiesAt(t *testing.T, n *testNode, prefix string) []string {
	t.Helper()
	var out []string
	err := n.s.server.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgppacket.RF_IPv4_UC,
		Prefixes: []*apiutil.LookupPrefix{{Prefix: prefix}}}, func(_ bgppacket.NLRI, paths []*apiutil.Path) {
		for _, attr := range paths[0].Attrs {
			switch a := attr.(type) {
			case *bgppacket.PathAttributeCommunities:
				for _, v := range a.Value {
					out = append(out, fmt.Sprintf("%d:%d", v>>16, v&0xffff))
				}
			case *bgppacket.PathAttributeLargeCommunities:
				for _, v := range a.Values {
					out = append(out, v.String())
				}
			case *bgppacket.PathAttributeExtendedCommunities:
				for _, v := range a.Value {
					out = append(out, "ext "+v.String())
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func setPolicy(t *testing.T, n *testNode, rp RoutePolicy) {
	t.Helper()
	if err := n.s.SetRoutePolicy(context.Background(), rp); err != nil {
		t.Fatal(err)
	}
}

func originate(t *testing.T, n *testNode, prefixes ...string) {
	t.Helper()
	var ps []netip.Prefix
	for _, p := range prefixes {
		ps = append(ps, netip.MustParsePrefix(p))
	}
	if err := n.s.SetOriginated(context.Background(), ps); err != nil {
		t.Fatal(err)
	}
}

// Export rules: the first match decides, Accept stops the list without
// widening anything, its operations land on the wire, and a changed
// policy applies to routes already sent without a session reset.
func TestExportFilterFirstMatchDecides(t *testing.T) {
	a := startNode(t, "127.0.17.1", 64512)
	b := startNode(t, "127.0.17.2", 64513)
	connect(t, a, b)
	waitFor(t, 15*time.Second, "eBGP session", established(a, b.addr))
	originate(t, a, "192.168.1.0/26", "192.168.2.0/26")
	waitFor(t, 5*time.Second, "both blocks at b", func() error {
		return errorsJoin(hasRoute(b, "192.168.1.0/26", true)(), hasRoute(b, "192.168.2.0/26", true)())
	})
	flapsBefore := peerFlaps(t, a, b.addr)

	setPolicy(t, a, RoutePolicy{Peers: map[netip.Addr]PeerPolicy{b.addr: {Export: []FilterRule{
		{Prefix: netip.MustParsePrefix("192.168.1.0/26"), Op: MatchEqual, AddCommunities: []string{"65000:100", "65000:1:2"}, PrependASPath: []uint32{65100, 65101}},
		{Prefix: netip.MustParsePrefix("192.168.0.0/16"), Op: MatchIn, Reject: true},
		// Accepting what is not exportable exports nothing more.
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Op: MatchIn},
	}}}})
	waitFor(t, 5*time.Second, "192.168.2.0/26 rejected, 192.168.1.0/26 kept", func() error {
		return errorsJoin(hasRoute(b, "192.168.2.0/26", false)(), hasRoute(b, "192.168.1.0/26", true)())
	})
	waitFor(t, 5*time.Second, "operations on the wire", func() error {
		r, _ := b.s.Route(netip.MustParsePrefix("192.168.1.0/26"))
		// GoBGP adds our AS before export policy runs (BIRD after):
		// docs/migration.md says so.
		if got := r.Paths[0].ASPath; !slices.Equal(got, []uint32{65100, 65101, 64512}) {
			return fmt.Errorf("AS path %v, want [65100 65101 64512]", got)
		}
		if got := communitiesAt(t, b, "192.168.1.0/26"); !slices.Equal(got, []string{"65000:100", "65000:1:2"}) {
			return fmt.Errorf("communities %v, want 65000:100 and 65000:1:2 and no marker", got)
		}
		return nil
	})
	if peerFlaps(t, a, b.addr) != flapsBefore {
		t.Error("a policy change reset the session")
	}

	setPolicy(t, a, RoutePolicy{})
	waitFor(t, 5*time.Second, "policy removed: both blocks back", hasRoute(b, "192.168.2.0/26", true))
}

// Import rules keep a peer's routes out of the RIB; prefixLength narrows
// In; the rest is accepted.
func TestImportFilterKeepsRoutesOut(t *testing.T) {
	a := startNode(t, "127.0.18.1", 64512)
	b := startNode(t, "127.0.18.2", 64513)
	connect(t, a, b)
	setPolicy(t, b, RoutePolicy{Peers: map[netip.Addr]PeerPolicy{a.addr: {Import: []FilterRule{
		{Prefix: netip.MustParsePrefix("192.168.0.0/16"), Op: MatchIn, MinLen: 28, Reject: true},
		{Community: "65000:1", Reject: true},
	}}}})
	waitFor(t, 15*time.Second, "eBGP session", established(a, b.addr))
	originate(t, a, "192.168.3.0/26", "192.168.4.0/28", "192.168.5.0/26")
	setPolicy(t, a, RoutePolicy{Communities: []PrefixCommunities{{Prefix: netip.MustParsePrefix("192.168.5.0/24"), Communities: []string{"65000:1"}}}})
	waitFor(t, 5*time.Second, "the /26 accepted", hasRoute(b, "192.168.3.0/26", true))
	time.Sleep(500 * time.Millisecond)
	for _, p := range []string{"192.168.4.0/28", "192.168.5.0/26"} {
		if err := hasRoute(b, p, false)(); err != nil {
			t.Error(err)
		}
	}
}

// A route learned over iBGP inside an export range (a pool) goes on to
// eBGP peers, never to iBGP ones; next-hop Keep leaves its next hop.
func TestPoolRoutesGoOnToEBGPPeers(t *testing.T) {
	gw := startNode(t, "127.0.19.1", 64512)
	node := startNode(t, "127.0.19.2", 64512)
	tor := startNode(t, "127.0.19.3", 65001)
	other := startNode(t, "127.0.19.4", 64512)
	connect(t, gw, node)
	connect(t, gw, tor)
	connect(t, gw, other)
	if err := gw.s.SetExportRanges(context.Background(), []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	originate(t, node, "192.168.6.0/26", "10.99.0.0/24")
	waitFor(t, 15*time.Second, "pool route at the ToR, next hop the gateway", func() error {
		r, ok := tor.s.Route(netip.MustParsePrefix("192.168.6.0/26"))
		if !ok {
			return fmt.Errorf("no route")
		}
		if r.Paths[0].NextHop != gw.addr {
			return fmt.Errorf("next hop %s, want %s", r.Paths[0].NextHop, gw.addr)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	for _, check := range []func() error{hasRoute(tor, "10.99.0.0/24", false), hasRoute(other, "192.168.6.0/26", false)} {
		if err := check(); err != nil {
			t.Error(err)
		}
	}
	setPolicy(t, gw, RoutePolicy{Peers: map[netip.Addr]PeerPolicy{tor.addr: {NextHop: NextHopKeep}}})
	waitFor(t, 5*time.Second, "next hop kept", func() error {
		r, _ := tor.s.Route(netip.MustParsePrefix("192.168.6.0/26"))
		if len(r.Paths) == 0 || r.Paths[0].NextHop != node.addr {
			return fmt.Errorf("paths %+v, want next hop %s", r.Paths, node.addr)
		}
		return nil
	})
}

// A peer cannot skip our import rules by sending our own marker: the
// rendered import policy removes markers before any rule.
func TestRenderedImportStripsMarkersFirst(t *testing.T) {
	r := renderRoutePolicy(RoutePolicy{Peers: map[netip.Addr]PeerPolicy{netip.MustParseAddr("10.0.0.1"): {
		Import: []FilterRule{{Reject: true}}}}}, 1)
	first := r.import_.Statements[0]
	if first.Actions.ExtCommunity == nil || first.Actions.ExtCommunity.Type != api.CommunityAction_TYPE_REMOVE || first.Actions.RouteAction != api.RouteAction_ROUTE_ACTION_UNSPECIFIED {
		t.Fatalf("first import statement %v does not strip markers", first)
	}
	if len(renderRoutePolicy(RoutePolicy{}, 2).sets) != 0 {
		t.Error("an empty policy installs sets")
	}
}

func peerFlaps(t *testing.T, n *testNode, peer netip.Addr) uint32 {
	t.Helper()
	return peerStatus(t, n, peer).Flaps
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
