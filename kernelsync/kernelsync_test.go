package kernelsync

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/petrel-net/petrel/bgp"
)

// fakeWriter records ops and fails the ones listed in fail.
type fakeWriter struct {
	ops  []routeOp
	fail map[netip.Prefix]error
}

func (w *fakeWriter) run(ops []routeOp) {
	for i := range ops {
		ops[i].err = w.fail[ops[i].prefix]
		w.ops = append(w.ops, ops[i])
	}
}
func (w *fakeWriter) Close() error { return nil }
func (w *fakeWriter) port() uint32 { return 0 }

func (w *fakeWriter) take() []routeOp {
	ops := w.ops
	w.ops = nil
	slices.SortFunc(ops, func(a, b routeOp) int { return a.prefix.Addr().Compare(b.prefix.Addr()) })
	return ops
}

var (
	pfxA = netip.MustParsePrefix("10.1.0.0/26")
	pfxB = netip.MustParsePrefix("10.1.0.64/26")
	gw1  = netip.MustParseAddr("10.0.0.1")
	gw2  = netip.MustParseAddr("10.0.1.1")
)

// newTestSync is a Sync with two up links, eth1 (10.0.0.2/24) and eth2
// (10.0.1.2/24), and a fake writer: the kernel loop's decisions without a
// kernel.
func newTestSync() (*Sync, *fakeWriter) {
	w := &fakeWriter{fail: map[netip.Prefix]error{}}
	s := newSync(Config{Logger: slog.New(slog.DiscardHandler)}.withDefaults(), w, func(netip.Addr) ([]netlink.Route, error) {
		return nil, unix.ENETUNREACH // no routes beyond the connected ones
	})
	s.dev.setLink(2, linkState{name: "eth1", up: true}, false)
	s.dev.setLink(3, linkState{name: "eth2", up: true}, false)
	s.dev.setAddr(2, netip.MustParsePrefix("10.0.0.2/24"), true)
	s.dev.setAddr(3, netip.MustParsePrefix("10.0.1.2/24"), true)
	return s, w
}

func route(p netip.Prefix, gws ...netip.Addr) bgp.Route {
	r := bgp.Route{Prefix: p}
	for _, gw := range gws {
		r.Paths = append(r.Paths, bgp.Path{NextHop: gw, Peer: gw})
	}
	return r
}

func TestMultipathBecomesOneRouteAndShrinksInPlace(t *testing.T) {
	s, w := newTestSync()
	s.onBGPRoute(route(pfxA, gw1, gw2))
	s.writeDirty()
	ops := w.take()
	if len(ops) != 1 || ops[0].kind != opAdd || len(ops[0].nexthop) != 2 {
		t.Fatalf("ops = %+v, want one add with two next hops", ops)
	}
	if ops[0].nexthop[0] != (nexthop{gw: gw1, ifindex: 2}) || ops[0].nexthop[1] != (nexthop{gw: gw2, ifindex: 3}) {
		t.Errorf("next hops = %+v", ops[0].nexthop)
	}
	s.onBGPRoute(route(pfxA, gw2))
	s.writeDirty()
	if ops := w.take(); len(ops) != 1 || ops[0].kind != opReplace || len(ops[0].nexthop) != 1 {
		t.Fatalf("shrink ops = %+v, want one replace (never a delete first)", ops)
	}
	s.onBGPRoute(bgp.Route{Prefix: pfxA})
	s.writeDirty()
	if ops := w.take(); len(ops) != 1 || ops[0].kind != opDelete {
		t.Fatalf("withdraw ops = %+v", ops)
	}
	if s.fib.installed != 0 || len(s.fib.entries) != 0 {
		t.Errorf("after withdraw: %d installed, entries %v", s.fib.installed, s.fib.entries)
	}
}

