package bgp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppacket "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

func testPath(peer, prefix, nextHop string, withdraw bool) *apiutil.Path {
	nlri, err := bgppacket.NewIPAddrPrefix(netip.MustParsePrefix(prefix))
	if err != nil {
		panic(err)
	}
	nh, err := bgppacket.NewPathAttributeNextHop(netip.MustParseAddr(nextHop))
	if err != nil {
		panic(err)
	}
	return &apiutil.Path{Nlri: nlri, PeerAddress: netip.MustParseAddr(peer), Withdrawal: withdraw,
		Attrs: []bgppacket.PathAttributeInterface{nh}}
}

// A held peer's paths survive GoBGP's withdrawals (the peer was deleted to
// be re-created); its next session's paths replace them; release drops
// only what that session did not send again, and a second drop before
// End-of-RIB does not start a new hold (the restart time is not extended).
func TestHeldPeerKeepsPathsUntilRelease(t *testing.T) {
	const peer, other = "10.0.0.1", "10.0.0.2"
	tab := newRouteTable()
	sub := tab.subscribe(false)
	defer sub.Close()
	now := time.Now()
	tab.apply([]*apiutil.Path{
		testPath(peer, "192.168.1.0/26", peer, false),
		testPath(peer, "192.168.2.0/26", peer, false),
		testPath(other, "192.168.2.0/26", other, false), // ECMP with the held peer
		testPath(other, "192.168.3.0/26", other, false),
	}, now)

	gen, fresh := tab.hold(netip.MustParseAddr(peer))
	if !fresh {
		t.Fatal("first hold is not fresh")
	}
	for _, p := range []string{"192.168.1.0/26", "192.168.2.0/26"} {
		r, _ := tab.get(netip.MustParsePrefix(p))
		if stale := r.Paths[0].Stale; !stale {
			t.Errorf("%s: held peer's path not marked stale: %+v", p, r.Paths)
		}
	}
	// GoBGP withdraws everything of the deleted peer.
	tab.apply([]*apiutil.Path{
		testPath(peer, "192.168.1.0/26", peer, true),
		testPath(peer, "192.168.2.0/26", peer, true),
	}, now)
	if r, ok := tab.get(netip.MustParsePrefix("192.168.1.0/26")); !ok || len(r.Paths) != 1 {
		t.Fatalf("held path withdrawn: %+v", r)
	}
	if r, _ := tab.get(netip.MustParsePrefix("192.168.2.0/26")); len(r.Paths) != 2 {
		t.Fatalf("ECMP set lost the held member: %+v", r)
	}
	// A second drop before End-of-RIB keeps the first hold.
	if g, fresh := tab.hold(netip.MustParseAddr(peer)); fresh || g != gen {
		t.Errorf("second hold = %d, fresh %v; want the first (%d), not fresh", g, fresh, gen)
	}
	// The new session sends 192.168.2.0/26 only, then End-of-RIB.
	tab.apply([]*apiutil.Path{testPath(peer, "192.168.2.0/26", peer, false)}, now)
	tab.release(netip.MustParseAddr(peer), 0)
	if _, ok := tab.get(netip.MustParsePrefix("192.168.1.0/26")); ok {
		t.Error("release kept a path the new session did not send")
	}
	r, _ := tab.get(netip.MustParsePrefix("192.168.2.0/26"))
	if len(r.Paths) != 2 || r.Paths[0].Stale || r.Paths[1].Stale {
		t.Errorf("refreshed ECMP set = %+v, want both members fresh", r.Paths)
	}
	if _, ok := tab.get(netip.MustParsePrefix("192.168.3.0/26")); !ok {
		t.Error("another peer's path went with the release")
	}
	// Released: withdrawals take effect again; a stale release timer is a no-op.
	tab.apply([]*apiutil.Path{testPath(peer, "192.168.2.0/26", peer, true)}, now)
	if r, _ := tab.get(netip.MustParsePrefix("192.168.2.0/26")); len(r.Paths) != 1 {
		t.Errorf("withdrawal after release ignored: %+v", r.Paths)
	}
	tab.release(netip.MustParseAddr(peer), gen)
	var delivered int
	sub.Drain(func(Route) { delivered++ })
	if delivered != 3 {
		t.Errorf("subscriber saw %d prefixes change, want 3", delivered)
	}
}

