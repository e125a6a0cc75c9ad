package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/e2e/harness"
)

// racks6Etcd is the IPv6 racks lab's etcd, on the router's br-a address.
const racks6Etcd = "http://[fd00:1::fe]:2379"

// racks6Pool is the IPv6 VXLAN pool of the IPv6 racks lab.
var racks6Pool = netip.MustParsePrefix("fd10::/112")

func nodeAddr6(i int) string { return fmt.Sprintf("fd00:%d::%d", rack(i), i) }

// newRacksLab6 is the racks lab over an IPv6 underlay: three petrel nodes
// in two IPv6 subnets joined by a router that also runs etcd (on IPv6),
// and an IPv6 VXLAN pool with vxlanMode. node3 is IPv6-only (IP=none);
// node1 and node2 also have IPv4 addresses, for BGP's router ID and
// sessions, and exchange their IPv6 blocks over an IPv6 session
// (node-specific BGPPeers; the node-to-node mesh is off, so the lab does
// not depend on which families the mesh carries).
//
//	node1 fd00:1::1 10.1.0.1 ┐            ┌ node3 fd00:2::3
//	node2 fd00:1::2 10.1.0.2 ┴ br-a ─ router ─ br-b
//	                         fd00:1::fe     fd00:2::fe
func newRacksLab6(t *testing.T, vxlanMode string) *racksLab {
	r, lab := newRacksRouter(t, racks6Etcd, dataplane.VXLANDeviceV6)
	for _, br := range []struct{ name, cidr string }{{"br-a", "fd00:1::fe/64"}, {"br-b", "fd00:2::fe/64"}} {
		lab.Bridge(r.router, br.name, br.cidr)
		r.router.MustRun(t, "ip", "link", "set", br.name, "type", "bridge", "mcast_snooping", "0") // or NDP is filtered
	}
	r.router.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	r.startEtcd(t)
	r.racksApply(t, fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv6-ippool}
spec: {cidr: %s, blockSize: 122, vxlanMode: %s, ipipMode: Never, nodeSelector: all()}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false, asNumber: 64512}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: node1-node2}
spec: {node: node1, peerIP: "%s", asNumber: 64512}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: node2-node1}
spec: {node: node2, peerIP: "%s", asNumber: 64512}
`, racks6Pool, vxlanMode, nodeAddr6(2), nodeAddr6(1)))

	for i := 1; i <= 3; i++ {
		n := r.attachNode(t, i, nodeAddr6(i)+"/64", "fd00:1::fe", "fd00:2::fe")
		ipv4 := "IP=none"
		if i <= 2 {
			n.MustRun(t, "ip", "addr", "add", nodeAddr(i)+"/24", "dev", "eth1")
			// An IPv4 default route, as a node has: proxy ARP answers a
			// dual-stack pod for 169.254.1.1 only when it routes out.
			n.MustRun(t, "ip", "route", "add", "default", "via", "10.1.0.254")
			ipv4 = "IP=" + nodeAddr(i) + "/24"
		}
		r.nodes = append(r.nodes, startPetrelFromDatastore(t, lab, n,
			"NODENAME="+n.Name, ipv4, "IP6="+nodeAddr6(i)+"/64", "CALICO_ROUTER_ID=hash",
			"PETREL_IPV6_FORWARDING=Enabled", "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+racks6Etcd))
	}
	return r
}

// node reads node i's Node from the datastore.
func (r *racksLab) node(t *testing.T, i int) *datastore.Node {
	t.Helper()
	out, err := r.router.Run("env", "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+r.etcdURL, petrelBin, "get", "node", fmt.Sprintf("node%d", i), "-o", "json")
	if err != nil {
		t.Fatalf("get node%d: %v\n%s", i, err, out)
	}
	var n datastore.Node
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		t.Fatalf("node%d: %v\n%s", i, err, out)
	}
	return &n
}

// tunnel6 waits for node i's vxlan-v6.calico and returns its tunnel
// address and MAC as the node published them, after checking that the
// device carries them, with MTU 1500-70, and that the node has no
// vxlan.calico (there is no IPv4 VXLAN pool).
func (r *racksLab) tunnel6(t *testing.T, i int) (netip.Addr, net.HardwareAddr) {
	t.Helper()
	var tunnel netip.Addr
	var mac net.HardwareAddr
	harness.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		n := r.node(t, i)
		var err error
		if tunnel, err = netip.ParseAddr(n.Spec.IPv6VXLANTunnelAddr); err != nil || !racks6Pool.Contains(tunnel) {
			return fmt.Errorf("node%d ipv6VXLANTunnelAddr %q, want an address of %s", i, n.Spec.IPv6VXLANTunnelAddr, racks6Pool)
		}
		if mac, err = net.ParseMAC(n.Spec.VXLANTunnelMACAddrV6); err != nil {
			return fmt.Errorf("node%d vxlanTunnelMACAddrV6 %q", i, n.Spec.VXLANTunnelMACAddrV6)
		}
		out, err := r.nodes[i-1].Run("ip", "-d", "-6", "addr", "show", "dev", r.device)
		if err != nil {
			return fmt.Errorf("node%d: %s: %v", i, r.device, err)
		}
		for _, want := range []string{"mtu 1430", "link/ether " + mac.String(), "vxlan id 4096 local " + nodeAddr6(i), "dstport 4789", "inet6 " + tunnel.String() + "/128"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("node%d %s lacks %q:\n%s", i, r.device, want, out)
			}
		}
		return nil
	}, "node%d's IPv6 VXLAN endpoint", i)
	if !slices.Equal(mac, dataplane.VTEPMACV6(fmt.Sprintf("node%d", i))) {
		t.Errorf("node%d publishes MAC %s, want Felix's %s", i, mac, dataplane.VTEPMACV6(fmt.Sprintf("node%d", i)))
	}
	if out, err := r.nodes[i-1].Run("ip", "link", "show", dataplane.VXLANDevice); err == nil {
		t.Errorf("node%d has %s without an IPv4 VXLAN pool:\n%s", i, dataplane.VXLANDevice, out)
	}
	return tunnel, mac
}

// TestDataplaneVXLANIPv6CrossSubnet is issue #15's "IPv6 CrossSubnet over a
// router": with an IPv6 VXLAN pool in CrossSubnet, each IPv6-only node
// gets vxlan-v6.calico (VNI 4096, port 4789, its IPv6 address as the VTEP,
// MTU 1430, a tunnel address from the pool under calico-node's handle and
// Felix's MAC, both on its Node); node3's block is routed at node1 via
// node3's tunnel address onlink on vxlan-v6.calico, node2's (same subnet)
// directly via node2's address from BGP; every IPv6 pod pings every other
// without loss, and only the cross-subnet traffic leaves through
// vxlan-v6.calico. Always puts the same-subnet traffic in the tunnel too.
func TestDataplaneVXLANIPv6CrossSubnet(t *testing.T) {
	for _, tt := range []struct {
		mode       string
		sameSubnet bool // encapsulated?
	}{
		{"CrossSubnet", false},
		{"Always", true},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			r := newRacksLab6(t, tt.mode)
			tunnels := make([]netip.Addr, 3)
			macs := make([]net.HardwareAddr, 3)
			for i := 1; i <= 3; i++ {
				tunnels[i-1], macs[i-1] = r.tunnel6(t, i)
			}
			r.addPods(t, "--ipv4=false", "--ipv6")
			r.pingAll(t)

			// node1's routes: node3's block through the tunnel, node2's
			// through the tunnel only in Always.
			blocks := make([]netip.Prefix, 3)
			for i, a := range r.addrs {
				blocks[i] = netip.MustParsePrefix(a + "/122").Masked()
			}
			node1 := r.nodes[0]
			cross := node1.MustRun(t, "ip", "-6", "route", "show", blocks[2].String())
			if want := fmt.Sprintf("%s via %s dev %s proto 80 metric 1024 onlink", blocks[2], tunnels[2], r.device); !strings.Contains(cross, want) {
				t.Errorf("node1's route to node3's block:\n%s\nwant %q", cross, want)
			}
			same := node1.MustRun(t, "ip", "-6", "route", "show", blocks[1].String())
			want := fmt.Sprintf("via %s dev eth1", nodeAddr6(2))
			if tt.sameSubnet {
				want = fmt.Sprintf("via %s dev %s", tunnels[1], r.device)
			}
			if !strings.Contains(same, want) {
				t.Errorf("node1's route to node2's block:\n%s\nwant %q", same, want)
			}
			if neigh := node1.MustRun(t, "ip", "-6", "neigh", "show", "dev", r.device); !strings.Contains(neigh, tunnels[2].String()+" lladdr "+macs[2].String()+" PERMANENT") {
				t.Errorf("node1's NDP entries on %s:\n%s", r.device, neigh)
			}
			if fdb := node1.MustRun(t, "bridge", "fdb", "show", "dev", r.device); !strings.Contains(fdb, macs[2].String()+" dst "+nodeAddr6(3)) {
				t.Errorf("node1's FDB on %s:\n%s", r.device, fdb)
			}

			if got := r.encapsulated(t, 1, 2); got != tt.sameSubnet {
				t.Errorf("%s: same-subnet IPv6 traffic encapsulated = %v, want %v", tt.mode, got, tt.sameSubnet)
			}
			for _, p := range [][2]int{{1, 3}, {3, 1}, {2, 3}} {
				if !r.encapsulated(t, p[0], p[1]) {
					t.Errorf("%s: cross-subnet IPv6 traffic node%d -> node%d not through %s", tt.mode, p[0], p[1], r.device)
				}
			}
			// The tunnel addresses reach each other across the router.
			node1.MustRun(t, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "-I", tunnels[0].String(), tunnels[2].String())
		})
	}
}

// TestDataplaneVXLANDualStack: an IPv4 VXLAN pool (Always) added beside
// the IPv6 one (CrossSubnet) gives the dual-stack nodes vxlan.calico over
// their IPv4 addresses beside vxlan-v6.calico, each with its own tunnel
// address on the Node, and the IPv6-only node none; a dual-stack pod's
// IPv4 traffic to its same-subnet neighbour enters vxlan.calico (Always)
// while its IPv6 traffic goes direct, in neither tunnel (CrossSubnet).
func TestDataplaneVXLANDualStack(t *testing.T) {
	r := newRacksLab6(t, "CrossSubnet")
	tunnels6 := make([]netip.Addr, 3)
	for i := 1; i <= 3; i++ {
		tunnels6[i-1], _ = r.tunnel6(t, i)
	}
	r.racksApply(t, `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 192.168.0.0/16, blockSize: 26, vxlanMode: Always, nodeSelector: all()}
