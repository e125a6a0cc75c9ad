package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// loopback6 is the one IPv6 loopback address: dual-stack speakers in one
// test share it, each on its own port.
var loopback6 = netip.IPv6Loopback()

// startDualStack starts a speaker on ip and on [::1], both on one port.
func startDualStack(t *testing.T, ip string) *testNode {
	t.Helper()
	if freePort(t, loopback6) == 0 { // skips without IPv6 loopback
		t.Skip("no IPv6 loopback")
	}
	return startNode(t, ip, 64512, func(c *Config) { c.ListenAddresses = append(c.ListenAddresses, loopback6) })
}

// peer6To is n's IPv6 session seen from "from" (over ::1).
func (n *testNode) peer6To(from *testNode, passive bool) PeerConfig {
	p := n.peerTo(from)
	p.Address, p.SourceAddress, p.Passive = loopback6, loopback6, passive
	return p
}

// TestDualStackSessionsCarryTheirOwnFamily: two nodes with an IPv4 and an
// IPv6 session (as calico-node's bird and bird6) exchange their IPv4 and
// IPv6 blocks, each over the session of its family, with the sender's
// session address as next hop; withdrawing the IPv6 block leaves the IPv4
// one alone.
func TestDualStackSessionsCarryTheirOwnFamily(t *testing.T) {
	a := startDualStack(t, "127.0.16.1")
	b := startDualStack(t, "127.0.16.2")
	ctx := context.Background()
	// One side of the IPv6 session waits, as the mesh's passive rule does.
	if err := a.s.SetPeers(ctx, []PeerConfig{b.peerTo(a), b.peer6To(a, false)}); err != nil {
		t.Fatal(err)
	}
	if err := b.s.SetPeers(ctx, []PeerConfig{a.peerTo(b), a.peer6To(b, true)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "IPv4 session", established(a, b.addr))
	waitFor(t, 15*time.Second, "IPv6 session", established(a, loopback6))

	v4, v6 := netip.MustParsePrefix("192.168.16.0/26"), netip.MustParsePrefix("fd00:16::40/122")
	if err := a.s.SetOriginated(ctx, []netip.Prefix{v4, v6}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a's IPv4 block at b", hasRoute(b, v4.String(), true))
	waitFor(t, 5*time.Second, "a's IPv6 block at b", hasRoute(b, v6.String(), true))
	for prefix, via := range map[netip.Prefix]netip.Addr{v4: a.addr, v6: loopback6} {
		r, _ := b.s.Route(prefix)
		if best, _ := r.Best(); best.NextHop != via || best.Peer != via {
			t.Errorf("b's path to %s = %+v, want next hop and peer %s", prefix, best, via)
		}
	}
	waitFor(t, 5*time.Second, "one prefix per session", func() error {
		for _, addr := range []netip.Addr{a.addr, loopback6} {
			if st := peerStatus(t, b, addr); st.PrefixesReceived != 1 {
				return fmt.Errorf("b received %d prefixes over its session to %s, want 1", st.PrefixesReceived, addr)
			}
		}
		for _, addr := range []netip.Addr{b.addr, loopback6} {
			if st := peerStatus(t, a, addr); st.PrefixesAdvertised != 1 {
				return fmt.Errorf("a advertised %d prefixes over its session to %s, want 1", st.PrefixesAdvertised, addr)
			}
		}
		return nil
	})

	if err := a.s.SetOriginated(ctx, []netip.Prefix{v4}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "IPv6 withdrawal at b", hasRoute(b, v6.String(), false))
	if err := hasRoute(b, v4.String(), true)(); err != nil {
		t.Fatal(err)
	}
}

// TestLinkLocalSessionsAreRefused: a session over link-local addresses
// would advertise a next hop without its interface; it is refused by name.
func TestLinkLocalSessionsAreRefused(t *testing.T) {
	for _, p := range []PeerConfig{
		{Address: netip.MustParseAddr("fe80::1"), ASN: 64512},
		{Address: netip.MustParseAddr("fd00::1"), ASN: 64512, SourceAddress: netip.MustParseAddr("fe80::2")},
	} {
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "peer "+p.Address.String()+": IPv6 link-local session") {
			t.Errorf("%s from %s: err = %v, want a link-local refusal naming the peer", p.Address, p.SourceAddress, err)
		}
	}
	if err := (PeerConfig{Address: netip.MustParseAddr("fd00::1"), ASN: 64512, SourceAddress: netip.MustParseAddr("fd00::2")}).Validate(); err != nil {
		t.Errorf("unique-local session refused: %v", err)
	}
}
