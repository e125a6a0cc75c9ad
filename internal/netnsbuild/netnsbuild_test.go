//go:build linux

package netnsbuild

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// A two-namespace topology built here is what iproute2 sees, and Delete
// leaves nothing.
func TestBuild(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	a, b := fmt.Sprintf("pnb-%d-a", os.Getpid()), fmt.Sprintf("pnb-%d-b", os.Getpid())
	for _, ns := range []string{a, b} {
		if err := Create(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = Delete(ns) })
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(Bridge(a, "br0"))
	must(Up(a, "br0"))
	must(Veth(a, "port1", b, "eth1"))
	must(SetMaster(a, "port1", "br0"))
	must(AddAddr(a, "br0", netip.MustParsePrefix("10.99.0.1/24")))
	must(AddAddr(b, "eth1", netip.MustParsePrefix("10.99.0.2/24")))
	must(AddAddr(b, "eth1", netip.MustParsePrefix("fd99::2/64")))
	for _, e := range [][2]string{{a, "port1"}, {b, "eth1"}} {
		must(Up(e[0], e[1]))
	}
	must(Sysctl(b, "net/ipv4/ip_forward", "1"))

	names, err := List()
	must(err)
	if !slices.Contains(names, a) || !slices.Contains(names, b) {
		t.Fatalf("List() = %v, want %s and %s", names, a, b)
	}
	ipList, err := exec.Command("ip", "netns", "list").CombinedOutput()
	must(err)
	if !strings.Contains(string(ipList), a) {
		t.Errorf("ip netns list does not show %s:\n%s", a, ipList)
	}
	if p, err := GlobalIPv4(b); err != nil || p != netip.MustParsePrefix("10.99.0.2/24") {
		t.Errorf("GlobalIPv4(%s) = %v, %v", b, p, err)
	}
	if has, err := HasDefaultRoute(b); err != nil || has {
		t.Errorf("HasDefaultRoute(%s) = %v, %v; want false", b, has, err)
	}
	out, err := exec.Command("ip", "netns", "exec", b, "sh", "-c",
		"ping -c1 -W2 10.99.0.1 >/dev/null && sysctl -n net.ipv4.ip_forward && ip -o addr show dev eth1 scope global && ip -o link show lo | grep -o LOWER_UP").CombinedOutput()
	if err != nil {
		t.Fatalf("inside %s: %v\n%s", b, err, out)
	}
	for _, want := range []string{"1\n", "10.99.0.2/24", "fd99::2/64", "LOWER_UP"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("inside %s: want %q in:\n%s", b, want, out)
		}
	}
	if strings.Contains(string(out), "brd") || strings.Contains(string(out), "tentative") {
		t.Errorf("addresses differ from ip addr add's (brd, or DAD running):\n%s", out)
	}

	must(Delete(a))
	must(Delete(b))
	if names, _ := List(); slices.Contains(names, a) || slices.Contains(names, b) {
		t.Errorf("after Delete: %v", names)
	}
}