func TestFilterSkipsLocalRoutesOwnAddressesAndDownLinks(t *testing.T) {
	s, w := newTestSync()
	local := route(pfxA, gw1)
	local.Paths[0].Local = true
	s.onBGPRoute(local)
	s.onBGPRoute(route(pfxB, netip.MustParseAddr("10.0.0.2"))) // our own address
	s.writeDirty()
	if ops := w.take(); len(ops) != 0 {
		t.Fatalf("programmed %+v", ops)
	}
	s.onBGPRoute(route(pfxB, gw1, gw2))
	s.writeDirty()
	w.take()
	// eth2 goes down: its next hop leaves the set.
	s.dev.setLink(3, linkState{name: "eth2", up: false}, false)
	s.dev.forgetResolutions()
	s.redesireAll()
	s.writeDirty()
	if ops := w.take(); len(ops) != 1 || ops[0].kind != opReplace || len(ops[0].nexthop) != 1 || ops[0].nexthop[0].gw != gw1 {
		t.Fatalf("after link down ops = %+v", ops)
	}
}

func TestNoRewriteWhenKernelAlreadyMatches(t *testing.T) {
	s, w := newTestSync()
	adoptForTest(s, pfxA, nexthop{gw: gw1, ifindex: 2})
	s.onBGPRoute(route(pfxA, gw1))
	s.writeDirty()
	if ops := w.take(); len(ops) != 0 {
		t.Fatalf("rewrote an adopted route that was already right: %+v", ops)
	}
	if s.fib.get(pfxA).has(flagStale) {
		t.Error("adopted route not marked refreshed")
	}
}

func TestGracefulRestartKeepsStaleRoutesUntilItEnds(t *testing.T) {
	s, w := newTestSync()
	adoptForTest(s, pfxA, nexthop{gw: gw1, ifindex: 2})
	s.graceful = true
	s.markDirty(pfxA, s.fib.get(pfxA))
	s.writeDirty()
	if ops := w.take(); len(ops) != 0 {
		t.Fatalf("stale route touched during graceful restart: %+v", ops)
	}
	s.speaker = syncedSpeaker{}
	s.checkRestartDone(func() {})
	s.writeDirty()
	if ops := w.take(); len(ops) != 1 || ops[0].kind != opDelete || ops[0].prefix != pfxA {
		t.Fatalf("after restart ops = %+v, want the stale route deleted", ops)
	}
	if s.Stats.StaleSwept.Load() != 1 {
		t.Errorf("StaleSwept = %d", s.Stats.StaleSwept.Load())
	}
}

func TestForeignRoutesAreNotOverriddenUnlessTheyTookOurs(t *testing.T) {
	s, w := newTestSync()
	w.fail[pfxA] = unix.EEXIST // a connected or operator route holds the key
	s.onBGPRoute(route(pfxA, gw1))
	s.writeDirty()
	if ops := w.take(); len(ops) != 1 || ops[0].kind != opAdd {
		t.Fatalf("ops = %+v, want an exclusive add", ops)
	}
	if e := s.fib.get(pfxA); e.has(flagInstalled) || s.Stats.WriteErrors.Load() != 0 {
		t.Fatal("EEXIST on an exclusive add must leave the foreign route alone, without an error")
	}

	// Our route at pfxB is replaced by someone's static route: take it back.
	delete(w.fail, pfxA)
	s.fib.setInstalled(pfxB, s.fib.entry(pfxB), []nexthop{{gw: gw1, ifindex: 2}})
	s.onBGPRoute(route(pfxB, gw1))
	s.onKernelRoute(netlink.RouteUpdate{Type: unix.RTM_NEWROUTE, Route: netlink.Route{
		Dst: &net.IPNet{IP: net.IP{10, 1, 0, 64}, Mask: net.CIDRMask(26, 32)}, Gw: net.IP{10, 0, 1, 1}, LinkIndex: 3,
		Protocol: unix.RTPROT_STATIC, Table: 254, Type: unix.RTN_UNICAST, Family: unix.AF_INET,
	}})
	s.writeDirty()
	ops := w.take()
	if len(ops) != 1 || ops[0].prefix != pfxB || ops[0].kind != opReplace {
		t.Fatalf("ops = %+v, want pfxB replaced back", ops)
	}
	if s.Stats.Repairs.Load() != 1 || s.learned[pfxB] {
		t.Errorf("repairs = %d, learned = %v", s.Stats.Repairs.Load(), s.learned)
	}
}

