package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// TestIgnoredInterfacesLive: node1's interface eth2 holds 192.168.250.1/24
// (inside the pool, so protocol direct's prefix is exported to node2).
// BGPConfiguration ignoredInterfaces [eth*2] withdraws it from node2's FIB
// without a restart or a session reset; removing the field brings it back.
func TestIgnoredInterfacesLive(t *testing.T) {
	c := newClusterLab(t, 2, seedPool)
	node1, node2 := c.nodes[0], c.nodes[1]
	for _, cmd := range [][]string{
		{"ip", "link", "add", "eth2", "type", "veth", "peer", "name", "eth2p"},
		{"ip", "addr", "add", "192.168.250.1/24", "dev", "eth2"},
		{"ip", "link", "set", "eth2", "up"}, {"ip", "link", "set", "eth2p", "up"},
	} {
		if out, err := node1.Run(cmd...); err != nil {
			t.Fatalf("%v: %v %s", cmd, err, out)
		}
	}
	learned := func(want bool, what string) {
		t.Helper()
		harness.Eventually(t, 15*time.Second, 100*time.Millisecond, func() error {
			if _, ok := fib(t, node2.Node)["192.168.250.0/24"]; ok != want {
				return fmt.Errorf("node2 has 192.168.250.0/24: %v, want %v", ok, want)
			}
			return nil
		}, what)
	}
	learned(true, "eth2's prefix exported by protocol direct")
	up, err := sessions(node2)
	if err != nil || up["10.0.0.1"] == nil {
		t.Fatalf("node2-node1 session: %v %v", up, err)
	}
	since := up["10.0.0.1"].Since.AsTime()
	pid := node1.proc.Cmd.Process.Pid

	c.apply(t, "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {ignoredInterfaces: [\"eth*2\"]}\n")
	learned(false, "eth2 ignored live")
	c.petrel(t, "delete", "bgpconfiguration", "default")
	learned(true, "eth2 back when no longer ignored")

	if up, err := sessions(node2); err != nil || up["10.0.0.1"] == nil || !up["10.0.0.1"].Since.AsTime().Equal(since) {
		t.Errorf("the node1 session was reset by an ignoredInterfaces change: %v %v", up["10.0.0.1"], err)
	}
	if node1.proc.Cmd.Process.Pid != pid {
		t.Error("node1's petrel was restarted")
	}
}
