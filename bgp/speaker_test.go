package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// These tests run real GoBGP speakers over real TCP on loopback addresses
// (127.0.0.0/8 needs no setup and no root): each speaker listens on its own
// 127.0.0.x address and a free port.

type testNode struct {
	s    *Speaker
	addr netip.Addr
	port uint16
	asn  uint32
}

func freePort(t *testing.T, addr netip.Addr) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func startNode(t *testing.T, ip string, asn uint32, opts ...func(*Config)) *testNode {
	t.Helper()
	addr := netip.MustParseAddr(ip)
	port := freePort(t, addr)
	level := slog.LevelWarn
	if os.Getenv("PETREL_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	cfg := Config{
		RouterID: addr, ASN: asn, ListenAddresses: []netip.Addr{addr}, ListenPort: int32(port),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("node", ip),
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = s.Shutdown(sctx)
		cancel()
	})
	return &testNode{s: s, addr: addr, port: uint16(cfg.ListenPort), asn: asn}
}

// peerTo describes n as a peer seen from "from".
func (n *testNode) peerTo(from *testNode) PeerConfig {
	return PeerConfig{Address: n.addr, ASN: n.asn, Port: n.port, SourceAddress: from.addr, GracefulRestart: true, AddPaths: true}
}

func connect(t *testing.T, a, b *testNode) {
	t.Helper()
	add := func(x, y *testNode) {
		var peers []PeerConfig
		x.s.mu.Lock()
		for _, pe := range x.s.peers {
			peers = append(peers, pe.cfg)
		}
		x.s.mu.Unlock()
		if err := x.s.SetPeers(context.Background(), append(peers, y.peerTo(x))); err != nil {
			t.Fatal(err)
		}
	}
	add(a, b)
	add(b, a)
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %v", what, err)
}

func established(n *testNode, peer netip.Addr) func() error {
	return func() error {
		ps, err := n.s.Peers(context.Background())
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.Config.Address == peer {
				if p.State == StateEstablished {
					return nil
				}
				return fmt.Errorf("%s -> %s is %s", n.addr, peer, p.Info)
			}
		}
		return fmt.Errorf("%s has no peer %s", n.addr, peer)
	}
}

// peerStatus is n's status row for its peer at addr.
func peerStatus(t *testing.T, n *testNode, addr netip.Addr) PeerStatus {
	t.Helper()
	ps, err := n.s.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Config.Address == addr {
			return p
		}
	}
	t.Fatalf("%s has no peer %s", n.addr, addr)
	return PeerStatus{}
}

func hasRoute(n *testNode, prefix string, want bool) func() error {
	return func() error {
		_, ok := n.s.Route(netip.MustParsePrefix(prefix))
		if ok != want {
			return fmt.Errorf("%s: route %s present=%v, want %v", n.addr, prefix, ok, want)
		}
		return nil
	}
}

