//go:build linux

package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/petrel-net/petrel/internal/netnsbuild"
	"github.com/petrel-net/petrel/internal/netnsrun"
)

// underlayLab is a namespace with an underlay veth (10.0.0.1/24 and
// fd00::1/64) and the
// dataplane part under test (dp) in it.
type underlayLab[T interface{ Close() }] struct {
	t  *testing.T
	ns string
	dp T
	h  *netlink.Handle // in ns, for the test's own reads and writes
}

func newUnderlayLab[T interface{ Close() }](t *testing.T, prefix string, open func() (T, error)) underlayLab[T] {
	t.Helper()
	l := underlayLab[T]{t: t}
	l.ns, l.dp, l.h = openInUnderlayNS(t, prefix, open)
	return l
}

// vxlanLab has a VXLAN endpoint on the underlay.
type vxlanLab struct{ underlayLab[*VXLAN] }

func newVXLANLab(t *testing.T) *vxlanLab {
	t.Helper()
	return newVXLANLabFor(t, VXLANConfig{Underlay: netip.MustParseAddr("10.0.0.1"), TunnelAddr: netip.MustParseAddr("192.168.0.1"), MAC: VTEPMAC("self")})
}

// newVXLANLabV6 is the lab's IPv6 endpoint: vxlan-v6.calico over fd00::1.
func newVXLANLabV6(t *testing.T) *vxlanLab {
	t.Helper()
	return newVXLANLabFor(t, VXLANConfig{Underlay: netip.MustParseAddr("fd00::1"), TunnelAddr: netip.MustParseAddr("fd10::1"), MAC: VTEPMACV6("self")})
}

func newVXLANLabFor(t *testing.T, cfg VXLANConfig) *vxlanLab {
	t.Helper()
	return &vxlanLab{newUnderlayLab(t, "pdpv", func() (*VXLAN, error) { return NewVXLAN(cfg) })}
}

