package bgp

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestServicePrefixesLeaveExactlyAndAreWithdrawn: a node's Service
// prefixes reach its eBGP and iBGP peers as they are, leave again when
// dropped, and a peer that learns one passes it on to nobody (the same
// leak-proof rule as for blocks); a route reflector passes on only those
// inside the configured Service ranges.
func TestServicePrefixesLeaveExactlyAndAreWithdrawn(t *testing.T) {
	a := startNode(t, "127.0.16.1", 64512)
	rr := startNode(t, "127.0.16.2", 64512)
	c := startNode(t, "127.0.16.3", 64512)
	tor := startNode(t, "127.0.16.4", 65100)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(rr.s.SetPeers(context.Background(), []PeerConfig{rrClient(a, rr), rrClient(c, rr)}))
	must(c.s.SetPeers(context.Background(), []PeerConfig{rr.peerTo(c)}))
	must(a.s.SetPeers(context.Background(), []PeerConfig{rr.peerTo(a), tor.peerTo(a)}))
	must(tor.s.SetPeers(context.Background(), []PeerConfig{a.peerTo(tor)}))
	waitFor(t, 15*time.Second, "a-rr", established(a, rr.addr))
	waitFor(t, 15*time.Second, "c-rr", established(c, rr.addr))
	waitFor(t, 15*time.Second, "a-tor", established(a, tor.addr))

	cidr := netip.MustParsePrefix("10.96.0.0/12")
	local := netip.MustParsePrefix("10.96.0.10/32")
	other := netip.MustParsePrefix("10.200.0.0/24") // a ToR route, in no Service range
	must(tor.s.SetOriginated(context.Background(), []netip.Prefix{other}))
	must(a.s.SetServices(context.Background(), []netip.Prefix{cidr, local}, []netip.Prefix{cidr}))
	for _, p := range []string{"10.96.0.0/12", "10.96.0.10/32"} {
		waitFor(t, 5*time.Second, p+" at the eBGP peer", hasRoute(tor, p, true))
		waitFor(t, 5*time.Second, p+" at the iBGP peer", hasRoute(rr, p, true))
	}
	if got := a.s.Services(); !slices.Equal(got, []netip.Prefix{cidr, local}) {
		t.Errorf("Services() = %v", got)
	}
	waitFor(t, 5*time.Second, "the ToR's route at a", hasRoute(a, other.String(), true))

	// Not a reflector yet: nothing learned goes on; a passes the ToR's
	// route to nobody either.
	time.Sleep(time.Second)
	must(hasRoute(c, local.String(), false)())
	must(hasRoute(rr, other.String(), false)())

	// Reflecting: the Service routes inside the range go on to c.
	must(rr.s.SetServices(context.Background(), nil, []netip.Prefix{cidr}))
	must(rr.s.SetReflect(context.Background(), true))
	waitFor(t, 5*time.Second, "service route reflected to c", hasRoute(c, local.String(), true))

	// Withdrawn everywhere when dropped.
	must(a.s.SetServices(context.Background(), []netip.Prefix{cidr}, []netip.Prefix{cidr}))
	waitFor(t, 5*time.Second, "withdrawn at the eBGP peer", hasRoute(tor, local.String(), false))
	waitFor(t, 5*time.Second, "withdrawn at c", hasRoute(c, local.String(), false))
	must(hasRoute(tor, cidr.String(), true)())
}
