package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// sysctlOf reads a sysctl in n.
func sysctlOf(t *testing.T, n *harness.Node, name string) string {
	t.Helper()
	return strings.TrimSpace(n.MustRun(t, "sysctl", "-n", name))
}

// TestDaemonEnablesIPForwarding is issue #12, item 5: nodes whose namespace
// starts with IPv4 forwarding off, as a fresh host's does. petrel turns it
// on, as calico-node does, so a pod on node1 reaches a pod on node2; on
// node3, started with PETREL_IP_FORWARDING=Disabled, it stays off. IPv6
// forwarding is turned on only where asked (node2).
func TestDaemonEnablesIPForwarding(t *testing.T) {
	c := newClusterLab(t, 0, strings.Replace(seedPool, "vxlanMode: CrossSubnet", "vxlanMode: Never", 1))
	for i := 1; i <= 3; i++ {
		n := c.lab.Node(fmt.Sprintf("node%d", i))
		n.MustRun(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0") // the harness turns IPv4 on for routers
		c.lab.Attach(c.hub, "br0", n, "eth1", fmt.Sprintf("10.0.0.%d/24", i))
		// Proxy ARP answers for the pods' gateway 169.254.1.1 only if the
		// node has a route to it, as real nodes do.
		n.MustRun(t, "ip", "route", "add", "default", "via", "10.0.0.100")
		env := []string{"NODENAME=" + n.Name, fmt.Sprintf("IP=10.0.0.%d", i), "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=" + etcdURL}
		switch i {
		case 2:
			env = append(env, "PETREL_IPV6_FORWARDING=Enabled")
		case 3:
			env = append(env, "PETREL_IP_FORWARDING=Disabled")
		}
		c.nodes = append(c.nodes, startPetrelFromDatastore(t, c.lab, n, env...))
	}
	if got := sysctlOf(t, c.nodes[2].Node, "net.ipv4.ip_forward"); got != "0" {
		t.Errorf("node3 (PETREL_IP_FORWARDING=Disabled): ip_forward = %s, want 0 (left alone)", got)
	}
	for _, n := range c.nodes[:2] {
		if got := sysctlOf(t, n.Node, "net.ipv4.ip_forward"); got != "1" {
			t.Errorf("%s: ip_forward = %s, want 1", n.Name, got)
		}
	}
	for i, want := range []string{"0", "1", "0"} {
		if got := sysctlOf(t, c.nodes[i].Node, "net.ipv6.conf.all.forwarding"); got != want {
			t.Errorf("node%d: net.ipv6.conf.all.forwarding = %s, want %s", i+1, got, want)
		}
	}

	var pods []*harness.Node
	var addrs []string
	for i, n := range c.nodes[:2] {
		pod := c.lab.Node(fmt.Sprintf("pod%d", i+1))
		out, err := n.Run("env", "NODENAME="+n.Name, "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+etcdURL,
			petrelBin, "workload", "add", "--name", "default/"+pod.Name, "--netns", pod.NS)
		if err != nil {
			t.Fatalf("workload add on %s: %v\n%s", n.Name, err, out)
		}
		pods, addrs = append(pods, pod), append(addrs, strings.TrimSpace(out))
	}
	harness.Eventually(t, 30*time.Second, 500*time.Millisecond, func() error {
		out, err := pods[0].Run("ping", "-c", "1", "-W", "1", addrs[1])
		if err != nil {
			return fmt.Errorf("pod1 -> pod2 (%s): %v %s", addrs[1], err, out)
		}
		return nil
	}, "pod1 on node1 reaches pod2 on node2 through both nodes")
}
