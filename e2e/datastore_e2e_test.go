package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// clusterLab is petrel nodes (10.0.0.N), optionally a BIRD router, and etcd
// (10.0.0.100) on one L2 segment — a bridge in a "switch" namespace — as a
// small Calico cluster.
type clusterLab struct {
	lab   *harness.Lab
	hub   *harness.Node
	etcd  *harness.Process
	nodes []*petrelNode
	bird  *harness.Bird
	// ipv6: the switch also has fd00:10::100/64 and etcd serves there.
	ipv6 bool
}

const etcdURL = "http://10.0.0.100:2379"

// etcdURL6 is the lab's etcd over IPv6, for nodes without IPv4.
const etcdURL6 = "http://[fd00:10::100]:2379"

// seedPool is the seed's IPPool (the seed's IPAMBlock and handle were
// trimmed in the notes and are not a consistent cluster state).
const seedPool = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 192.168.0.0/16, blockSize: 26, vxlanMode: CrossSubnet, ipipMode: Never, natOutgoing: true, nodeSelector: all(), allowedUses: [Workload, Tunnel]}
`

func newClusterLab(t *testing.T, nodes int, pool string) *clusterLab {
	c := newClusterHub(t, pool, false)
	for i := 1; i <= nodes; i++ {
		n := c.lab.Node(fmt.Sprintf("node%d", i))
		c.lab.Attach(c.hub, "br0", n, "eth1", fmt.Sprintf("10.0.0.%d/24", i))
		c.nodes = append(c.nodes, startPetrelFromDatastore(t, c.lab, n,
			"NODENAME="+n.Name, fmt.Sprintf("IP=10.0.0.%d", i), "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+etcdURL))
	}
	return c
}

// newClusterHub is the lab's switch with etcd serving on it and pool
// applied, without nodes; with ipv6, the switch and etcd are on
// fd00:10::100 too.
func newClusterHub(t *testing.T, pool string, ipv6 bool) *clusterLab {
	harness.RequireRoot(t)
	c := &clusterLab{lab: harness.New(t), ipv6: ipv6}
	c.hub = c.lab.Node("switch")
	c.lab.Bridge(c.hub, "br0", "10.0.0.100/24")
	if ipv6 {
		c.hub.MustRun(t, "ip", "-6", "addr", "add", "fd00:10::100/64", "dev", "br0", "nodad")
	}
	c.startEtcd(t)
	c.apply(t, pool) // routes inside the pool may be advertised
	return c
}

func (c *clusterLab) startEtcd(t *testing.T) {
	dir := filepath.Join(c.lab.Dir(), "etcd")
	urls := etcdURL
	if c.ipv6 {
		urls += "," + etcdURL6
	}
	c.etcd = c.hub.Start(t, "etcd", "etcd", "--data-dir", dir, "--name", "lab",
		"--listen-client-urls", urls, "--advertise-client-urls", urls,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "lab=http://127.0.0.1:2380")
	harness.Eventually(t, 15*time.Second, 100*time.Millisecond, func() error {
		_, err := c.hub.Run(petrelBin, "get", "ippools", "--etcd-endpoints", etcdURL) // any answer means etcd serves
		return err
	}, "etcd serving")
}

// petrel runs a petrel command against the lab's etcd.
func (c *clusterLab) petrel(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.petrelErr(args...)
	if err != nil {
		t.Fatalf("petrel %v: %v", args, err)
	}
	return out
}

func (c *clusterLab) petrelErr(args ...string) (string, error) {
	return c.hub.Run(append([]string{"env", "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=" + etcdURL, petrelBin}, args...)...)
}

func (c *clusterLab) apply(t *testing.T, yaml string) string {
	t.Helper()
	return c.petrel(t, "apply", "-f", writeTemp(t, c, yaml))
}

// sessions returns a node's peers that are Established, by address.
func sessions(p *petrelNode) (map[string]*petrelpb.Peer, error) {
	resp, err := withClient(p, func(cl *clientT) (*petrelpb.ListPeersResponse, error) {
		return cl.ListPeers(bg(), &petrelpb.ListPeersRequest{})
	})
	if err != nil {
		return nil, err
	}
	up := map[string]*petrelpb.Peer{}
	for _, peer := range resp.Peers {
		if peer.State == "Established" {
			up[peer.Address] = peer
		}
	}
	return up, nil
}

// waitSessions waits until node i has exactly the Established peers want.
func (c *clusterLab) waitSessions(t *testing.T, want map[int][]string) {
	t.Helper()
	harness.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		for i, addrs := range want {
			up, err := sessions(c.nodes[i-1])
			if err != nil {
				return err
			}
			var got []string
			for a := range up {
				got = append(got, a)
			}
			if !sameSet(got, addrs) {
				return fmt.Errorf("node%d: established %v, want %v", i, got, addrs)
			}
		}
		return nil
	}, "sessions as expected")
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

func others(i int, all ...int) []string {
	var out []string
	for _, j := range all {
		if j != i {
			out = append(out, fmt.Sprintf("10.0.0.%d", j))
		}
	}
	return out
}

// blockOf is the /26 node i announces (a static route it learns).
func blockOf(i int) string { return fmt.Sprintf("192.168.%d.0/26", i) }

// waitRoutesEverywhere waits until every node has every other node's block
// in its FIB via that node.
func (c *clusterLab) waitRoutesEverywhere(t *testing.T) {
	t.Helper()
	c.waitBlocksEverywhere(t, fib, blockOf, func(j int) string { return fmt.Sprintf("10.0.0.%d", j) })
}

// waitBlocksEverywhere waits until every node's FIB (as list reads it)
// routes every other node j's block(j) via gateway(j).
func (c *clusterLab) waitBlocksEverywhere(t *testing.T, list func(testing.TB, *harness.Node) map[string]fibRoute, block, gateway func(j int) string) {
	t.Helper()
	harness.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		for i, n := range c.nodes {
			f := list(t, n.Node)
			for j := range c.nodes {
				if i == j {
					continue
				}
				r, ok := f[block(j+1)]
				if !ok || strings.Join(r.gateways(), ",") != gateway(j+1) {
					return fmt.Errorf("node%d: %s -> %+v", i+1, block(j+1), r)
				}
			}
		}
		return nil
	}, "every block in every FIB")
}

// TestDatastoreMeshPeersReflectorsAndOutage is issue 4's scenario on a
// real etcd: the full mesh, a global BGPPeer added live, bad BGPPeers,
// route reflectors instead of the mesh, and an etcd outage.
func TestDatastoreMeshPeersReflectorsAndOutage(t *testing.T) {
	c := newClusterLab(t, 4, seedPool)
	all := []int{1, 2, 3, 4}
	c.waitSessions(t, map[int][]string{1: others(1, all...), 2: others(2, all...), 3: others(3, all...), 4: others(4, all...)})
	for i, n := range c.nodes {
		if out, err := n.Run("ip", "route", "add", "blackhole", blockOf(i+1), "proto", "static"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	c.waitRoutesEverywhere(t)
	nodes := c.petrel(t, "get", "nodes", "-o", "wide")
	for i := 1; i <= 4; i++ {
		if !strings.Contains(nodes, fmt.Sprintf("10.0.0.%d/24", i)) {
			t.Errorf("node%d did not register its address:\n%s", i, nodes)
		}
	}

	// A global BGPPeer to a BIRD router: exactly that session is added.
	before, _ := sessions(c.nodes[0])
	birdNode := c.lab.Node("bird")
	c.lab.Attach(c.hub, "br0", birdNode, "eth1", "10.0.0.200/24")
	birdPeers := map[string]string{}
	for i := 1; i <= 4; i++ {
		birdPeers[fmt.Sprintf("node%d", i)] = fmt.Sprintf("10.0.0.%d as 64512", i)
	}
	c.bird = harness.StartBird(t, birdNode, birdConfig("10.0.0.200", 64512, nil, birdPeers))
	c.apply(t, "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 10.0.0.200, asNumber: 64512}\n")
	withTor := func(i int) []string { return append(others(i, all...), "10.0.0.200") }
	c.waitSessions(t, map[int][]string{1: withTor(1), 2: withTor(2), 3: withTor(3), 4: withTor(4)})
	for i := 1; i <= 4; i++ {
		established(t, "bird", c.bird.ProtocolState, fmt.Sprintf("node%d", i))
	}
	after, _ := sessions(c.nodes[0])
	for addr, p := range before {
		if a := after[addr]; a == nil || !a.Since.AsTime().Equal(p.Since.AsTime()) || a.Flaps != 0 {
			t.Errorf("node1's session to %s was reset by adding the BGPPeer: %v -> %v", addr, p.Since.AsTime(), a)
		}
	}
	hasRoute(t, "bird", c.bird.Routes, blockOf(3), "10.0.0.3")

	// Bad input: refused by apply with a named error; a BGPPeer that passes
	// apply but cannot be used (a broken selector) is skipped by every
	// node, reported in status, and disturbs nothing.
	if out, err := c.petrelErr("apply", "-f", writeTemp(t, c, "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: broken}\nspec: {peerIP: 10.0.0.300, asNumber: 64512}\n")); err == nil ||
		!strings.Contains(out, `BGPPeer "broken": spec.peerIP: "10.0.0.300" is not an IP address`) {
		t.Errorf("invalid BGPPeer: err %v, output %s", err, out)
	}
	c.apply(t, "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: bad-selector}\nspec: {peerSelector: \"rack == \", nodeSelector: all()}\n")
	harness.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		out, err := c.nodes[1].Run(petrelBin, "status", "--socket", c.nodes[1].socket)
		if err != nil || !strings.Contains(out, "bad-selector") {
			return fmt.Errorf("status does not report the bad BGPPeer: %v\n%s", err, out)
		}
		return nil
	}, "bad BGPPeer reported")
	c.waitSessions(t, map[int][]string{1: withTor(1), 2: withTor(2), 3: withTor(3), 4: withTor(4)})
	c.petrel(t, "delete", "bgppeer", "bad-selector")
	c.petrel(t, "delete", "bgppeer", "tor")

	// Mesh off, node1 and node2 route reflectors for the rest (Calico's
	// recipe: a cluster id and a label, one BGPPeer selecting the RRs).
	c.apply(t, reflectorRecipe("node1", "ipv4Address: 10.0.0.1/24", "node2", "ipv4Address: 10.0.0.2/24"))
	c.waitSessions(t, map[int][]string{
		1: {"10.0.0.2", "10.0.0.3", "10.0.0.4"}, 2: {"10.0.0.1", "10.0.0.3", "10.0.0.4"},
		3: {"10.0.0.1", "10.0.0.2"}, 4: {"10.0.0.1", "10.0.0.2"},
	})
	c.waitRoutesEverywhere(t) // node3 and node4 reach each other through the reflectors

	// etcd down for 30 s: sessions and FIB stay; the nodes catch up after.
	fibBefore := fib(t, c.nodes[2].Node)
	c.etcd.Kill()
	time.Sleep(30 * time.Second)
	for i, n := range c.nodes {
		up, err := sessions(n)
		if err != nil || len(up) < 2 {
			t.Fatalf("node%d lost sessions during the outage: %v %v", i+1, up, err)
		}
	}
	if f := fib(t, c.nodes[2].Node); len(f) != len(fibBefore) {
		t.Fatalf("node3's FIB changed during the outage: %d -> %d routes", len(fibBefore), len(f))
	}
	c.startEtcd(t)
	c.petrel(t, "delete", "bgpconfiguration", "default") // mesh back on
	c.waitSessions(t, map[int][]string{
		1: others(1, all...), 2: others(2, all...),
		3: {"10.0.0.1", "10.0.0.2", "10.0.0.4"}, 4: {"10.0.0.1", "10.0.0.2", "10.0.0.3"},
	})
}

// reflectorRecipe is Calico's route reflector recipe: the mesh off, the
// given Nodes (pairs of name and their spec.bgp address fields) labelled
// route-reflector with cluster ID 224.0.0.1, and one BGPPeer peering every
// node with them.
func reflectorRecipe(nodeAndAddrs ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n")
	for i := 0; i+1 < len(nodeAndAddrs); i += 2 {
		fmt.Fprintf(&b, "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: %s, labels: {route-reflector: \"true\"}}\nspec: {bgp: {%s, routeReflectorClusterID: 224.0.0.1}}\n",
			nodeAndAddrs[i], nodeAndAddrs[i+1])
	}
	b.WriteString("---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: peer-with-route-reflectors}\nspec: {nodeSelector: all(), peerSelector: route-reflector == 'true'}\n")
	return b.String()
}

func writeTemp(t *testing.T, c *clusterLab, content string) string {
	f := filepath.Join(c.lab.Dir(), fmt.Sprintf("doc-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