func TestSpeakersExchangeOriginatedPrefixes(t *testing.T) {
	a := startNode(t, "127.0.10.1", 64512)
	b := startNode(t, "127.0.10.2", 64512)
	sub := b.s.SubscribeRoutes(true)
	defer sub.Close()
	connect(t, a, b)
	waitFor(t, 15*time.Second, "iBGP session", established(a, b.addr))

	if err := a.s.SetOriginated(context.Background(), []netip.Prefix{netip.MustParsePrefix("192.168.10.0/26")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "originated prefix at b", hasRoute(b, "192.168.10.0/26", true))
	r, _ := b.s.Route(netip.MustParsePrefix("192.168.10.0/26"))
	if best, _ := r.Best(); best.NextHop != a.addr || best.Peer != a.addr || best.Local {
		t.Errorf("b's path = %+v, want next hop and peer %s", best, a.addr)
	}
	aPeers, _ := a.s.Peers(context.Background())
	bPeers, _ := b.s.Peers(context.Background())
	if aPeers[0].PrefixesAdvertised != 1 || bPeers[0].PrefixesReceived != 1 || bPeers[0].PrefixesAdvertised != 0 {
		t.Errorf("counters: a advertised %d, b received %d, b advertised %d; want 1, 1, 0",
			aPeers[0].PrefixesAdvertised, bPeers[0].PrefixesReceived, bPeers[0].PrefixesAdvertised)
	}

	select {
	case <-sub.Ready():
	case <-time.After(2 * time.Second):
		t.Fatal("subscriber not woken by the new route")
	}
	var got []Route
	sub.Drain(func(r Route) { got = append(got, r) })
	if len(got) != 1 || got[0].Prefix.String() != "192.168.10.0/26" || got[0].Withdrawn() {
		t.Fatalf("subscriber got %+v", got)
	}

	if err := a.s.SetOriginated(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "withdrawal at b", hasRoute(b, "192.168.10.0/26", false))
	waitFor(t, 2*time.Second, "withdrawal event", func() error {
		var w []Route
		sub.Drain(func(r Route) { w = append(w, r) })
		if len(w) == 1 && w[0].Withdrawn() {
			return nil
		}
		return fmt.Errorf("events %+v", w)
	})

	ps, _ := a.s.Peers(context.Background())
	if ps[0].Config.Name != "Node_127_0_10_2" || ps[0].Info != "Established" {
		t.Errorf("status row = %+v", ps[0])
	}
}

// TestNoRouteLeaks: a route learned from one eBGP peer is never passed to
// another, though plain BGP would re-advertise it.
func TestNoRouteLeaks(t *testing.T) {
	a := startNode(t, "127.0.11.1", 65001)
	b := startNode(t, "127.0.11.2", 65002)
	c := startNode(t, "127.0.11.3", 65003)
	connect(t, a, b)
	connect(t, b, c)
	waitFor(t, 15*time.Second, "a-b", established(a, b.addr))
	waitFor(t, 15*time.Second, "b-c", established(c, b.addr))

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.s.SetOriginated(context.Background(), []netip.Prefix{netip.MustParsePrefix("10.11.1.0/24")}))
	must(b.s.SetOriginated(context.Background(), []netip.Prefix{netip.MustParsePrefix("10.11.2.0/24")}))
	waitFor(t, 5*time.Second, "a's prefix at b", hasRoute(b, "10.11.1.0/24", true))
	waitFor(t, 5*time.Second, "b's prefix at c", hasRoute(c, "10.11.2.0/24", true))
	// b's own prefix made it to c, so b's updates to c are flowing; a's
	// must not follow.
	time.Sleep(time.Second)
	must(hasRoute(c, "10.11.1.0/24", false)())

	// An export range covering a's prefix must still not let a learned
	// route out: only locally injected routes qualify.
	must(b.s.SetExportRanges(context.Background(), []netip.Prefix{netip.MustParsePrefix("10.11.0.0/16")}))
	time.Sleep(time.Second)
	must(hasRoute(c, "10.11.1.0/24", false)())
}

func TestSetPeersLeavesUnchangedSessionsUp(t *testing.T) {
	a := startNode(t, "127.0.12.1", 64512)
	b := startNode(t, "127.0.12.2", 64512)
	c := startNode(t, "127.0.12.3", 64512)
	connect(t, a, b)
	waitFor(t, 15*time.Second, "a-b", established(a, b.addr))
	before, _ := a.s.Peers(context.Background())

	// Re-applying the same set, then adding a peer, must not reset a-b.
	if err := a.s.SetPeers(context.Background(), []PeerConfig{b.peerTo(a)}); err != nil {
		t.Fatal(err)
	}
	connect(t, a, c)
	waitFor(t, 15*time.Second, "a-c", established(a, c.addr))
	after, _ := a.s.Peers(context.Background())
	if after[0].Config.Address != b.addr || !after[0].Since.Equal(before[0].Since) || after[0].Flaps != 0 {
		t.Fatalf("a-b session was disturbed: before %+v after %+v", before[0], after[0])
	}

	// A broken peer in the desired set is refused, and the others stay.
	err := a.s.SetPeers(context.Background(), []PeerConfig{b.peerTo(a), c.peerTo(a), {Address: netip.MustParseAddr("127.0.12.9")}})
	if err == nil {
		t.Fatal("peer without AS accepted")
	}
	final, _ := a.s.Peers(context.Background())
	if len(final) != 2 || final[0].State != StateEstablished || final[1].State != StateEstablished {
		t.Fatalf("valid sessions disturbed by a broken peer: %+v", final)
	}
}

