package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// TestBGPFiltersCommunitiesAndGateways runs Calico's BGP policy objects
// on a real etcd against an eBGP BIRD ToR, and checks each effect in
// BIRD's own view: node1's BGPPeer has a BGPFilter, node2's keeps the
// original next hop; both are gateways for the whole mesh (Calico passes
// pool routes learned over iBGP on to eBGP peers); prefixAdvertisements
// put communities on the wire; an import reject keeps a ToR route out of
// node1's FIB only.
func TestBGPFiltersCommunitiesAndGateways(t *testing.T) {
	c := newClusterLab(t, 3, seedPool)
	for i, n := range c.nodes {
		if out, err := n.Run("ip", "route", "add", "blackhole", blockOf(i+1), "proto", "static"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	c.waitRoutesEverywhere(t)
	tor := c.lab.Node("tor")
	c.lab.Attach(c.hub, "br0", tor, "eth1", "10.0.0.200/24")
	c.bird = harness.StartBird(t, tor, birdConfig("10.0.0.200", 65001, []string{"10.50.0.0/24", "10.60.0.0/24"},
		map[string]string{"node1": "10.0.0.1 as 64512", "node2": "10.0.0.2 as 64512"}))
	c.apply(t, `apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: edge}
spec:
  exportV4:
  - {action: Reject, matchOperator: Equal, cidr: 192.168.1.0/26}
  - {action: Accept, matchOperator: In, cidr: 192.168.0.0/16, operations: [{addCommunity: {value: "65000:7"}}]}
  importV4:
  - {action: Reject, matchOperator: In, cidr: 10.60.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor-node1}
spec: {node: node1, peerIP: 10.0.0.200, asNumber: 65001, filters: [edge]}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor-node2}
spec: {node: node2, peerIP: 10.0.0.200, asNumber: 65001, keepOriginalNextHop: true}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec:
  communities: [{name: gold, value: "65000:300"}]
  prefixAdvertisements: [{cidr: 192.168.3.0/26, communities: [gold, "65000:1:1"]}]
`)
	established(t, "bird", c.bird.ProtocolState, "node1")
	established(t, "bird", c.bird.ProtocolState, "node2")

	from := func(protocol string, want map[string]string, absent ...string) {
		t.Helper()
		harness.Eventually(t, 15*time.Second, 200*time.Millisecond, func() error {
			rs, err := c.bird.RoutesFrom(protocol)
			if err != nil {
				return err
			}
			for prefix, hop := range want {
				if !slices.Contains(rs[prefix], hop) {
					return fmt.Errorf("from %s: %s via %v, want via %s (all: %v)", protocol, prefix, rs[prefix], hop, rs)
				}
			}
			for _, prefix := range absent {
				if _, ok := rs[prefix]; ok {
					return fmt.Errorf("from %s: %s is there, the filter should keep it off", protocol, prefix)
				}
			}
			return nil
		}, "routes from %s", protocol)
	}
	// node1: its own block rejected by the filter; node2's and node3's
	// blocks passed on (the gateway design), next hop node1.
	from("node1", map[string]string{blockOf(2): "10.0.0.1", blockOf(3): "10.0.0.1"}, blockOf(1))
	// node2: no filter; keepOriginalNextHop leaves each owner's address.
	from("node2", map[string]string{blockOf(1): "10.0.0.1", blockOf(2): "10.0.0.2", blockOf(3): "10.0.0.3"})

	all := func(prefix, protocol string) string {
		out, err := c.bird.Cmd("show", "route", "all", "for", prefix, "protocol", protocol)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	harness.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		if out := all("192.168.3.0/26", "node2"); !strings.Contains(out, "(65000,300)") || !strings.Contains(out, "(65000, 1, 1)") {
			return fmt.Errorf("prefixAdvertisements communities not on the wire:\n%s", out)
		}
		if out := all("192.168.2.0/26", "node1"); !strings.Contains(out, "(65000,7)") || strings.Contains(out, "ext_community") {
			return fmt.Errorf("the filter's addCommunity is missing or a marker leaked:\n%s", out)
		}
		return nil
	}, "communities at the ToR")

	// Import: node1 rejects 10.60.0.0/16, node2 takes both ToR routes.
	harness.Eventually(t, 15*time.Second, 200*time.Millisecond, func() error {
		f1, f2 := fib(t, c.nodes[0].Node), fib(t, c.nodes[1].Node)
		_, has50 := f1["10.50.0.0/24"]
		_, has60 := f1["10.60.0.0/24"]
		_, node2has60 := f2["10.60.0.0/24"]
		if !has50 || has60 || !node2has60 {
			return fmt.Errorf("node1 10.50 %v 10.60 %v (want true false); node2 10.60 %v (want true)", has50, has60, node2has60)
		}
		return nil
	}, "import filter in node1's FIB")

	// A BGPPeer naming a BGPFilter that does not exist is skipped (it
	// would be unfiltered) and named in status; other sessions stay.
	c.apply(t, "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor-node3}\nspec: {node: node3, peerIP: 10.0.0.200, asNumber: 65001, filters: [missing]}\n")
	harness.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		out, err := c.nodes[2].Run(petrelBin, "status", "--socket", c.nodes[2].socket)
		if err != nil || !strings.Contains(out, `BGPFilter "missing" is not found`) {
			return fmt.Errorf("status does not name the missing filter: %v\n%s", err, out)
		}
		return nil
	}, "missing filter reported")
	if up, _ := sessions(c.nodes[2]); up["10.0.0.200"] != nil {
		t.Error("node3 peers with the ToR without its filter")
	}
	established(t, "bird", c.bird.ProtocolState, "node1")

	// logSeverityScreen is applied live, the node's own object first, and
	// without a restart.
	pid := c.nodes[0].proc.Cmd.Process.Pid
	for _, step := range []struct{ object, want string }{
		{"apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.node1}\nspec: {logSeverityScreen: Debug}\n", "level=debug"},
		{"apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: node.node1}\nspec: {logSeverityScreen: Warning}\n", "level=warn"},
	} {
		c.apply(t, step.object)
		harness.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
			if !strings.Contains(c.nodes[0].proc.Log(), `msg="log level changed" `+step.want) {
				return fmt.Errorf("node1 did not change its log level to %s", step.want)
			}
			return nil
		}, "log level on node1")
	}
	if strings.Contains(c.nodes[1].proc.Log(), "log level changed") {
		t.Error("node2 changed its log level for node1's BGPConfiguration")
	}
	if c.nodes[0].proc.Exited() || c.nodes[0].proc.Cmd.Process.Pid != pid {
		t.Error("node1's daemon restarted to change its log level")
	}
}