// A refresh queued before the last End-of-RIB is taken before the sweep:
// the refreshed route is kept, never deleted and re-added.
func TestRestartSweepTakesQueuedRefreshesFirst(t *testing.T) {
	s, w := newTestSync()
	adoptForTest(s, pfxA, nexthop{gw: gw1, ifindex: 2})
	adoptForTest(s, pfxB, nexthop{gw: gw1, ifindex: 2})
	s.graceful = true
	s.speaker = syncedSpeaker{}
	s.checkRestartDone(func() { s.onBGPRoute(route(pfxA, gw1)) })
	s.writeDirty()
	ops := w.take()
	if len(ops) != 1 || ops[0].prefix != pfxB || ops[0].kind != opDelete {
		t.Fatalf("ops = %+v, want only the unrefreshed pfxB deleted", ops)
	}
}

// A hand-off never waits for a kernel loop that has stopped.
func TestSetExcludedReturnsWhenTheLoopIsGone(t *testing.T) {
	s, _ := newTestSync()
	close(s.stopped)
	if err := s.SetExcluded(context.Background(), []netip.Prefix{pfxA}); err == nil {
		t.Fatal("SetExcluded without a running loop returned no error")
	}
}

// adoptForTest puts a route of ours in the table as Adopt finds one.
func adoptForTest(s *Sync, p netip.Prefix, nhs ...nexthop) {
	e := s.fib.entry(p)
	s.fib.setInstalled(p, e, nhs)
	e.flags |= flagStale
}

type syncedSpeaker struct{ Speaker }

func (syncedSpeaker) InitialSyncDone() bool { return true }

func TestNexthopsOfAndPrefixOf(t *testing.T) {
	r := &netlink.Route{Family: unix.AF_INET, MultiPath: []*netlink.NexthopInfo{
		{Gw: net.IP{10, 0, 1, 1}, LinkIndex: 3}, {Gw: net.IP{10, 0, 0, 1}, LinkIndex: 2},
	}}
	if got := nexthopsOf(r); !slices.Equal(got, []nexthop{{gw1, 2}, {gw2, 3}}) {
		t.Errorf("multipath = %+v", got)
	}
	if got := nexthopsOf(&netlink.Route{Gw: net.ParseIP("10.0.0.1"), LinkIndex: 2}); !slices.Equal(got, []nexthop{{gw1, 2}}) {
		t.Errorf("16-byte IPv4 gateway = %+v", got)
	}
	if p, ok := prefixOf(&netlink.Route{Family: unix.AF_INET}); !ok || p.String() != "0.0.0.0/0" {
		t.Errorf("default route = %v", p)
	}
	if p, ok := prefixOf(&netlink.Route{Dst: &net.IPNet{IP: net.ParseIP("fd00::5"), Mask: net.CIDRMask(64, 128)}}); !ok || p.String() != "fd00::/64" {
		t.Errorf("v6 = %v", p)
	}
}

func TestDirectInterfacePatterns(t *testing.T) {
	d := newDevices(DefaultInterfaces, nil)
	for name, want := range map[string]bool{"eth0": true, "cali1234567890a": false, "kube-ipvs0": false, "vxlan.calico": false, "vxlan-v6.calico": false, "tunl0": false, "eth1": true} {
		if got := d.matchInterface(name); got != want {
			t.Errorf("matchInterface(%q) = %v, want %v", name, got, want)
		}
	}
	if newDevices([]string{"eth*"}, nil).matchInterface("ens3") {
		t.Error("no matching pattern must exclude")
	}
	d.setLink(2, linkState{name: "eth0", up: true}, false)
	d.setLink(3, linkState{name: "cali0", up: true}, false)
	d.setLink(4, linkState{name: "eth1", up: false}, false)
	d.setAddr(2, netip.MustParsePrefix("10.0.0.5/24"), true)
	d.setAddr(3, netip.MustParsePrefix("169.254.1.1/32"), true)
	d.setAddr(4, netip.MustParsePrefix("10.9.0.5/24"), true)
	if got := d.directPrefixes(); len(got) != 1 || !got[netip.MustParsePrefix("10.0.0.0/24")] {
		t.Errorf("direct = %v, want only eth0's connected prefix", got)
	}
}

