package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// TestASNumberChangedLive: the default BGPConfiguration's asNumber goes
// from 64512 to 64600 on running nodes. The sessions that use the node's
// AS come back with the new one — the mesh (still iBGP) and node2's ToR
// session, which BIRD now sees from AS 64600 — while node1's ToR session,
// which has its own localASNumber, is not reset; no daemon restarts.
func TestASNumberChangedLive(t *testing.T) {
	c := newClusterLab(t, 2, seedPool)
	node1, node2 := c.nodes[0], c.nodes[1]
	tor := c.lab.Node("tor")
	c.lab.Attach(c.hub, "br0", tor, "eth1", "10.0.0.200/24")
	c.bird = harness.StartBird(t, tor, birdConfig("10.0.0.200", 65001, nil,
		map[string]string{"node1": "10.0.0.1 as 64999", "node2": "10.0.0.2 external"}))
	c.apply(t, `apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor-node1}
spec: {node: node1, peerIP: 10.0.0.200, asNumber: 65001, localASNumber: 64999}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor-node2}
spec: {node: node2, peerIP: 10.0.0.200, asNumber: 65001}
`)
	established(t, "bird", c.bird.ProtocolState, "node1")
	established(t, "bird", c.bird.ProtocolState, "node2")
	neighborAS := func() string {
		out, _ := c.bird.Cmd("show", "protocols", "all", "node2")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "Neighbor" && f[1] == "AS:" {
				return f[2]
			}
		}
		return ""
	}
	if as := neighborAS(); as != "64512" {
		t.Fatalf("BIRD sees node2 from AS %q, want 64512", as)
	}
	torSince1, err := c.bird.ProtocolSince("node1")
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{node1.proc.Cmd.Process.Pid, node2.proc.Cmd.Process.Pid}

	start := time.Now()
	c.apply(t, "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {asNumber: 64600}\n")
	harness.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		if as := neighborAS(); as != "64600" {
			return fmt.Errorf("BIRD sees node2 from AS %q", as)
		}
		if s, _ := c.bird.ProtocolState("node2"); s != "Established" {
			return fmt.Errorf("BIRD node2 %s", s)
		}
		for i, n := range c.nodes {
			up, err := sessions(n)
			if err != nil {
				return err
			}
			other := fmt.Sprintf("10.0.0.%d", 2-i)
			if p := up[other]; p == nil || !strings.Contains(p.Type, "mesh") {
				return fmt.Errorf("node%d: mesh session to %s not Established: %v", i+1, other, up)
			}
		}
		return nil
	}, "sessions with the new AS")
	t.Logf("new AS applied and every affected session back in %v", time.Since(start).Round(time.Millisecond))

	if s, _ := c.bird.ProtocolSince("node1"); s != torSince1 {
		t.Errorf("node1's ToR session (own localASNumber) was reset: since %q, was %q", s, torSince1)
	}
	if s, _ := c.bird.ProtocolState("node1"); s != "Established" {
		t.Errorf("node1's ToR session %s", s)
	}
	for i, n := range c.nodes {
		if n.proc.Cmd.Process.Pid != pids[i] {
			t.Errorf("node%d's petrel was restarted", i+1)
		}
	}
}