// TestLLGRStalePathsAreMarked: a path carrying LLGR_STALE (RFC 9494), as
// GoBGP tags a long-lived graceful restart's routes, is reported so.
func TestLLGRStalePathsAreMarked(t *testing.T) {
	nlri, _ := bgppacket.NewIPAddrPrefix(netip.MustParsePrefix("10.94.0.0/24"))
	nh, _ := bgppacket.NewPathAttributeNextHop(netip.MustParseAddr("10.0.41.2"))
	path := func(communities ...uint32) *apiutil.Path {
		attrs := []bgppacket.PathAttributeInterface{nh}
		if communities != nil {
			attrs = append(attrs, bgppacket.NewPathAttributeCommunities(communities))
		}
		return &apiutil.Path{Nlri: nlri, Attrs: attrs, PeerAddress: netip.MustParseAddr("10.0.41.2"), Stale: true}
	}
	for _, tt := range []struct {
		name string
		ap   *apiutil.Path
		want bool
	}{
		{"no communities", path(), false},
		{"other communities", path(65001<<16|1, uint32(bgppacket.COMMUNITY_NO_EXPORT)), false},
		{"LLGR_STALE among others", path(65001<<16|1, uint32(bgppacket.COMMUNITY_LLGR_STALE)), true},
	} {
		p := fromNativePath(tt.ap)
		if p.LLGRStale != tt.want || !p.Stale || p.NextHop.String() != "10.0.41.2" {
			t.Errorf("%s: %+v, want LLGRStale %v", tt.name, p, tt.want)
		}
	}
}

// A forgotten peer (deleted from GoBGP) loses its paths, and an UPDATE
// GoBGP still hands over afterwards is ignored until the peer is welcome
// again.
func TestForgottenPeerPathsStayOut(t *testing.T) {
	const peer = "10.0.0.3"
	tab := newRouteTable()
	tab.apply([]*apiutil.Path{testPath(peer, "10.60.0.0/26", peer, false)}, time.Now())
	tab.forget(netip.MustParseAddr(peer))
	tab.apply([]*apiutil.Path{testPath(peer, "10.60.0.64/26", peer, false)}, time.Now())
	if n := tab.len(); n != 0 {
		t.Fatalf("%d prefixes from a forgotten peer, want 0: %+v", n, tab.snapshot())
	}
	tab.welcome(netip.MustParseAddr(peer))
	tab.apply([]*apiutil.Path{testPath(peer, "10.60.0.64/26", peer, false)}, time.Now())
	if n := tab.len(); n != 1 {
		t.Fatalf("%d prefixes after welcome, want 1", n)
	}
}

// The default prefix limit: a peer whose paths in the table go past its
// limit is reported once; withdrawals count down, and a peer without a
// limit is never reported.
func TestTableLimitReportsOnce(t *testing.T) {
	const peer, free = "10.0.0.3", "10.0.0.4"
	tab := newRouteTable()
	reported := make(chan netip.Addr, 4)
	tab.overLimit = func(p netip.Addr) { reported <- p }
	tab.setLimit(netip.MustParseAddr(peer), 2)
	now := time.Now()
	tab.apply([]*apiutil.Path{
		testPath(peer, "10.60.0.0/26", peer, false),
		testPath(peer, "10.60.0.0/26", peer, false), // the same path again: still one
		testPath(peer, "10.60.0.64/26", peer, false),
		testPath(peer, "10.60.0.64/26", peer, true),
		testPath(peer, "10.60.0.128/26", peer, false),
		testPath(free, "10.61.0.0/26", free, false),
		testPath(free, "10.61.0.64/26", free, false),
		testPath(free, "10.61.0.128/26", free, false),
	}, now)
	select {
	case p := <-reported:
		t.Fatalf("%s reported at 2 paths, limit 2", p)
	case <-time.After(100 * time.Millisecond):
	}
	tab.apply([]*apiutil.Path{testPath(peer, "10.60.0.192/26", peer, false), testPath(peer, "10.60.1.0/26", peer, false)}, now)
	if p := <-reported; p.String() != peer {
		t.Fatalf("reported %s, want %s", p, peer)
	}
	select {
	case p := <-reported:
		t.Fatalf("reported twice (%s)", p)
	case <-time.After(100 * time.Millisecond):
	}
}