`)
	for i := 1; i <= 2; i++ {
		harness.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
			n := r.node(t, i)
			tunnel, err := netip.ParseAddr(n.Spec.IPv4VXLANTunnelAddr)
			if err != nil || !tunnel.Is4() || n.Spec.IPv6VXLANTunnelAddr != tunnels6[i-1].String() {
				return fmt.Errorf("node%d tunnel addresses %q and %q, want an IPv4 one and %s kept", i, n.Spec.IPv4VXLANTunnelAddr, n.Spec.IPv6VXLANTunnelAddr, tunnels6[i-1])
			}
			for dev, want := range map[string][]string{
				dataplane.VXLANDevice:   {"mtu 1450", "vxlan id 4096 local " + nodeAddr(i), "inet " + tunnel.String() + "/32"},
				dataplane.VXLANDeviceV6: {"mtu 1430", "vxlan id 4096 local " + nodeAddr6(i), "inet6 " + tunnels6[i-1].String() + "/128"},
			} {
				out, err := r.nodes[i-1].Run("ip", "-d", "addr", "show", "dev", dev)
				for _, w := range want {
					if err != nil || !strings.Contains(out, w) {
						return fmt.Errorf("node%d %s lacks %q (%v):\n%s", i, dev, w, err, out)
					}
				}
			}
			return nil
		}, "node%d's two VXLAN devices", i)
	}
	if out, err := r.nodes[2].Run("ip", "link", "show", dataplane.VXLANDevice); err == nil {
		t.Errorf("IPv6-only node3 has %s:\n%s", dataplane.VXLANDevice, out)
	}
	if n := r.node(t, 3); n.Spec.IPv4VXLANTunnelAddr != "" {
		t.Errorf("IPv6-only node3 publishes ipv4VXLANTunnelAddr %s", n.Spec.IPv4VXLANTunnelAddr)
	}

	var v4, v6 []string
	for i := 1; i <= 2; i++ {
		pod := r.lab.Node(fmt.Sprintf("pod%d", i))
		out, err := r.workload(i, "add", "--name", "default/"+pod.Name, "--netns", pod.NS, "--ipv6")
		if f := strings.Fields(out); err != nil || len(f) != 2 {
			t.Fatalf("workload add --ipv6 on node%d: %v\n%s", i, err, out)
		} else {
			v4, v6 = append(v4, f[0]), append(v6, f[1])
		}
		r.pods = append(r.pods, pod)
	}
	harness.Eventually(t, 30*time.Second, 500*time.Millisecond, func() error {
		for _, a := range []string{v4[1], v6[1]} {
			if out, err := r.pods[0].Run("ping", "-c", "1", "-W", "1", a); err != nil {
				return fmt.Errorf("pod1 -> pod2 %s: %v %s", a, err, out)
			}
		}
		return nil
	}, "dual-stack pod connectivity")
	if !r.pingThrough(1, dataplane.VXLANDevice, v4[1]) {
		t.Errorf("IPv4 pod traffic to the same subnet not through %s (pool Always)", dataplane.VXLANDevice)
	}
	for _, dev := range []string{dataplane.VXLANDeviceV6, dataplane.VXLANDevice} {
		if r.pingThrough(1, dev, v6[1]) {
			t.Errorf("IPv6 pod traffic to the same subnet went through %s (pool CrossSubnet)", dev)
		}
	}
}