func TestLearnable(t *testing.T) {
	s, _ := newTestSync()
	for _, tt := range []struct {
		r    netlink.Route
		want bool
	}{
		{netlink.Route{Protocol: unix.RTPROT_STATIC, Type: unix.RTN_UNICAST}, true},
		{netlink.Route{Protocol: unix.RTPROT_BOOT, Type: unix.RTN_BLACKHOLE}, true},
		{netlink.Route{Protocol: unix.RTPROT_KERNEL, Type: unix.RTN_UNICAST}, false},
		{netlink.Route{Protocol: 12, Type: unix.RTN_UNICAST}, false},
		{netlink.Route{Protocol: unix.RTPROT_STATIC, Type: unix.RTN_LOCAL}, false},
	} {
		if got := s.learnable(&tt.r); got != tt.want {
			t.Errorf("learnable(proto %d type %d) = %v", tt.r.Protocol, tt.r.Type, got)
		}
	}
}

// TestBatchMessagesParseBack decodes what the batch writer would send.
func TestBatchMessagesParseBack(t *testing.T) {
	w := &batchWriter{protocol: 12, table: 1000}
	var buf []byte
	buf = append(buf, w.appendMessage(nil, 7, &routeOp{prefix: pfxA, kind: opAdd, nexthop: []nexthop{{gw1, 2}}})...)
	buf = append(buf, w.appendMessage(nil, 8, &routeOp{prefix: pfxB, kind: opReplace, nexthop: []nexthop{{gw1, 2}, {gw2, 3}}})...)
	buf = append(buf, w.appendMessage(nil, 9, &routeOp{prefix: pfxB, kind: opDelete})...)
	msgs, err := syscall.ParseNetlinkMessage(buf)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("parse: %v, %d messages", err, len(msgs))
	}
	wantFlags := []uint16{
		unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_EXCL,
		unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_REPLACE,
		unix.NLM_F_REQUEST | unix.NLM_F_ACK,
	}
	for i, m := range msgs {
		if m.Header.Seq != uint32(7+i) || m.Header.Flags != wantFlags[i] {
			t.Errorf("message %d: seq %d flags %#x", i, m.Header.Seq, m.Header.Flags)
		}
		rt := nl.DeserializeRtMsg(m.Data)
		if rt.Protocol != 12 || rt.Dst_len != 26 || rt.Table != unix.RT_TABLE_UNSPEC {
			t.Errorf("message %d: rtmsg %+v", i, rt)
		}
		attrs, _ := nl.ParseRouteAttr(m.Data[unix.SizeofRtMsg:])
		kinds := map[uint16]bool{}
		for _, a := range attrs {
			kinds[a.Attr.Type] = true
		}
		if !kinds[unix.RTA_DST] || !kinds[unix.RTA_TABLE] {
			t.Errorf("message %d lacks dst or table: %v", i, kinds)
		}
		if i == 1 && !kinds[unix.RTA_MULTIPATH] {
			t.Errorf("multipath route without RTA_MULTIPATH")
		}
	}
	if msgs[2].Header.Type != unix.RTM_DELROUTE {
		t.Errorf("delete type = %d", msgs[2].Header.Type)
	}
	if rt := nl.DeserializeRtMsg(msgs[2].Data); rt.Type != unix.RTN_UNSPEC {
		t.Errorf("delete matches only route type %d: it would miss our blackholes", rt.Type)
	}
}

func TestBlackholesForOwnBlocks(t *testing.T) {
	s, w := newTestSync()
	s.replaceSet(&s.blackholes, map[netip.Prefix]bool{pfxA: true})
	s.writeDirty()
	ops := w.take()
	if len(ops) != 1 || ops[0].kind != opAdd || !isBlackhole(ops[0].nexthop) {
		t.Fatalf("ops = %+v, want one blackhole add", ops)
	}
	msg := (&batchWriter{protocol: 12, table: 254}).appendMessage(nil, 1, &ops[0])
	if rt := nl.DeserializeRtMsg(msg[unix.SizeofNlMsghdr:]); rt.Type != unix.RTN_BLACKHOLE {
		t.Errorf("rtmsg type = %d, want blackhole", rt.Type)
	}
	if got := nexthopsOf(&netlink.Route{Type: unix.RTN_BLACKHOLE}); !isBlackhole(got) {
		t.Errorf("kernel blackhole reads back as %+v", got)
	}
	s.replaceSet(&s.blackholes, map[netip.Prefix]bool{})
	s.writeDirty()
	if ops := w.take(); len(ops) != 1 || ops[0].kind != opDelete {
		t.Fatalf("ops = %+v, want the blackhole deleted", ops)
	}
}

