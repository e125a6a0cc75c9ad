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

// newIPv6ClusterLab starts n nodes on the lab's segment, each with
// fd00:10::i/64 and, when dual, 10.0.0.i/24. Dual-stack nodes run with IP
// and IP6 and bindMode NodeIP (BGP listens on both node addresses only);
// IPv6-only ones have no IPv4 address at all, run with IP=none, IP6 and
// CALICO_ROUTER_ID=hash, and reach etcd over IPv6.
func newIPv6ClusterLab(t *testing.T, n int, dual bool) *clusterLab {
	setup := dualStackPools
	if dual {
		setup += "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {bindMode: NodeIP}\n"
	}
	c := newClusterHub(t, setup, true)
	for i := 1; i <= n; i++ {
		node := c.lab.Node(fmt.Sprintf("node%d", i))
		env := []string{"NODENAME=" + node.Name, "DATASTORE_TYPE=etcdv3", "IP6=" + node6(i)}
		if dual {
			c.lab.Attach(c.hub, "br0", node, "eth1", fmt.Sprintf("10.0.0.%d/24", i))
			node.MustRun(t, "ip", "-6", "addr", "add", node6(i)+"/64", "dev", "eth1", "nodad")
			// Proxy ARP answers pods for 169.254.1.1 only when that address
			// routes out another interface, as on a real node.
			node.MustRun(t, "ip", "route", "add", "default", "via", "10.0.0.100")
			env = append(env, fmt.Sprintf("IP=10.0.0.%d", i), "ETCD_ENDPOINTS="+etcdURL)
		} else {
			c.lab.Attach(c.hub, "br0", node, "eth1", node6(i)+"/64")
			env = append(env, "IP=none", "CALICO_ROUTER_ID=hash", "ETCD_ENDPOINTS="+etcdURL6)
		}
		c.nodes = append(c.nodes, startPetrelFromDatastore(t, c.lab, node, env...))
	}
	return c
}

// addPods puts one pod on every node with `petrel workload add`, with an
// IPv6 address and, when ipv4, an IPv4 one; it returns the pods and their
// addresses by family.
func (c *clusterLab) addPods(t *testing.T, ipv4 bool) (pods []*harness.Node, v4, v6 []string) {
	t.Helper()
	endpoints := etcdURL
	if !ipv4 {
		endpoints = etcdURL6
	}
	for i, n := range c.nodes {
		pod := c.lab.Node(fmt.Sprintf("pod%d", i+1))
		out := n.MustRun(t, "env", "NODENAME="+n.Name, "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+endpoints, petrelBin,
			"workload", "add", "--name", "default/"+pod.Name, "--netns", pod.NS, "--ipv6", fmt.Sprintf("--ipv4=%v", ipv4))
		pods = append(pods, pod)
		for _, a := range strings.Fields(out) {
			if strings.Contains(a, ":") {
				v6 = append(v6, a)
			} else {
				v4 = append(v4, a)
			}
		}
	}
	if len(v6) != len(pods) || ipv4 && len(v4) != len(pods) {
		t.Fatalf("pods got IPv4 %v and IPv6 %v", v4, v6)
	}
	return pods, v4, v6
}

// claimBlocks makes node i claim its IPv6 block and, when ipv4, its IPv4
// block, by allocating one address in each.
func (c *clusterLab) claimBlocks(t *testing.T, i int, ipv4 bool) {
	t.Helper()
	ips := []string{fmt.Sprintf("fd00:100::%x", i*64+1)}
	if ipv4 {
		ips = append(ips, fmt.Sprintf("192.168.%d.1", i))
	}
	for _, ip := range ips {
		c.petrel(t, "ipam", "allocate", "--node", fmt.Sprintf("node%d", i), "--handle", fmt.Sprintf("pod-%d", i), "--ip", ip)
	}
}

// others6 are the IPv6 addresses of the nodes in all but i.
func others6(i int, all ...int) []string {
	var out []string
	for _, j := range all {
		if j != i {
			out = append(out, node6(j))
		}
	}
	return out
}

