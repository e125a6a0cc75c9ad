package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// TestIPAMBlocksAreOriginatedAndInstalled: three nodes on etcd each
// allocate an address; each claims a block of the seed's pool, originates
// it and blackholes it, and every other node routes the block to it.
// Releasing the address and the empty block withdraws it everywhere.
func TestIPAMBlocksAreOriginatedAndInstalled(t *testing.T) {
	// No VXLAN here: a tunnel address would keep each node's first block
	// in use, and this test gives a block back.
	c := newClusterLab(t, 3, strings.Replace(seedPool, "vxlanMode: CrossSubnet", "vxlanMode: Never", 1))
	all := []int{1, 2, 3}
	c.waitSessions(t, map[int][]string{1: others(1, all...), 2: others(2, all...), 3: others(3, all...)})

	blocks := map[int]string{}
	for i := 1; i <= 3; i++ {
		out := c.petrel(t, "ipam", "allocate", "--node", fmt.Sprintf("node%d", i), "--handle", fmt.Sprintf("k8s-pod-network.e2e%d", i),
			"--namespace", "default", "--pod", fmt.Sprintf("pod%d", i))
		addr, err := netip.ParseAddr(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("allocate printed %q", out)
		}
		if !netip.MustParsePrefix("192.168.0.0/16").Contains(addr) {
			t.Fatalf("node%d got %s, outside the seed's pool", i, addr)
		}
		block, _ := addr.Prefix(26)
		blocks[i] = block.String()
	}
	if blocks[1] == blocks[2] || blocks[2] == blocks[3] || blocks[1] == blocks[3] {
		t.Fatalf("nodes share a block: %v", blocks)
	}

	harness.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		for i, n := range c.nodes {
			f := fib(t, n.Node)
			for j := 1; j <= 3; j++ {
				r, ok := f[blocks[j]]
				switch {
				case !ok:
					return fmt.Errorf("node%d has no route for node%d's block %s", i+1, j, blocks[j])
				case j == i+1 && (r.Type != "blackhole"):
					return fmt.Errorf("node%d's own block %s is %+v, want a blackhole", j, blocks[j], r)
				case j != i+1 && strings.Join(r.gateways(), ",") != fmt.Sprintf("10.0.0.%d", j):
					return fmt.Errorf("node%d routes node%d's block via %v", i+1, j, r.gateways())
				}
			}
		}
		return nil
	}, "every block originated, blackholed at home and routed everywhere else")

	if out := c.petrel(t, "ipam", "check"); !strings.Contains(out, "no problems") {
		t.Errorf("ipam check:\n%s", out)
	}
	show := c.petrel(t, "ipam", "show", "--show-blocks")
	for _, b := range blocks {
		if !strings.Contains(show, b) {
			t.Errorf("ipam show lacks %s:\n%s", b, show)
		}
	}

	// Release node2's address and its now empty block: gone everywhere.
	c.petrel(t, "ipam", "release", "--handle", "k8s-pod-network.e2e2", "--release-empty-blocks", "--node", "node2")
	harness.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		for i, n := range c.nodes {
			if r, ok := fib(t, n.Node)[blocks[2]]; ok {
				return fmt.Errorf("node%d still has %s: %+v", i+1, blocks[2], r)
			}
		}
		return nil
	}, "released block withdrawn everywhere")
}
