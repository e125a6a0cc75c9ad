package feeder

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

func prefixes(n int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		out[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 10), byte(i >> 2), byte(i&3) << 6}), 26)
	}
	return out
}

// prefixes6 is n consecutive /122s from fd00:1000::.
func prefixes6(n int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		a := netip.MustParseAddr("fd00:1000::").As16()
		a[13], a[14], a[15] = byte(i>>10), byte(i>>2), byte(i&3)<<6
		out[i] = netip.PrefixFrom(netip.AddrFrom16(a), 122)
	}
	return out
}

// TestFeedDecodes decodes every message of a feed of each family with
// GoBGP's parser and checks the prefixes, their order, the shared
// attributes and End-of-RIB.
func TestFeedDecodes(t *testing.T) {
	// A 4096-byte message holds over 800 /26s or 230 /122s: the feed is
	// compact.
	t.Run("ipv4", func(t *testing.T) {
		checkFeed(t, prefixes(2000), netip.MustParseAddr("10.200.0.1"), bgp.RF_IPv4_UC, 800)
	})
	t.Run("ipv6", func(t *testing.T) {
		checkFeed(t, prefixes6(2000), netip.MustParseAddr("fd00:200::1"), bgp.RF_IPv6_UC, 230)
	})
}

func checkFeed(t *testing.T, want []netip.Prefix, nextHop netip.Addr, family bgp.Family, perUpdate int) {
	f, err := NewFeed(want, nextHop)
	if err != nil {
		t.Fatal(err)
	}
	if f.Prefixes != len(want) || len(f.Messages) < 3 {
		t.Fatalf("%d prefixes in %d messages", f.Prefixes, len(f.Messages))
	}
	var got []netip.Prefix
	var stream []byte
	firstUpdate := 0
	for i, raw := range f.Messages {
		stream = append(stream, raw...)
		if len(raw) > bgp.BGP_MAX_MESSAGE_LENGTH {
			t.Fatalf("message %d is %d bytes", i, len(raw))
		}
		msg, err := bgp.ParseBGPMessage(raw)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		u, ok := msg.Body.(*bgp.BGPUpdate)
		if !ok {
			t.Fatalf("message %d is %T", i, msg.Body)
		}
		if eor, fam := u.IsEndOfRib(); eor {
			if i != len(f.Messages)-1 || fam != family {
				t.Fatalf("End-of-RIB (%v) at %d of %d", fam, i, len(f.Messages))
			}
			continue
		}
		nlri := checkAttributes(t, i, u.PathAttributes, nextHop)
		if family == bgp.RF_IPv4_UC {
			nlri = u.NLRI
		}
		for _, n := range nlri {
			got = append(got, n.NLRI.(*bgp.IPAddrPrefix).Prefix)
		}
		if i == 0 {
			firstUpdate = len(nlri)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("decoded %d prefixes, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("prefix %d: got %v want %v", i, got[i], want[i])
		}
	}
	if string(stream) != string(f.Stream()) {
		t.Error("Stream is not the messages back to back")
	}
	if firstUpdate < perUpdate {
		t.Errorf("only %d prefixes in a full UPDATE", firstUpdate)
	}
}

// checkAttributes checks an UPDATE's attributes and returns the prefixes
// of its MP_REACH_NLRI, if any.
func checkAttributes(t *testing.T, i int, attrs []bgp.PathAttributeInterface, nextHop netip.Addr) (mpNLRI []bgp.PathNLRI) {
	t.Helper()
	seen := map[bgp.BGPAttrType]bool{}
	for _, a := range attrs {
		seen[a.GetType()] = true
		switch a := a.(type) {
		case *bgp.PathAttributeOrigin:
			if a.Value != bgp.BGP_ORIGIN_ATTR_TYPE_IGP {
				t.Errorf("message %d: ORIGIN %d", i, a.Value)
			}
		case *bgp.PathAttributeAsPath:
			if len(a.Value) != 0 {
				t.Errorf("message %d: AS_PATH %v, want empty (iBGP)", i, a)
			}
		case *bgp.PathAttributeNextHop:
			if a.Value != nextHop || !nextHop.Is4() {
				t.Errorf("message %d: NEXT_HOP %v", i, a.Value)
			}
		case *bgp.PathAttributeMpReachNLRI:
			if a.Nexthop != nextHop || nextHop.Is4() {
				t.Errorf("message %d: MP_REACH_NLRI next hop %v", i, a.Nexthop)
			}
			mpNLRI = a.Value
		case *bgp.PathAttributeLocalPref:
			if a.Value != 100 {
				t.Errorf("message %d: LOCAL_PREF %d", i, a.Value)
			}
		default:
			t.Errorf("message %d: unexpected attribute %v", i, a)
		}
	}
	if len(seen) != 4 {
		t.Errorf("message %d: attributes %v, want ORIGIN, AS_PATH, LOCAL_PREF and NEXT_HOP or MP_REACH_NLRI", i, seen)
	}
	return mpNLRI
}

func TestEmptyFeedIsEndOfRIB(t *testing.T) {
	f, err := NewFeed(nil, netip.MustParseAddr("192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Messages) != 1 || len(f.Stream()) != headerLen+4 {
		t.Fatalf("%d messages, %d bytes", len(f.Messages), len(f.Stream()))
	}
	if _, err := NewFeed([]netip.Prefix{netip.MustParsePrefix("2001:db8::/48")}, netip.MustParseAddr("192.0.2.1")); err == nil {
		t.Error("IPv6 prefix accepted with an IPv4 next hop")
	}
}

func TestOpenCapabilities(t *testing.T) {
	raw, err := Speaker{AS: 4200000000, RouterID: netip.MustParseAddr("192.0.2.1")}.openMessage()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := bgp.ParseBGPMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	o := msg.Body.(*bgp.BGPOpen)
	if o.MyAS != asTrans || o.HoldTime != 90 || o.ID != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("OPEN AS %d hold %d id %v", o.MyAS, o.HoldTime, o.ID)
	}
	var mp, as4, gr bool
	for _, p := range o.OptParams {
		for _, c := range p.(*bgp.OptionParameterCapability).Capability {
			switch c := c.(type) {
			case *bgp.CapMultiProtocol:
				mp = c.CapValue == bgp.RF_IPv4_UC
			case *bgp.CapFourOctetASNumber:
				as4 = c.CapValue == 4200000000
			case *bgp.CapGracefulRestart:
				gr = len(c.Tuples) == 1 && c.Tuples[0].AFI == bgp.AFI_IP && c.Tuples[0].SAFI == bgp.SAFI_UNICAST
			}
		}
	}
	if !mp || !as4 || !gr {
		t.Errorf("capabilities: multiprotocol IPv4 %v, 4-byte AS %v, graceful restart IPv4 %v", mp, as4, gr)
	}
	if p, err := parseOpen(raw[headerLen:]); err != nil || p.as != 4200000000 {
		t.Errorf("parseOpen: %+v, %v", p, err)
	}
}

// TestSessionOverLoopback runs two feeders against each other on
// loopback: one listens and sends a feed, the other dials and counts it.
func TestSessionOverLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	feed, err := NewFeed(prefixes(5000), netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	sender := Speaker{AS: 64512, RouterID: netip.MustParseAddr("192.0.2.1"), HoldTime: 3}
	receiver := Speaker{AS: 64512, RouterID: netip.MustParseAddr("192.0.2.2")}

	accepted := make(chan error, 1)
	go func() {
		sess, err := sender.Accept(ln)
		if err == nil {
			defer sess.Close()
			err = sess.Send(feed.Stream())
			<-sess.Done() // until the receiver closes
		}
		accepted <- err
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	sess, err := receiver.Dial(ctx, func(ctx context.Context) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}, 100*time.Millisecond, make(chan struct{}, 1))
	if err != nil {
		t.Fatal(err)
	}
	if sess.HoldTime != 3*time.Second || sess.PeerRouterID != sender.RouterID {
		t.Errorf("negotiated hold %v with %v", sess.HoldTime, sess.PeerRouterID)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, eor := sess.Received()
		if n == 5000 && eor {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d prefixes, End-of-RIB %v", n, eor)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Outlive the hold time: keepalives must keep both sides up.
	time.Sleep(3500 * time.Millisecond)
	if err := sess.Err(); err != nil {
		t.Fatalf("session dropped: %v", err)
	}
	sess.Close()
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
}
