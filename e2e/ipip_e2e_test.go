package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

const ipipPool = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 192.168.0.0/16, blockSize: 26, vxlanMode: Never, ipipMode: %s, natOutgoing: true, nodeSelector: all(), allowedUses: [Workload, Tunnel]}
`

// TestIPIPPoolWithoutIPIPKernel runs real daemons on etcd with an IPIP
// pool on this machine, whose kernel has no ipip module. Each node still
// gets its IPIP tunnel address as calico-node does (published on its
// Node, distinct, from the pool, IPAM consistent), nothing is handed to a
// tunl0 that cannot exist — the other node's block, the one its tunnel
// address came from, is routed natively from BGP — and status names the
// pool. When the pool stops being IPIP, the addresses are released and
// the problem goes.
func TestIPIPPoolWithoutIPIPKernel(t *testing.T) {
	c := newClusterLab(t, 2, fmt.Sprintf(ipipPool, "Always"))
	tunnels := func() map[string]string {
		t.Helper()
		var nodes []struct {
			Metadata struct{ Name string }
			Spec     struct {
				BGP *struct {
					IPv4IPIPTunnelAddr string `json:"ipv4IPIPTunnelAddr"`
				}
			}
		}
		out := c.petrel(t, "get", "nodes", "-o", "json")
		if err := json.Unmarshal([]byte(out), &nodes); err != nil {
			var list struct{ Items json.RawMessage }
			if json.Unmarshal([]byte(out), &list) != nil || json.Unmarshal(list.Items, &nodes) != nil {
				t.Fatalf("petrel get nodes -o json: %v\n%s", err, out)
			}
		}
		m := map[string]string{}
		for _, n := range nodes {
			if n.Spec.BGP != nil && n.Spec.BGP.IPv4IPIPTunnelAddr != "" {
				m[n.Metadata.Name] = n.Spec.BGP.IPv4IPIPTunnelAddr
			}
		}
		return m
	}
	pool := netip.MustParsePrefix("192.168.0.0/16")
	harness.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		m := tunnels()
		a, b := netip.MustParseAddr(or0(m["node1"])), netip.MustParseAddr(or0(m["node2"]))
		if !pool.Contains(a) || !pool.Contains(b) || a == b {
			return fmt.Errorf("IPIP tunnel addresses %v, want one per node from %s", m, pool)
		}
		return nil
	}, "IPIP tunnel addresses published")
	if out, err := c.petrelErr("ipam", "check"); err != nil || !strings.Contains(out, "no problems") {
		t.Errorf("ipam check: %v\n%s", err, out)
	}
	node2Block := netip.PrefixFrom(netip.MustParseAddr(tunnels()["node2"]), 26).Masked().String()
	harness.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		r, ok := fib(t, c.nodes[0].Node)[node2Block]
		if !ok || strings.Join(r.gateways(), ",") != "10.0.0.2" {
			return fmt.Errorf("node1: %s -> %+v, want natively via 10.0.0.2", node2Block, r)
		}
		return nil
	}, "node2's block routed natively at node1")
	status := func() string {
		out, _ := c.nodes[0].Run(petrelBin, "status", "--socket", c.nodes[0].socket)
		return out
	}
	const problem = "IPPool default-ipv4-ippool (Always): spec.ipipMode: tunl0 does not exist and cannot be created"
	harness.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		if out := status(); !strings.Contains(out, problem) {
			return fmt.Errorf("status does not name the IPIP pool:\n%s", out)
		}
		return nil
	}, "IPIP pool named in status")

	c.apply(t, fmt.Sprintf(ipipPool, "Never"))
	harness.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		if m := tunnels(); len(m) != 0 {
			return fmt.Errorf("tunnel addresses still published: %v", m)
		}
		if out := status(); strings.Contains(out, problem) {
			return fmt.Errorf("status still names the pool")
		}
		return nil
	}, "IPIP tunnel addresses released with the IPIP mode")
	if out, err := c.petrelErr("ipam", "check"); err != nil || !strings.Contains(out, "no problems") {
		t.Errorf("ipam check after release: %v\n%s", err, out)
	}
}

// or0 is s, or the zero address when s is empty.
func or0(s string) string {
	if s == "" {
		return "0.0.0.0"
	}
	return s
}
