package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// TestBGPPeerReachableBy: an eBGP ToR whose session address (10.99.0.1,
// on its loopback) the node can reach only through the ToR's interface
// address, named in BGPPeer spec.reachableBy. The session comes up over
// petrel's static /32; the ToR then advertises the very /32 and a
// covering /16 with itself as next hop, and the /32 stays petrel's static
// route (kernel sync leaves it alone), so the session keeps its start
// time. Deleting the BGPPeer removes the route.
func TestBGPPeerReachableBy(t *testing.T) {
	c := newClusterLab(t, 1, seedPool)
	node := c.nodes[0]
	tor := c.lab.Node("tor")
	c.lab.Attach(c.hub, "br0", tor, "eth1", "10.0.0.200/24")
	for _, cmd := range [][]string{{"ip", "link", "set", "lo", "up"}, {"ip", "addr", "add", "10.99.0.1/32", "dev", "lo"}} {
		if out, err := tor.Run(cmd...); err != nil {
			t.Fatalf("%v: %v %s", cmd, err, out)
		}
	}
	c.bird = harness.StartBird(t, tor, birdConfig("10.99.0.1", 65001, []string{"10.50.0.0/24", "10.99.0.0/16", "10.99.0.1/32"},
		map[string]string{"node1": "10.0.0.1 as 64512;\n  multihop;\n  source address 10.99.0.1"}))
	c.apply(t, "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {node: node1, peerIP: 10.99.0.1, asNumber: 65001, reachableBy: 10.0.0.200}\n")
	established(t, "bird", c.bird.ProtocolState, "node1")

	staticRoute := func() string {
		out, err := node.Run("ip", "route", "show", "10.99.0.1/32")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	if got := staticRoute(); !strings.HasPrefix(got, "10.99.0.1 via 10.0.0.200") || !strings.Contains(got, "proto 80") {
		t.Fatalf("node1's route to the peer %q, want 10.99.0.1 via 10.0.0.200 proto 80", got)
	}
	var since time.Time
	harness.Eventually(t, 15*time.Second, 200*time.Millisecond, func() error {
		up, err := sessions(node)
		if err != nil {
			return err
		}
		p := up["10.99.0.1"]
		if p == nil {
			return fmt.Errorf("no Established session to 10.99.0.1")
		}
		since = p.Since.AsTime()
		if _, ok := fib(t, node.Node)["10.50.0.0/24"]; !ok {
			return fmt.Errorf("10.50.0.0/24 from the ToR is not in node1's FIB")
		}
		return nil
	}, "session over reachableBy, ToR routes installed")

	// The ToR's own /32 and /16, learned over BGP, never take the session
	// address: it stays on the static route, and the session stays up.
	time.Sleep(3 * time.Second)
	if got := staticRoute(); !strings.HasPrefix(got, "10.99.0.1 via 10.0.0.200") || !strings.Contains(got, "proto 80") {
		t.Errorf("after the ToR advertised 10.99.0.1/32: route %q, want still via 10.0.0.200 proto 80", got)
	}
	if up, err := sessions(node); err != nil || up["10.99.0.1"] == nil || !up["10.99.0.1"].Since.AsTime().Equal(since) {
		t.Errorf("the session to 10.99.0.1 flapped or went down: %v %v", up["10.99.0.1"], err)
	}

	c.petrel(t, "delete", "bgppeer", "tor")
	harness.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		if out, err := node.Run("ip", "route", "show", "proto", "80", "10.99.0.1/32"); err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("reachableBy route still there: %q %v", out, err)
		}
		return nil
	}, "route removed with the BGPPeer")
}