func TestUnreachablePeerShowsReason(t *testing.T) {
	a := startNode(t, "127.0.13.1", 64512)
	// Nothing listens on 127.0.13.2 at this port: connection refused.
	dead := PeerConfig{Address: netip.MustParseAddr("127.0.13.2"), ASN: 64512, Port: freePort(t, netip.MustParseAddr("127.0.13.2")), SourceAddress: a.addr}
	if err := a.s.SetPeers(context.Background(), []PeerConfig{dead}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a reason for the failed session", func() error {
		ps, _ := a.s.Peers(context.Background())
		if len(ps) == 1 && ps[0].State != StateEstablished && ps[0].Info != ps[0].State.String() {
			return nil
		}
		return fmt.Errorf("status %+v", ps)
	})
	ps, _ := a.s.Peers(context.Background())
	if want := "Socket: connection refused"; !strings.Contains(ps[0].Info, want) {
		t.Errorf("info = %q, want it to contain %q", ps[0].Info, want)
	}
}

// rrClient is n as a route-reflector client of rr, in rr's peer set.
func rrClient(n, rr *testNode) PeerConfig {
	p := n.peerTo(rr)
	p.RouteReflectorClient, p.ClusterID = true, netip.MustParseAddr("224.0.0.1")
	return p
}

// TestRouteReflectorPassesPoolRoutesOnlyWhenReflecting: a route reflector
// passes iBGP routes inside the export ranges to its clients; any other
// node (and the reflector before SetReflect) passes nothing on.
func TestRouteReflectorPassesPoolRoutesOnlyWhenReflecting(t *testing.T) {
	a := startNode(t, "127.0.14.1", 64512)
	rr := startNode(t, "127.0.14.2", 64512)
	c := startNode(t, "127.0.14.3", 64512)
	if err := rr.s.SetPeers(context.Background(), []PeerConfig{rrClient(a, rr), rrClient(c, rr)}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testNode{a, c} {
		if err := n.s.SetPeers(context.Background(), []PeerConfig{rr.peerTo(n)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "a-rr", established(a, rr.addr))
	waitFor(t, 15*time.Second, "c-rr", established(c, rr.addr))
	pool := []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}
	if err := rr.s.SetExportRanges(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	if err := a.s.SetOriginated(context.Background(), []netip.Prefix{netip.MustParsePrefix("192.168.1.0/26")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a's block at the reflector", hasRoute(rr, "192.168.1.0/26", true))
	time.Sleep(time.Second)
	if err := hasRoute(c, "192.168.1.0/26", false)(); err != nil {
		t.Fatal("reflected before SetReflect:", err)
	}
	if err := rr.s.SetReflect(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a's block reflected to c", hasRoute(c, "192.168.1.0/26", true))
	if r, _ := c.s.Route(netip.MustParsePrefix("192.168.1.0/26")); r.Paths[0].NextHop != a.addr {
		t.Errorf("reflected next hop = %s, want the originator %s", r.Paths[0].NextHop, a.addr)
	}
}

// A speaker that came back with adopted routes tells its peers it is
// restarting; once they have all sent End-of-RIB its restart is over, and
// SetPeers adds later peers without the restarting bit.
func TestRestartingEndsWithEndOfRIB(t *testing.T) {
	a := startNode(t, "127.0.15.1", 64512, func(c *Config) { c.Restarting = true })
	b := startNode(t, "127.0.15.2", 64512)
	if !a.s.restarting.Load() {
		t.Fatal("a restarting speaker does not say so")
	}
	connect(t, a, b)
	waitFor(t, 15*time.Second, "End-of-RIB from b", func() error {
		if a.s.restarting.Load() {
			return fmt.Errorf("still restarting")
		}
		return nil
	})
}

// A peer that restarts gracefully is dialled again within 2 s, not after
// Calico's 5 s connect retry, when the first dial came before its new
// process listened: b re-creates its session at once and dials after
// GoBGP's fixed 1.5-2 s first delay; a comes back only at 2.5 s.
func TestRestartingPeerIsDialledAgainSoon(t *testing.T) {
	a := startNode(t, "127.0.16.1", 64512)
	b := startNode(t, "127.0.16.2", 64512)
	passive := a.peerTo(b)
	passive.Address, passive.Port, passive.SourceAddress = b.addr, b.port, a.addr
	passive.Passive = true // as the mesh does: only the higher address dials
	if err := a.s.SetPeers(context.Background(), []PeerConfig{passive}); err != nil {
		t.Fatal(err)
	}
	if err := b.s.SetPeers(context.Background(), []PeerConfig{a.peerTo(b)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a and b Established", established(b, a.addr))

	// a's process dies: its sessions close without a NOTIFICATION.
	if err := a.s.server.StopBgp(context.Background(), &api.StopBgpRequest{AllowGracefulRestart: true}); err != nil {
		t.Fatal(err)
	}
	dropped := time.Now()
	time.Sleep(2500 * time.Millisecond)
	again := startNode(t, a.addr.String(), a.asn, func(c *Config) { c.ListenPort, c.Restarting = int32(a.port), true })
	if err := again.s.SetPeers(context.Background(), []PeerConfig{passive}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a back", established(b, a.addr))
	// 1.5-2 s to the failed first dial, 1.5-2 s to the next one; with a 5 s
	// retry the session came back after 5.25-7 s.
	if took := time.Since(dropped); took > 4800*time.Millisecond {
		t.Errorf("session back %v after the drop, want under 4.8 s", took.Round(time.Millisecond))
	}
}

// GTSM (ttlSecurity): a peer whose packets may have crossed more hops
// than allowed never gets a session; with GTSM on both ends it does.
func TestTTLSecurityDropsFarPackets(t *testing.T) {
	a := startNode(t, "127.0.20.1", 64512)
	b := startNode(t, "127.0.20.2", 64513)
	gtsm := b.peerTo(a)
	gtsm.TTLSecurity = 1 // only packets sent with TTL 255 arrive
	if err := a.s.SetPeers(context.Background(), []PeerConfig{gtsm}); err != nil {
		t.Fatal(err)
	}
	plain := a.peerTo(b) // eBGP, not multihop: GoBGP sends with TTL 1
	if err := b.s.SetPeers(context.Background(), []PeerConfig{plain}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // first dials at 1.5-2 s, a retry after 2 s more
	if err := established(a, b.addr)(); err == nil {
		t.Fatal("a session came up with packets sent with TTL 1 to a peer that requires 255")
	}
	// Both ends start over with GTSM: a connection a half-opened in the
	// first part (its segments dropped one way) would otherwise wait out
	// GoBGP's fixed OpenSent hold.
	plain.TTLSecurity = 1
	for _, step := range []struct {
		n     *testNode
		peers []PeerConfig
	}{{a, nil}, {b, []PeerConfig{plain}}, {a, []PeerConfig{gtsm}}} {
		if err := step.n.s.SetPeers(context.Background(), step.peers); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "GTSM on both ends", established(a, b.addr))
}
