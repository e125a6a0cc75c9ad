//go:build linux

package dataplane

import (
	"errors"
	"net/netip"
	"slices"
	"sort"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/petrel-net/petrel/internal/netnsbuild"
)

// ipipLab has an IPIP dataplane on the underlay.
type ipipLab struct{ underlayLab[*IPIP] }

func newIPIPLab(t *testing.T) *ipipLab {
	t.Helper()
	return &ipipLab{newUnderlayLab(t, "pdpi", func() (*IPIP, error) {
		return NewIPIP(IPIPConfig{Underlay: netip.MustParseAddr("10.0.0.1")})
	})}
}

// sync runs Sync and returns its writes, sorted.
func (l *ipipLab) sync(tunnel string, routes map[string]string) ([]string, error) {
	c := &countingWriter{tunnelWriter: l.dp.w}
	l.dp.w = c
	defer func() { l.dp.w = c.tunnelWriter }()
	want := map[netip.Prefix]netip.Addr{}
	for b, via := range routes {
		want[netip.MustParsePrefix(b)] = netip.MustParseAddr(via)
	}
	var addr netip.Addr
	if tunnel != "" {
		addr = netip.MustParseAddr(tunnel)
	}
	err := l.dp.Sync(addr, want)
	sort.Strings(c.writes)
	return c.writes, err
}

// Without the ipip module tunl0 cannot exist: Sync says so with
// ErrNoIPIP, which the daemon turns into a named problem (and no IPIP
// routes). With the module, tunl0 is there (or created) and Sync works.
func TestIPIPWithoutTunl0(t *testing.T) {
	l := newIPIPLab(t)
	_, err := l.sync("192.168.0.1", map[string]string{"192.168.1.0/26": "10.0.0.2"})
	if _, lerr := l.h.LinkByName(IPIPDevice); lerr == nil {
		if err != nil {
			t.Fatalf("the kernel has IPIP (tunl0 exists) and Sync failed: %v", err)
		}
		t.Log("this kernel has IPIP: tunl0 exists and Sync used it")
		return
	}
	if !errors.Is(err, ErrNoIPIP) {
		t.Fatalf("Sync without tunl0: %v, want ErrNoIPIP", err)
	}
}

// Sync against a real kernel. This machine has no ipip module, so a veth
// named tunl0 stands in for the device: IPIP uses an existing tunl0
// whatever its type (as felix does), and everything Sync writes — the
// MTU, the /32 tunnel address, the onlink routes via the nodes' addresses
// — is accepted and read back from the kernel. Encapsulation itself is
// verified only where the kernel has IPIP.
func TestIPIPSyncOnStandInTunl0(t *testing.T) {
	l := newIPIPLab(t)
	if err := netnsbuild.Veth(l.ns, IPIPDevice, l.ns, "tunl0peer"); err != nil {
		t.Fatal(err)
	}
	routes := map[string]string{"192.168.1.0/26": "10.0.0.2", "192.168.2.0/26": "172.16.0.3"}
	if got, err := l.sync("192.168.0.1", routes); err != nil || len(got) != 2 {
		t.Fatalf("first Sync: wrote %v, err %v; want the 2 routes", got, err)
	}
	l.check("192.168.0.1/32", "192.168.1.0/26 via 10.0.0.2", "192.168.2.0/26 via 172.16.0.3")
	link, _ := l.h.LinkByName(IPIPDevice)
	if link.Attrs().MTU != 1500-IPIPOverhead || link.Attrs().OperState == netlink.OperDown {
		t.Errorf("tunl0 MTU %d, state %s; want eth0's MTU - 20, up", link.Attrs().MTU, link.Attrs().OperState)
	}
	if got, err := l.sync("192.168.0.1", routes); err != nil || len(got) != 0 {
		t.Errorf("an unchanged resync wrote %v (err %v); want nothing", got, err)
	}

	// Repairs: a route deleted behind petrel's back comes back; a block
	// that moved to another node gets the new gateway; the address follows
	// the Node's; a stale route goes.
	_ = l.h.RouteDel(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("192.168.1.0/26")), Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN})
	routes = map[string]string{"192.168.1.0/26": "10.0.0.2", "192.168.2.0/26": "10.0.0.4"}
	want := []string{"replace 192.168.1.0/26", "replace 192.168.2.0/26"}
	if got, err := l.sync("192.168.0.9", routes); err != nil || !slices.Equal(got, want) {
		t.Errorf("repair wrote %v (err %v), want %v", got, err, want)
	}
	l.check("192.168.0.9/32", "192.168.1.0/26 via 10.0.0.2", "192.168.2.0/26 via 10.0.0.4")

	// The IPIP pools are gone: no routes, no address.
	if _, err := l.sync("", nil); err != nil {
		t.Fatal(err)
	}
	l.check("")
}

// check compares tunl0's IPv4 address and its protocol-80 routes ("P via
// G"), each of which must be onlink.
func (l *ipipLab) check(addr string, routes ...string) {
	l.t.Helper()
	link, err := l.h.LinkByName(IPIPDevice)
	if err != nil {
		l.t.Fatal(err)
	}
	addrs, _ := l.h.AddrList(link, unix.AF_INET)
	var gotAddr []string
	for _, a := range addrs {
		gotAddr = append(gotAddr, a.IPNet.String())
	}
	if want := slices.DeleteFunc([]string{addr}, func(s string) bool { return s == "" }); !slices.Equal(gotAddr, want) {
		l.t.Errorf("tunl0 addresses %v, want %v", gotAddr, want)
	}
	rs, err := l.h.RouteListFiltered(unix.AF_INET, &netlink.Route{LinkIndex: link.Attrs().Index, Protocol: RouteProtocol}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		l.t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		if r.Flags&int(netlink.FLAG_ONLINK) == 0 {
			l.t.Errorf("route %s: not onlink", r)
		}
		got = append(got, r.Dst.String()+" via "+r.Gw.String())
	}
	sort.Strings(got)
	if !slices.Equal(got, routes) {
		l.t.Errorf("tunl0 routes %v, want %v", got, routes)
	}
}