// TestDualStackMesh is issue 15's dual-stack mesh on etcd: three nodes
// with IP and IP6 have an IPv4 and an IPv6 mesh session to each other;
// each session carries its own family only; every node's IPv6 block is a
// blackhole at home and in every other node's FIB via that node's IPv6
// address; IPv6 forwarding is on; status, routes and metrics show both
// families; a released IPv6 block is withdrawn everywhere; dual-stack pods
// on every node reach each other over both families without loss.
func TestDualStackMesh(t *testing.T) {
	c := newIPv6ClusterLab(t, 3, true)
	all := []int{1, 2, 3}
	for _, i := range all {
		c.claimBlocks(t, i, true)
	}
	want := map[int][]string{}
	for _, i := range all {
		want[i] = append(others(i, all...), others6(i, all...)...)
	}
	c.waitSessions(t, want)

	c.waitRoutesEverywhere(t)
	c.waitBlocksEverywhere(t, fib6, block6Of, node6)
	if ls := c.nodes[0].MustRun(t, "ss", "-Hltn", "sport", "= :179"); !strings.Contains(ls, "10.0.0.1:179") || !strings.Contains(ls, "[fd00:10::1]:179") {
		t.Errorf("bindMode NodeIP: node1 should listen on both its addresses only:\n%s", ls)
	}
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
	v6Status := status[strings.Index(status, "IPv6 BGP status"):]
	for _, j := range []int{2, 3} {
		if !strings.Contains(v6Status, node6(j)) {
			t.Errorf("node1's status has no IPv6 row for %s:\n%s", node6(j), status)
		}
	}
	harness.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		metrics, err := c.nodes[0].Run("curl", "-sf", "http://127.0.0.1:9095/metrics")
		if err != nil {
			return err
		}
		for _, want := range []string{
			`petrel_bgp_sessions{family="ipv4",state="Established"} 2`,
			`petrel_bgp_sessions{family="ipv6",state="Established"} 2`,
			`petrel_rib_routes{family="ipv6"} 4`, // its own block, the two others' and the connected fd00:10::/64
			`petrel_fib_routes{family="ipv6"} 3`, // its blackhole and two routes
		} {
			if !strings.Contains(metrics, want) {
				return fmt.Errorf("no %s in:\n%s", want, grepLines(metrics, "family="))
			}
		}
		return nil
	}, "node1's metrics per family")
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

	// Dual-stack pods: node2's pod claims a new IPv6 block, which reaches
	// the others like the first one did.
	pods, v4, v6 := c.addPods(t, true)
	pingMatrix(t, pods, v4)
	pingMatrix(t, pods, v6)
}

// TestIPv6OnlyMesh: three nodes without any IPv4 address (IP=none,
// CALICO_ROUTER_ID=hash, etcd over IPv6) mesh over IPv6 only, install each
// other's IPv6 blocks, and their IPv6 pods reach each other without loss.
// Then node1 becomes the route reflector (mesh off, Calico's
// peerSelector recipe): node2 and node3 keep only their session to it and
// still learn each other's blocks, with the originator as next hop.
func TestIPv6OnlyMesh(t *testing.T) {
	c := newIPv6ClusterLab(t, 3, false)
	all := []int{1, 2, 3}
	want := map[int][]string{}
	for _, i := range all {
		c.claimBlocks(t, i, false)
		want[i] = others6(i, all...)
		if out := c.nodes[i-1].MustRun(t, "ip", "-4", "addr", "show", "scope", "global"); strings.TrimSpace(out) != "" {
			t.Fatalf("node%d has IPv4 addresses:\n%s", i, out)
		}
	}
	c.waitSessions(t, want)
	c.waitBlocksEverywhere(t, fib6, block6Of, node6)
	if r := fib(t, c.nodes[0].Node); len(r) != 0 {
		t.Errorf("node1 has IPv4 routes of petrel's: %v", r)
	}
	pods, _, v6 := c.addPods(t, false)
	pingMatrix(t, pods, v6)

	c.apply(t, reflectorRecipe("node1", `ipv6Address: "fd00:10::1/64"`))
	c.waitSessions(t, map[int][]string{1: {node6(2), node6(3)}, 2: {node6(1)}, 3: {node6(1)}})
	c.waitBlocksEverywhere(t, fib6, block6Of, node6)
	pingMatrix(t, pods, v6)
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

	waitGateways(t, fib6, node, prefix, 20*time.Second, "fd00:201:1::1", "fd00:201:2::1")
	shrinksInPlace(t, fib6, node, prefix, func() {
		p1.writeConfig(router("r1", "10.255.0.1", "fd00:201:1::2"))
		if err := p1.proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}, "fd00:201:2::1")

	node.MustRun(t, "ip", "-6", "route", "add", "fd00:60:0:1::/64", "via", "fd00:201:2::1", "proto", "static")
	node.MustRun(t, "ip", "-6", "route", "add", "fd00:61::/64", "via", "fd00:201:2::1", "proto", "static")
	hasRoute(t, "r1", p1.Routes, "fd00:60:0:1::/64", "fd00:201:1::2")
	time.Sleep(time.Second)
	lacksRoute(t, "r1", p1.Routes, "fd00:61::/64")

	killRestartAndSweep(t, pn, fib6, "fd00:92::/64", "fd00:201:1::1", []string{prefix})
	if gws := fib6(t, node)[prefix].gateways(); !slices.Equal(gws, []string{"fd00:201:2::1"}) {
		t.Fatalf("after restart %s via %v", prefix, gws)
	}
}
