package nodeaddr

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/petrel-net/petrel/internal/netnsbuild"
)

// hostNS builds a node's namespace, in Calico's (reverse link index) order:
//
//	docker0   172.17.0.1/16 fd17::1/64            (bridge, excluded by default)
//	eth1      192.168.1.5/24 fd00:1::5/64, 2001:db8:1::dead/64 deprecated, link-local
//	eth0      10.0.0.5/24 2001:db8::5/64, link-local; routes to 203.0.113.0/24
//	          via 10.0.0.1 and 2001:db8:ff::/48 via 2001:db8::1
//	lo
//
// with each ethN's veth peer (veth-ethN, excluded) beside it, and returns a
// Host reading it.
func hostNS(t *testing.T) Host {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to build a network namespace")
	}
	ns := fmt.Sprintf("nodeaddr-%d", os.Getpid())
	if err := netnsbuild.Create(ns); err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	t.Cleanup(func() { _ = netnsbuild.Delete(ns) })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, eth := range []string{"eth0", "eth1"} {
		must(netnsbuild.Veth(ns, eth, ns, "veth-"+eth))
		must(netnsbuild.Up(ns, eth))
		must(netnsbuild.Up(ns, "veth-"+eth))
	}
	must(netnsbuild.Bridge(ns, "docker0"))
	for ifName, addrs := range map[string][]string{
		"eth0":    {"10.0.0.5/24", "2001:db8::5/64"},
		"eth1":    {"192.168.1.5/24", "fd00:1::5/64"},
		"docker0": {"172.17.0.1/16", "fd17::1/64"},
	} {
		for _, a := range addrs {
			must(netnsbuild.AddAddr(ns, ifName, netip.MustParsePrefix(a)))
		}
	}
	fd, err := netns.GetFromPath(netnsbuild.Path(ns))
	must(err)
	t.Cleanup(func() { fd.Close() })
	nsh, err := netlink.NewHandleAt(fd)
	must(err)
	t.Cleanup(nsh.Close)
	eth0, err := nsh.LinkByName("eth0")
	must(err)
	eth1, err := nsh.LinkByName("eth1")
	must(err)
	// A deprecated address (preferred lifetime 0), as a renumbered
	// prefix leaves behind: in range of cidr=2001:db8::/32, never chosen.
	must(nsh.AddrAdd(eth1, &netlink.Addr{IPNet: ipNet("2001:db8:1::dead/64"), Flags: unix.IFA_F_NODAD, PreferedLft: 0, ValidLft: 3600}))
	must(nsh.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: ipNet("203.0.113.0/24"), Gw: net.ParseIP("10.0.0.1")}))
	must(nsh.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: ipNet("2001:db8:ff::/48"), Gw: net.ParseIP("2001:db8::1")}))
	return Host{NL: nsh}
}