func TestExcludedPrefixesBelongToAnotherOwner(t *testing.T) {
	s, w := newTestSync()
	s.onBGPRoute(route(pfxA, gw1))
	s.writeDirty()
	w.take()
	// SetExcluded returns only after our route is gone from the kernel, so
	// the other owner never races it.
	go func() { s.applyExcluded(<-s.excludeReq) }()
	if err := s.SetExcluded(context.Background(), []netip.Prefix{pfxA}); err != nil {
		t.Fatal(err)
	}
	if ops := w.take(); len(ops) != 1 || ops[0].kind != opDelete {
		t.Fatalf("ops when SetExcluded returned = %+v, want our route already removed for the other owner", ops)
	}
	s.replaceSet(&s.excluded, map[netip.Prefix]bool{})
	s.writeDirty()
	if ops := w.take(); len(ops) != 1 || ops[0].kind != opAdd {
		t.Fatalf("ops = %+v, want the BGP route back", ops)
	}
}

func TestRouteWatchDropsOwnEchoesAndParsesTheRest(t *testing.T) {
	w := &batchWriter{protocol: 12, table: 254}
	const ownPort = 4242
	withPort := func(msg []byte, port uint32) []byte {
		binary.NativeEndian.PutUint32(msg[12:16], port)
		return msg
	}
	var b []byte
	b = append(b, withPort(w.appendMessage(nil, 1, &routeOp{prefix: pfxA, kind: opReplace, nexthop: []nexthop{{gw: gw1, ifindex: 2}}}), ownPort)...)
	b = append(b, withPort(w.appendMessage(nil, 2, &routeOp{prefix: pfxB, kind: opReplace, nexthop: []nexthop{{gw: gw1, ifindex: 2}, {gw: gw2, ifindex: 3}}}), 0)...)
	b = append(b, withPort(w.appendMessage(nil, 3, &routeOp{prefix: pfxA, kind: opDelete}), 99)...)
	var got []netlink.RouteUpdate
	forEachRouteUpdate(b, ownPort, func(u netlink.RouteUpdate) bool { got = append(got, u); return true })
	if len(got) != 2 {
		t.Fatalf("got %d updates, want 2 (the own-port echo dropped): %+v", len(got), got)
	}
	if p, _ := prefixOf(&got[0].Route); p != pfxB || got[0].Type != unix.RTM_NEWROUTE || int(got[0].Protocol) != 12 {
		t.Errorf("first update = %v %+v", p, got[0])
	}
	if nhs := nexthopsOf(&got[0].Route); len(nhs) != 2 || nhs[0] != (nexthop{gw: gw1, ifindex: 2}) || nhs[1] != (nexthop{gw: gw2, ifindex: 3}) {
		t.Errorf("multipath next hops = %+v", nhs)
	}
	if p, _ := prefixOf(&got[1].Route); p != pfxA || got[1].Type != unix.RTM_DELROUTE {
		t.Errorf("second update = %v %+v", p, got[1])
	}
	// Port 0 marks the kernel's own changes: never dropped.
	got = nil
	forEachRouteUpdate(b, 0, func(u netlink.RouteUpdate) bool { got = append(got, u); return true })
	if len(got) != 3 {
		t.Errorf("with no own port, got %d updates, want 3", len(got))
	}
}

