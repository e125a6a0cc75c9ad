package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// TestInteropIPv6 is TestInterop over IPv6 links without any IPv4
// address: petrel (router ID from the config) and BIRD 2 (iBGP, TCP MD5),
// FRR (eBGP; FRR offers IPv4 unicast too, which petrel does not take on
// an IPv6 session) and gobgpd (iBGP) exchange IPv6 prefixes both ways.
// Each daemon's own CLI shows petrel's /122 via petrel's global address,
// and the daemon's prefix is in petrel's IPv6 FIB via the daemon's.
func TestInteropIPv6(t *testing.T) {
	runInterop(t, "-6", func(i int) (l interopLink, petrelID, ours, theirs string) {
		net := fmt.Sprintf("fd00:1:%d::", i+1)
		return interopLink{petrel: net + "1", peer: net + "2", peerID: fmt.Sprintf("10.255.%d.2", i+1)}, fmt.Sprintf("10.255.%d.1", i+1),
			fmt.Sprintf("fd00:100:%d::40/122", i+1), fmt.Sprintf("fd00:98:%d::/64", i+1)
	})
}

// TestInteropIPv6ECMP: BIRD 2 and FRR, both in AS 65001 on their own IPv6
// links, advertise one IPv6 prefix to petrel. petrel installs one route
// with both next hops; when BIRD goes away (stopped: a Cease on the
// session) the route shrinks in place to FRR's next hop, never deleted on
// the way.
func TestInteropIPv6ECMP(t *testing.T) {
	harness.RequireRoot(t)
	lab := harness.New(t)
	p, bn, fn := lab.Node("petrel"), lab.Node("bird"), lab.Node("frr")
	lab.Link(p, "eth1", "fd00:211:1::1/64", bn, "eth1", "fd00:211:1::2/64")
	lab.Link(p, "eth2", "fd00:211:2::1/64", fn, "eth1", "fd00:211:2::2/64")
	waitDAD(t, fn)
	const prefix = "fd00:91::/64"

	bird := harness.StartBird(t, bn, birdConfig("10.255.1.2", 65001, []string{prefix}, map[string]string{"petrel": "fd00:211:1::1 as 64512"}))
	frr := harness.StartFRR(t, fn, frrConfig(65001, "10.255.2.2", []string{"fd00:211:2::1"}, prefix))
	startPetrel(t, lab, p, petrelConfig("petrel", "10.255.0.1", 64512, []peerSpec{{Address: "fd00:211:1::2", AS: 65001}, {Address: "fd00:211:2::2", AS: 65001}}))
	established(t, "bird", bird.ProtocolState, "petrel")
	established(t, "frr", frr.NeighborState, "fd00:211:2::1")
	waitGateways(t, fib6, p, prefix, 20*time.Second, "fd00:211:1::2", "fd00:211:2::2")
	shrinksInPlace(t, fib6, p, prefix, bird.Stop, "fd00:211:2::2")
}