func ipNet(s string) *net.IPNet {
	p := netip.MustParsePrefix(s)
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Every autodetection method, both families, against real interfaces.
func TestDetectMethods(t *testing.T) {
	h := hostNS(t)
	for _, tc := range []struct {
		family int
		method string
		iface  string
		want   string
	}{
		// first-found: the last link first (Calico's order), past
		// docker0 and the veths, past link-local and deprecated.
		{4, "", "eth1", "192.168.1.5/24"},
		{6, "first-found", "eth1", "fd00:1::5/64"},
		{4, "interface=eth0", "eth0", "10.0.0.5/24"},
		{6, "interface=^eth0$", "eth0", "2001:db8::5/64"},
		{4, "interface=nope, eth1", "eth1", "192.168.1.5/24"},
		// interface= overrides the default exclusions, as in Calico.
		{6, "interface=docker.*", "docker0", "fd17::1/64"},
		{4, "skip-interface=eth1", "eth0", "10.0.0.5/24"},
		{6, "skip-interface=nope,^eth1$", "eth0", "2001:db8::5/64"},
		{4, "cidr=10.0.0.0/8", "eth0", "10.0.0.5/24"},
		{4, "cidr=172.16.0.0/12", "docker0", "172.17.0.1/16"},
		{6, "cidr=2001:db8::/32", "eth0", "2001:db8::5/64"},
		{6, "cidr=fd00:1::/48", "eth1", "fd00:1::5/64"},
		// cidr= has no default exclusions either (Calico's too).
		{6, "cidr=fd00::/8", "docker0", "fd17::1/64"},
		// can-reach=: the kernel's source address for the route.
		{4, "can-reach=203.0.113.7", "eth0", "10.0.0.5/24"},
		{4, "can-reach=192.168.1.77", "eth1", "192.168.1.5/24"},
		{6, "can-reach=2001:db8:ff::7", "eth0", "2001:db8::5/64"},
		{6, "can-reach=fd00:1::77", "eth1", "fd00:1::5/64"},
	} {
		m, err := ParseMethod(tc.family, tc.method)
		if err != nil {
			t.Fatal(err)
		}
		iface, got, err := h.Detect(context.Background(), tc.family, m)
		if err != nil || iface != tc.iface || got.String() != tc.want {
			t.Errorf("IPv%d %q: %s %s %v, want %s %s", tc.family, tc.method, iface, got, err, tc.iface, tc.want)
		}
	}
}

func TestDetectFindsNothing(t *testing.T) {
	h := hostNS(t)
	for _, tc := range []struct {
		family       int
		method, want string
	}{
		{4, "interface=wlan.*", "no interface matches"},
		{6, "cidr=2001:db8:77::/48", "no usable IPv6 address"},
		{4, "can-reach=198.51.100.1", "no route to 198.51.100.1"},
		{6, "can-reach=2001:db8:77::1", "no route to 2001:db8:77::1"},
		{6, "interface=veth-eth0", "no usable IPv6 address"}, // link-local only
	} {
		m, err := ParseMethod(tc.family, tc.method)
		if err != nil {
			t.Fatal(err)
		}
		if _, got, err := h.Detect(context.Background(), tc.family, m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("IPv%d %q: %s %v, want error %q", tc.family, tc.method, got, err, tc.want)
		}
	}
}

// Resolve applies calico-node's rules for each setting and the Node's
// current address.
func TestResolve(t *testing.T) {
	h := hostNS(t)
	stored4, stored6 := netip.MustParsePrefix("10.9.9.9/16"), netip.MustParsePrefix("2001:db8:9::9/64")
	for _, tc := range []struct {
		family                int
		value, method         string
		current               netip.Prefix
		want                  string
		description, wantErrs string
	}{
		{4, "10.0.0.5", "", netip.Prefix{}, "10.0.0.5/24", "length from eth0", ""},
		{4, "10.0.0.5/16", "", stored4, "10.0.0.5/16", "length as given", ""},
		{4, "10.7.7.7", "", netip.Prefix{}, "10.7.7.7/32", "on no interface: /32", ""},
		{6, "2001:db8::5", "", netip.Prefix{}, "2001:db8::5/64", "length from eth0", ""},
		{6, "2001:db8:7::7", "", stored6, "2001:db8:7::7/128", "on no interface: /128", ""},
		{4, "", "", netip.Prefix{}, "192.168.1.5/24", "unset, Node has none: autodetect", ""},
		{4, "", "", stored4, stored4.String(), "unset: keep the Node's", ""},
		{4, "autodetect", "cidr=10.0.0.0/8", stored4, "10.0.0.5/24", "autodetect replaces the Node's", ""},
		{4, "autodetect", "interface=wlan0", stored4, stored4.String(), "autodetect finds nothing: keep the Node's", ""},
		{4, "none", "", netip.Prefix{}, "invalid Prefix", "none: no IPv4", ""},
		{4, "none", "", stored4, stored4.String(), "none: keep the Node's, as calico-node", ""},
		{6, "", "", netip.Prefix{}, "invalid Prefix", "unset: no IPv6", ""},
		{6, "", "", stored6, stored6.String(), "unset: keep the Node's", ""},
		{6, "none", "", stored6, stored6.String(), "none: keep the Node's", ""},
		{6, "autodetect", "can-reach=2001:db8:ff::1", netip.Prefix{}, "2001:db8::5/64", "autodetect", ""},
		{6, "autodetect", "interface=wlan0", netip.Prefix{}, "", "autodetect finds nothing",
			`IP6="autodetect" with IP6_AUTODETECTION_METHOD="interface=wlan0": no interface matches`},
		{4, "", "cidr=10.99.0.0/16", netip.Prefix{}, "", "implicit autodetect finds nothing",
			`IP="" with IP_AUTODETECTION_METHOD="cidr=10.99.0.0/16": no usable IPv4 address`},
	} {
		s, err := Parse(tc.family, tc.value, tc.method)
		if err != nil {
			t.Fatal(err)
		}
		got, err := h.Resolve(context.Background(), s, tc.current)
		if tc.wantErrs != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrs) {
				t.Errorf("%s (IPv%d %q %q): %s %v, want error %q", tc.description, tc.family, tc.value, tc.method, got, err, tc.wantErrs)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("%s (IPv%d %q %q, Node %s): %s %v, want %s", tc.description, tc.family, tc.value, tc.method, tc.current, got, err, tc.want)
		}
	}
}

func TestResolveNode(t *testing.T) {
	h := hostNS(t)
	parse := func(family int, value string) Setting {
		s, err := Parse(family, value, "")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	got, err := h.ResolveNode(context.Background(), parse(4, "none"), parse(6, "autodetect"), Addrs{})
	if err != nil || got.IPv4.IsValid() || got.IPv6.String() != "fd00:1::5/64" {
		t.Errorf("IPv6-only: %+v %v", got, err)
	}
	got, err = h.ResolveNode(context.Background(), parse(4, ""), parse(6, "2001:db8::5"), Addrs{})
	if err != nil || got.IPv4.String() != "192.168.1.5/24" || got.IPv6.String() != "2001:db8::5/64" {
		t.Errorf("dual stack: %+v %v", got, err)
	}
	_, err = h.ResolveNode(context.Background(), parse(4, "none"), parse(6, ""), Addrs{})
	if want := `IP="none" and IP6="" leave the node without a BGP address`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("neither: %v, want %q", err, want)
	}
}
