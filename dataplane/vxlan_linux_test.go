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

// vxlanLab is a namespace with an underlay veth (10.0.0.1/24) and a VXLAN
// endpoint on it.
type vxlanLab struct {
	t  *testing.T
	ns string
	v  *VXLAN
	h  *netlink.Handle // in ns, for the test's own reads and writes
}

func newVXLANLab(t *testing.T) *vxlanLab {
	t.Helper()
	ns := newUnderlayNS(t, "pdpv")
	l := &vxlanLab{t: t, ns: ns}
	err := netnsrun.RunPath(netnsbuild.Path(ns), func() error {
		var err error
		if l.v, err = NewVXLAN(VXLANConfig{Underlay: netip.MustParseAddr("10.0.0.1"), TunnelAddr: netip.MustParseAddr("192.168.0.1"), MAC: VTEPMAC("self")}); err != nil {
			return err
		}
		l.h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.v.Close(); l.h.Close() })
	return l
}

// newUnderlayNS is a namespace (removed at cleanup) whose eth0 holds the
// node address 10.0.0.1/24, the parent of the tunnel devices.
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
	if err := l.v.Sync(remotes); err != nil {
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
	c := &countingWriter{tunnelWriter: l.v.w}
	l.v.w = c
	defer func() { l.v.w = c.tunnelWriter }()
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
	rs, err := l.h.RouteListFiltered(unix.AF_INET, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
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
	link, err := l.h.LinkByName(VXLANDevice)
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