// TestInteropDualStack: FRR has an IPv4 and an IPv6 session with petrel,
// both activated for IPv4 and IPv6 unicast, as a dual-stack router is
// configured. petrel negotiates one family per session (the session's
// own, as calico-node's bird and bird6), so each family's prefixes travel
// only on their own session: FRR has petrel's IPv4 block only via the
// IPv4 session and its IPv6 block only via the IPv6 one, and petrel has
// FRR's prefixes of each family only via the session of that family.
func TestInteropDualStack(t *testing.T) {
	harness.RequireRoot(t)
	lab := harness.New(t)
	p, fn := lab.Node("petrel"), lab.Node("frr")
	lab.Link(p, "eth1", "10.0.21.1/24", fn, "eth1", "10.0.21.2/24")
	p.MustRun(t, "ip", "-6", "addr", "add", "fd00:221::1/64", "dev", "eth1", "nodad")
	fn.MustRun(t, "ip", "-6", "addr", "add", "fd00:221::2/64", "dev", "eth1", "nodad")
	waitDAD(t, fn)
	const ours4, ours6, theirs4, theirs6 = "10.98.21.0/26", "fd00:100:21::40/122", "10.97.21.0/24", "fd00:97:21::/64"

	frr := harness.StartFRR(t, fn, frrConfig(65002, "10.0.21.2", []string{"10.0.21.1", "fd00:221::1"}, theirs4, theirs6))
	pn := startPetrel(t, lab, p, petrelConfig("petrel", "10.0.21.1", 64512,
		[]peerSpec{{Address: "10.0.21.2", AS: 65002}, {Address: "fd00:221::2", AS: 65002}}, ours4, ours6))
	for _, addr := range []string{"10.0.21.1", "fd00:221::1"} {
		established(t, "frr", frr.NeighborState, addr)
	}
	waitGateways(t, fib, p, theirs4, 20*time.Second, "10.0.21.2")
	waitGateways(t, fib6, p, theirs6, 20*time.Second, "fd00:221::2")
	onlyVia(t, "frr", frr.Routes, map[string]string{ours4: "10.0.21.1", ours6: "fd00:221::1"})
	onlyVia(t, "petrel", pn.Routes, map[string]string{theirs4: "10.0.21.2", theirs6: "fd00:221::2"})

	// Each session, seen from both ends: FRR offered both families and
	// only the session's own was negotiated ("advertisedAndReceived");
	// petrel sent its one block of that family and received FRR's prefix
	// and its own block echoed back (AS path 65002 64512, dropped as a
	// loop): two, not four. Polled, because after FRR's first IPv6
	// connection fails GoBGP v4.8.0 can drop the session once right after
	// it came up (docs/ipv6.md); petrel re-creates it at once.
	sessions := []struct{ frrKey, petrelKey, family, other string }{
		{"10.0.21.1", "10.0.21.2", "ipv4Unicast", "ipv6Unicast"},
		{"fd00:221::1", "fd00:221::2", "ipv6Unicast", "ipv4Unicast"},
	}
	harness.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		for _, s := range sessions {
			nb, err := frr.NeighborJSON(s.frrKey)
			if err != nil {
				return err
			}
			caps, _ := nb["neighborCapabilities"].(map[string]any)
			mp, _ := caps["multiprotocolExtensions"].(map[string]any)
			negotiated := func(fam string) bool { m, _ := mp[fam].(map[string]any); return m["advertisedAndReceived"] == true }
			if !negotiated(s.family) || negotiated(s.other) {
				return fmt.Errorf("frr: session to %s (%v) negotiated %v, want %s only", s.frrKey, nb["bgpState"], mp, s.family)
			}
			peer, err := pn.peer(s.petrelKey)
			if err != nil {
				return err
			}
			if peer.PrefixesReceived != 2 || peer.PrefixesAdvertised != 1 {
				return fmt.Errorf("petrel's session to %s (%s): received %d, advertised %d; want 2 and 1 (its own family only)", s.petrelKey, peer.State, peer.PrefixesReceived, peer.PrefixesAdvertised)
			}
			if peer.Flaps > 0 {
				t.Logf("petrel's session to %s flapped %d times on the way", s.petrelKey, peer.Flaps)
			}
		}
		return nil
	}, "each session carries its own family only")
}

// waitDAD waits until n has no tentative IPv6 address: the link-local
// addresses of a new link pass duplicate address detection only after a
// second or two. FRR cannot take an IPv6 session before (it answers the
// connection with an FSM error NOTIFICATION instead of its OPEN: it has no
// link-local next hop yet), and GoBGP then holds petrel's side Idle for
// 5 s (see the known issue in docs/ipv6.md).
func waitDAD(t *testing.T, n *harness.Node) {
	t.Helper()
	harness.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		out, err := n.Run("ip", "-6", "addr", "show", "tentative")
		if err == nil && strings.TrimSpace(out) != "" {
			err = fmt.Errorf("tentative: %s", out)
		}
		return err
	}, "%s: IPv6 addresses past DAD", n.Name)
}

// onlyVia waits until routes() has each prefix via exactly its one next
// hop: the session of the prefix's family and no other.
func onlyVia(t *testing.T, who string, routes func() (map[string][]string, error), want map[string]string) {
	t.Helper()
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		rs, err := routes()
		if err != nil {
			return err
		}
		for prefix, via := range want {
			if hops := rs[prefix]; !slices.Equal(hops, []string{via}) {
				return fmt.Errorf("%s: %s via %v, want via %s only", who, prefix, hops, via)
			}
		}
		return nil
	}, "%s has each family's prefixes via that family's session only", who)
}
