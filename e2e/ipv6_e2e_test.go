package e2e

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// dualStackPools are an IPv4 pool without encapsulation and an IPv6 pool
// with Calico's default IPv6 block size.
const dualStackPools = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 192.168.0.0/16, blockSize: 26, vxlanMode: Never, ipipMode: Never, nodeSelector: all()}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv6-ippool}
spec: {cidr: "fd00:100::/48", blockSize: 122, vxlanMode: Never, ipipMode: Never, nodeSelector: all()}
`

// node6 is node i's IPv6 address on the lab's segment (fd00:10::/64).
func node6(i int) string { return fmt.Sprintf("fd00:10::%d", i) }

// block6Of is node i's IPv6 block: fd00:100::40/122 for node 1.
func block6Of(i int) string { return fmt.Sprintf("fd00:100::%x/122", i*64) }

// addIPv6 gives node i its IPv6 address on eth1 and in its Node object
// (spec.bgp.ipv6Address), as IP6 does.
func (c *clusterLab) addIPv6(t *testing.T, i int) {
	t.Helper()
	n := c.nodes[i-1]
	n.MustRun(t, "ip", "-6", "addr", "add", node6(i)+"/64", "dev", "eth1", "nodad")
	c.apply(t, fmt.Sprintf("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node%d}\nspec: {bgp: {ipv4Address: \"10.0.0.%d/24\", ipv6Address: \"%s/64\"}}\n", i, i, node6(i)))
}

// claimBlocks makes node i claim its IPv4 and IPv6 blocks by allocating
// one address of each, as a dual-stack pod would.
func (c *clusterLab) claimBlocks(t *testing.T, i int) {
	t.Helper()
	for _, ip := range []string{fmt.Sprintf("192.168.%d.1", i), fmt.Sprintf("fd00:100::%x", i*64+1)} {
		c.petrel(t, "ipam", "allocate", "--node", fmt.Sprintf("node%d", i), "--handle", fmt.Sprintf("pod-%d", i), "--ip", ip)
	}
}

// TestDualStackMesh is issue 15's dual-stack mesh on etcd: three nodes
// with IPv4 and IPv6 BGP addresses have an IPv4 and an IPv6 mesh session
// to each other; each session carries its own family only; every node's
// IPv6 block is a blackhole at home and in every other node's FIB via that
// node's IPv6 address; IPv6 forwarding is on; status and routes show both
// families; a released IPv6 block is withdrawn everywhere.
func TestDualStackMesh(t *testing.T) {
	c := newClusterLab(t, 3, dualStackPools)
	all := []int{1, 2, 3}
	for i := range all {
		c.addIPv6(t, i+1)
		c.claimBlocks(t, i+1)
	}
	others6 := func(i int) []string {
		var out []string
		for _, j := range all {
			if j != i {
				out = append(out, node6(j))
			}
		}
		return out
	}
	want := map[int][]string{}
	for _, i := range all {
		want[i] = append(others(i, all...), others6(i)...)
	}
	c.waitSessions(t, want)

	c.waitRoutesEverywhere(t)
	c.waitBlocksEverywhere(t, fib6, block6Of, node6)
	for i, n := range c.nodes {
		if r := fib6(t, n.Node)[block6Of(i+1)]; r.Type != "blackhole" {
			t.Errorf("node%d: own IPv6 block %s is %+v, want a blackhole with protocol 12", i+1, block6Of(i+1), r)
		}
		if got := strings.TrimSpace(n.MustRun(t, "sysctl", "-n", "net.ipv6.conf.all.forwarding")); got != "1" {
			t.Errorf("node%d: net.ipv6.conf.all.forwarding = %s, want 1 (ipv6Forwarding Auto, the node routes IPv6)", i+1, got)
		}
	}

	// One family per session, and nothing but the node's own block leaves
	// it: every session sends one prefix and receives one.
	up, err := sessions(c.nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	for addr, p := range up {
		if p.PrefixesAdvertised != 1 || p.PrefixesReceived != 1 {
			t.Errorf("node1's session to %s: advertised %d, received %d; want 1 and 1 (its own family's block only)", addr, p.PrefixesAdvertised, p.PrefixesReceived)
		}
	}
	status := c.nodes[0].MustRun(t, petrelBin, "status", "--socket", c.nodes[0].socket)
	v6 := status[strings.Index(status, "IPv6 BGP status"):]
	for _, j := range []int{2, 3} {
		if !strings.Contains(v6, node6(j)) {
			t.Errorf("node1's status has no IPv6 row for %s:\n%s", node6(j), status)
		}
	}
	routes := c.nodes[0].MustRun(t, petrelBin, "routes", "--socket", c.nodes[0].socket)
	if !strings.Contains(routes, block6Of(2)) || !strings.Contains(routes, node6(2)) {
		t.Errorf("node1's routes do not show %s via %s:\n%s", block6Of(2), node6(2), routes)
	}

	// Releasing node2's IPv6 address and its empty block withdraws it.
	c.petrel(t, "ipam", "release", "--node", "node2", "--ip", fmt.Sprintf("fd00:100::%x", 2*64+1), "--release-empty-blocks")
	harness.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		for i, n := range c.nodes {
			if r, ok := fib6(t, n.Node)[block6Of(2)]; ok {
				return fmt.Errorf("node%d still has %s: %+v", i+1, block6Of(2), r)
			}
		}
		return nil
	}, "node2's IPv6 block withdrawn everywhere")
}

// TestKernelIPv6 is kernel sync for IPv6 on nodes without any IPv4
// address: r1 -- node -- r2 over IPv6 links, petrel everywhere. Both
// routers advertise one prefix: one ECMP route with both IPv6 next hops,
// which shrinks in place when r1 withdraws; a static IPv6 route inside the
// export range is learned and advertised, one outside is not; kill -9
// leaves the IPv6 FIB as it was, and the restart sweeps only the stale
// route.
func TestKernelIPv6(t *testing.T) {
	harness.RequireRoot(t)
	lab := harness.New(t)
	r1, r2, node := lab.Node("r1"), lab.Node("r2"), lab.Node("node")
	lab.Link(r1, "eth1", "fd00:201:1::1/64", node, "eth1", "fd00:201:1::2/64")
	lab.Link(r2, "eth1", "fd00:201:2::1/64", node, "eth2", "fd00:201:2::2/64")
	const prefix = "fd00:90::/64"
	router := func(name, id, nodeAddr string, originate ...string) string {
		return petrelConfig(name, id, 65001, []peerSpec{{Address: nodeAddr, AS: 64512}}, originate...)
	}
	p1 := startPetrel(t, lab, r1, router("r1", "10.255.0.1", "fd00:201:1::2", prefix))
	startPetrel(t, lab, r2, router("r2", "10.255.0.2", "fd00:201:2::2", prefix))
	cfg := petrelConfig("node", "10.255.0.9", 64512, []peerSpec{{Address: "fd00:201:1::1", AS: 65001}, {Address: "fd00:201:2::1", AS: 65001}}) + "export: [\"fd00:60::/48\"]\n"
	pn := startPetrel(t, lab, node, cfg)

	harness.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		if gws := fib6(t, node)[prefix].gateways(); !slices.Equal(gws, []string{"fd00:201:1::1", "fd00:201:2::1"}) {
			return fmt.Errorf("%s via %v", prefix, gws)
		}
		return nil
	}, "one IPv6 ECMP route with both next hops")

	mon := startMonitor(t, node, "monitor")
	p1.writeConfig(router("r1", "10.255.0.1", "fd00:201:1::2"))
	if err := p1.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		if gws := fib6(t, node)[prefix].gateways(); !slices.Equal(gws, []string{"fd00:201:2::1"}) {
			return fmt.Errorf("%s via %v", prefix, gws)
		}
		return nil
	}, "IPv6 route shrinks to the remaining next hop")
	if del := mon.deleted(prefix); len(del) > 0 {
		t.Fatalf("the route was deleted on its way to one next hop: %v", del)
	}

	node.MustRun(t, "ip", "-6", "route", "add", "fd00:60:0:1::/64", "via", "fd00:201:2::1", "proto", "static")
	node.MustRun(t, "ip", "-6", "route", "add", "fd00:61::/64", "via", "fd00:201:2::1", "proto", "static")
	hasRoute(t, "r1", p1.Routes, "fd00:60:0:1::/64", "fd00:201:1::2")
	time.Sleep(time.Second)
	lacksRoute(t, "r1", p1.Routes, "fd00:61::/64")

	before := fib6(t, node)
	pn.proc.Kill()
	if after := fib6(t, node); len(after) != len(before) {
		t.Fatalf("kill -9 changed the IPv6 FIB: %d routes before, %d after", len(before), len(after))
	}
	node.MustRun(t, "ip", "-6", "route", "add", "fd00:92::/64", "via", "fd00:201:1::1", "proto", "12")
	mon = startMonitor(t, node, "monitor2")
	pn.start()
	harness.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		if _, ok := fib6(t, node)["fd00:92::/64"]; ok {
			return fmt.Errorf("stale IPv6 route still installed")
		}
		return nil
	}, "stale IPv6 route swept after End-of-RIB")
	if del := mon.deleted(prefix); len(del) > 0 {
		t.Fatalf("restart deleted a still-valid IPv6 route: %v", del)
	}
	if gws := fib6(t, node)[prefix].gateways(); !slices.Equal(gws, []string{"fd00:201:2::1"}) {
		t.Fatalf("after restart %s via %v", prefix, gws)
	}
}