// openInUnderlayNS makes a new underlay namespace and, inside it, the
// dataplane part under test (open) and a netlink handle for the test's
// own reads and writes; both are closed at cleanup.
func openInUnderlayNS[T interface{ Close() }](t *testing.T, prefix string, open func() (T, error)) (string, T, *netlink.Handle) {
	t.Helper()
	ns := newUnderlayNS(t, prefix)
	var obj T
	var h *netlink.Handle
	err := netnsrun.RunPath(netnsbuild.Path(ns), func() error {
		var err error
		if obj, err = open(); err != nil {
			return err
		}
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { obj.Close(); h.Close() })
	return ns, obj, h
}

// newUnderlayNS is a namespace (removed at cleanup) whose eth0 holds the
// node addresses 10.0.0.1/24 and fd00::1/64, the parent of the tunnel
// devices.
func newUnderlayNS(t *testing.T, prefix string) string {
	t.Helper()
	workloadNeedRoot(t)
	ns := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	if err := netnsbuild.Create(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netnsbuild.Delete(ns) })
	for _, err := range []error{
		netnsbuild.Veth(ns, "eth0", ns, "peer0"),
		netnsbuild.AddAddr(ns, "eth0", netip.MustParsePrefix("10.0.0.1/24")),
		netnsbuild.AddAddr(ns, "eth0", netip.MustParsePrefix("fd00::1/64")),
		netnsbuild.Up(ns, "eth0"),
		netnsbuild.Up(ns, "peer0"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

func (l *vxlanLab) sync(remotes ...Remote) {
	l.t.Helper()
	if err := l.dp.Sync(remotes); err != nil {
		l.t.Fatalf("Sync: %v", err)
	}
}

// countingWriter counts Sync's writes, by kind and key ("set 192.168.1.1").
type countingWriter struct {
	tunnelWriter
	writes []string
}

func (c *countingWriter) NeighSet(n *netlink.Neigh) error {
	c.writes = append(c.writes, "set "+neighKey(n))
	return c.tunnelWriter.NeighSet(n)
}

func (c *countingWriter) NeighDel(n *netlink.Neigh) error {
	c.writes = append(c.writes, "del "+neighKey(n))
	return c.tunnelWriter.NeighDel(n)
}

func (c *countingWriter) RouteReplace(r *netlink.Route) error {
	c.writes = append(c.writes, "replace "+r.Dst.String())
	return c.tunnelWriter.RouteReplace(r)
}

func (c *countingWriter) RouteDel(r *netlink.Route) error {
	c.writes = append(c.writes, "del "+r.Dst.String())
	return c.tunnelWriter.RouteDel(r)
}

func neighKey(n *netlink.Neigh) string {
	if n.Family == unix.AF_BRIDGE {
		return "fdb " + n.HardwareAddr.String()
	}
	return "arp " + n.IP.String()
}

// syncCounting syncs remotes and returns the writes it made, sorted.
func (l *vxlanLab) syncCounting(remotes ...Remote) []string {
	l.t.Helper()
	c := &countingWriter{tunnelWriter: l.dp.w}
	l.dp.w = c
	defer func() { l.dp.w = c.tunnelWriter }()
	l.sync(remotes...)
	sort.Strings(c.writes)
	return c.writes
}

func remote(name, underlay, tunnel string, blocks ...string) Remote {
	r := Remote{Node: name, Underlay: netip.MustParseAddr(underlay), TunnelAddr: netip.MustParseAddr(tunnel), MAC: VTEPMAC(name)}
	for _, b := range blocks {
		r.Blocks = append(r.Blocks, netip.MustParsePrefix(b))
	}
	return r
}

// Sync writes only what changed: a resync with the same remotes writes
// nothing, a new remote gets its entries and routes and no other remote's
// are written again, a moved block is the only route written.
func TestVXLANSyncWritesOnlyTheDifference(t *testing.T) {
	l := newVXLANLab(t)
	a := remote("a", "10.0.0.2", "192.168.1.1", "192.168.1.0/26", "192.168.1.64/26")
	b := remote("b", "10.0.0.3", "192.168.2.1", "192.168.2.0/26")
	if got := l.syncCounting(a, b); len(got) != 7 {
		t.Errorf("first sync wrote %v, want 2 ARP, 2 FDB entries and 3 routes", got)
	}
	if got := l.syncCounting(a, b); len(got) != 0 {
		t.Errorf("an unchanged resync wrote %v; want nothing", got)
	}

	c := remote("c", "10.0.0.4", "192.168.3.1", "192.168.3.0/26")
	want := []string{"replace 192.168.3.0/26", "set arp 192.168.3.1", "set fdb " + c.MAC.String()}
	if got := l.syncCounting(a, b, c); !slices.Equal(got, want) {
		t.Errorf("adding remote c wrote %v, want %v", got, want)
	}

	b.Blocks = append(b.Blocks, a.Blocks[1])
	a.Blocks = a.Blocks[:1]
	want = []string{"replace 192.168.1.64/26"}
	if got := l.syncCounting(a, b, c); !slices.Equal(got, want) {
		t.Errorf("a block moved from a to b: wrote %v, want %v", got, want)
	}
	want = []string{"del 192.168.3.0/26", "del arp 192.168.3.1", "del fdb " + c.MAC.String()}
	if got := l.syncCounting(a, b); !slices.Equal(got, want) {
		t.Errorf("removing remote c wrote %v, want %v", got, want)
	}
	l.checkRoutes("192.168.1.0/26", "192.168.1.64/26", "192.168.2.0/26")
}

// What is removed behind Sync's back is put back by the next Sync, and
// what belongs to no remote any more is removed.
func TestVXLANSyncRepairs(t *testing.T) {
	l := newVXLANLab(t)
	a := remote("a", "10.0.0.2", "192.168.1.1", "192.168.1.0/26")
	b := remote("b", "10.0.0.3", "192.168.2.1", "192.168.2.0/26")
	l.sync(a, b)

	link, err := l.h.LinkByName(VXLANDevice)
	if err != nil {
		t.Fatal(err)
	}
	idx := link.Attrs().Index
	for _, err := range []error{
		l.h.RouteDel(&netlink.Route{LinkIndex: idx, Dst: ipNet(a.Blocks[0]), Table: unix.RT_TABLE_MAIN, Protocol: RouteProtocol}),
		l.h.NeighDel(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, IP: a.TunnelAddr.AsSlice()}),
		// b's ARP entry now points at a wrong MAC.
		l.h.NeighSet(&netlink.Neigh{LinkIndex: idx, State: netlink.NUD_PERMANENT, Type: unix.RTN_UNICAST, IP: b.TunnelAddr.AsSlice(), HardwareAddr: VTEPMAC("x")}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	l.sync(a, b)
	l.checkRoutes("192.168.1.0/26", "192.168.2.0/26")
	l.checkNeighs(unix.AF_INET, "192.168.1.1 "+a.MAC.String(), "192.168.2.1 "+b.MAC.String())

	l.sync(b)
	l.checkRoutes("192.168.2.0/26")
	l.checkNeighs(unix.AF_INET, "192.168.2.1 "+b.MAC.String())
	l.checkNeighs(unix.AF_BRIDGE, "10.0.0.3 "+b.MAC.String())
}

func (l *vxlanLab) checkRoutes(want ...string) {
	l.t.Helper()
	rs, err := l.h.RouteListFiltered(l.dp.family, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		l.t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		if r.Gw == nil || r.Flags&int(netlink.FLAG_ONLINK) == 0 {
			l.t.Errorf("route %s: want via a tunnel address, onlink", r)
		}
		got = append(got, r.Dst.String())
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		l.t.Errorf("routes %v, want %v", got, want)
	}
}

// checkNeighs compares the permanent entries of one family ("IP MAC").
func (l *vxlanLab) checkNeighs(family int, want ...string) {
	l.t.Helper()
	link, err := l.h.LinkByName(l.dp.Device())
	if err != nil {
		l.t.Fatal(err)
	}
	ns, err := l.h.NeighList(link.Attrs().Index, family)
	if err != nil {
		l.t.Fatal(err)
	}
	var got []string
	for _, n := range ns {
		if n.State == netlink.NUD_PERMANENT && n.IP != nil && !n.IP.Equal(net.IPv4zero) {
			got = append(got, fmt.Sprintf("%s %s", n.IP, n.HardwareAddr))
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		l.t.Errorf("family %d entries %v, want %v", family, got, want)
	}
}

// An IPv6 underlay makes vxlan-v6.calico as Felix does: VNI 4096, port
// 4789, the node's IPv6 address as the VTEP source, MTU 1500-70, the /128
// tunnel address beside the kernel's link-local one, NDP and FDB entries
// with IPv6 addresses, remote blocks via the tunnel address onlink; an
// unchanged resync writes nothing (the kernel's IPv6 metric 1024 is the
// route's own), and vxlan.calico beside it is left alone.
func TestVXLANIPv6Device(t *testing.T) {
	l := newVXLANLabV6(t)
	a := remote("a", "fd00::2", "fd10::41", "fd10::40/122")
	b := remote("b", "fd00::3", "fd10::81", "fd10::80/122", "fd10::c0/122")
	a.MAC, b.MAC = VTEPMACV6("a"), VTEPMACV6("b")
	if got := l.syncCounting(a, b); len(got) != 7 {
		t.Errorf("first sync wrote %v, want 2 NDP, 2 FDB entries and 3 routes", got)
	}
	if got := l.syncCounting(a, b); len(got) != 0 {
		t.Errorf("an unchanged resync wrote %v; want nothing", got)
	}
	link, err := l.h.LinkByName(VXLANDeviceV6)
	if err != nil {
		t.Fatal(err)
	}
	vx, ok := link.(*netlink.Vxlan)
	if !ok {
		t.Fatalf("%s is a %s, want vxlan", VXLANDeviceV6, link.Type())
	}
	if vx.VxlanId != VXLANVNI || vx.Port != VXLANPort || !vx.SrcAddr.Equal(net.ParseIP("fd00::1")) || vx.MTU != 1500-VXLANOverheadV6 {
		t.Errorf("device: VNI %d port %d source %s MTU %d; want %d %d fd00::1 %d", vx.VxlanId, vx.Port, vx.SrcAddr, vx.MTU, VXLANVNI, VXLANPort, 1500-VXLANOverheadV6)
	}
	if !slices.Equal(vx.HardwareAddr, VTEPMACV6("self")) || slices.Equal(VTEPMACV6("self"), VTEPMAC("self")) {
		t.Errorf("device MAC %s, want %s (not the IPv4 device's %s)", vx.HardwareAddr, VTEPMACV6("self"), VTEPMAC("self"))
	}
	addrs, err := l.h.AddrList(link, unix.AF_INET6)
	if err != nil {
		t.Fatal(err)
	}
	var global []string
	for _, ad := range addrs {
		if !ad.IP.IsLinkLocalUnicast() {
			global = append(global, ad.IPNet.String())
		}
	}
	if !slices.Equal(global, []string{"fd10::1/128"}) {
		t.Errorf("device addresses %v, want only fd10::1/128 besides link-local", global)
	}
	l.checkRoutes("fd10::40/122", "fd10::80/122", "fd10::c0/122")
	l.checkNeighs(unix.AF_INET6, "fd10::41 "+a.MAC.String(), "fd10::81 "+b.MAC.String())
	l.checkNeighs(unix.AF_BRIDGE, "fd00::2 "+a.MAC.String(), "fd00::3 "+b.MAC.String())

	// Dual stack: vxlan.calico beside it, each keeping its own family.
	err = netnsrun.RunPath(netnsbuild.Path(l.ns), func() error {
		v4, err := NewVXLAN(VXLANConfig{Underlay: netip.MustParseAddr("10.0.0.1"), TunnelAddr: netip.MustParseAddr("192.168.0.1"), MAC: VTEPMAC("self")})
		if err != nil {
			return err
		}
		defer v4.Close()
		return v4.Sync([]Remote{remote("a", "10.0.0.2", "192.168.1.1", "192.168.1.0/26")})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.syncCounting(a, b); len(got) != 0 {
		t.Errorf("a resync after vxlan.calico came up wrote %v; want nothing", got)
	}
	if v4, err := l.h.LinkByName(VXLANDevice); err != nil || v4.Attrs().MTU != 1500-VXLANOverhead {
		t.Errorf("vxlan.calico beside it: %v, %v", v4, err)
	}

	// Removed behind its back, and a remote gone.
	if err := l.h.RouteDel(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(a.Blocks[0]), Table: unix.RT_TABLE_MAIN, Protocol: RouteProtocol}); err != nil {
		t.Fatal(err)
	}
	l.sync(a)
	l.checkRoutes("fd10::40/122")
	l.checkNeighs(unix.AF_INET6, "fd10::41 "+a.MAC.String())
	l.checkNeighs(unix.AF_BRIDGE, "fd00::2 "+a.MAC.String())
}