func TestScanWaitsForWritesToGoQuiet(t *testing.T) {
	s, _ := newTestSync()
	now := time.Now()
	s.lastScan = now.Add(-s.cfg.ScanTime)
	s.lastWrite = now.Add(-10 * time.Millisecond)
	if s.scanDue(now) {
		t.Error("scan due in the middle of a write burst")
	}
	s.lastWrite = now.Add(-scanQuiet)
	if !s.scanDue(now) {
		t.Error("scan not due once writes went quiet")
	}
	s.lastWrite = now
	s.lastScan = now.Add(-scanMaxDelay * s.cfg.ScanTime)
	if !s.scanDue(now) {
		t.Error("an endless burst must not hold the safety net off for ever")
	}
}

// TestServiceRangesAreNeverProgrammed: a route inside a not-programmed
// range (and the range itself) is removed and never installed; one that
// only contains the range is left alone.
func TestServiceRangesAreNeverProgrammed(t *testing.T) {
	s, w := newTestSync()
	svc := netip.MustParsePrefix("10.96.0.0/12")
	inside := netip.MustParsePrefix("10.96.0.10/32")
	wider := netip.MustParsePrefix("10.0.0.0/8")
	for _, p := range []netip.Prefix{svc, inside, wider} {
		s.onBGPRoute(route(p, gw1))
	}
	s.writeDirty()
	if ops := w.take(); len(ops) != 3 {
		t.Fatalf("ops = %+v, want three adds", ops)
	}
	s.notProgrammed = prefixSet([]netip.Prefix{svc})
	s.redesireAll()
	s.writeDirty()
	ops := w.take()
	if len(ops) != 2 || ops[0].kind != opDelete || ops[1].kind != opDelete {
		t.Fatalf("ops = %+v, want the two routes in the Service range deleted", ops)
	}
	s.onBGPRoute(route(netip.MustParsePrefix("10.96.0.11/32"), gw2))
	s.writeDirty()
	if ops := w.take(); len(ops) != 0 {
		t.Errorf("ops = %+v, want none for a new route in the Service range", ops)
	}
}

// TestIPv6RoutesAndCounts: an IPv6 route with two next hops on two links
// is one multipath route, an IPv6 block is a blackhole, and the stats
// count the IPv6 routes among the installed ones.
func TestIPv6RoutesAndCounts(t *testing.T) {
	s, w := newTestSync()
	s.dev.setAddr(2, netip.MustParsePrefix("fd00:1::2/64"), true)
	s.dev.setAddr(3, netip.MustParsePrefix("fd00:2::2/64"), true)
	learned, block := netip.MustParsePrefix("fd00:90::/64"), netip.MustParsePrefix("fd00:100::40/122")
	gw6a, gw6b := netip.MustParseAddr("fd00:1::1"), netip.MustParseAddr("fd00:2::1")
	s.onBGPRoute(route(learned, gw6a, gw6b))
	s.onBGPRoute(route(pfxA, gw1))
	s.replaceSet(&s.blackholes, map[netip.Prefix]bool{block: true})
	s.writeDirty()
	ops := w.take()
	if len(ops) != 3 {
		t.Fatalf("ops = %+v, want three adds", ops)
	}
	byPrefix := map[netip.Prefix]routeOp{}
	for _, op := range ops {
		byPrefix[op.prefix] = op
	}
	if got := byPrefix[learned].nexthop; !slices.Equal(got, []nexthop{{gw: gw6a, ifindex: 2}, {gw: gw6b, ifindex: 3}}) {
		t.Errorf("%s next hops = %+v, want both IPv6 gateways on their links", learned, got)
	}
	if !isBlackhole(byPrefix[block].nexthop) {
		t.Errorf("%s = %+v, want a blackhole", block, byPrefix[block])
	}
	if all, v6 := s.Stats.FIBRoutes.Load(), s.Stats.FIBRoutes6.Load(); all != 3 || v6 != 2 {
		t.Errorf("FIB routes %d, IPv6 %d; want 3 and 2", all, v6)
	}
	s.onBGPRoute(bgp.Route{Prefix: learned})
	s.writeDirty()
	w.take()
	if v6 := s.Stats.FIBRoutes6.Load(); v6 != 1 {
		t.Errorf("IPv6 FIB routes after a withdrawal = %d, want 1", v6)
	}
}
