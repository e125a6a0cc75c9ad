package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/petrel-net/petrel/datastore"
)

// TestLoadBalancerPools: LoadBalancer addresses come only from pools that
// allow that use, whatever their node selector, in blocks affine to
// Calico's virtual load-balancer node that no real node originates; pods
// never get one.
func TestLoadBalancerPools(t *testing.T) {
	lbPool := func(s *datastore.IPPoolSpec) {
		s.AllowedUses = []string{UseLoadBalancer}
		s.NodeSelector = "rack == 'nowhere'"
	}
	c, b := newClient(t,
		mkPool("pods", "10.1.0.0/24", 26),
		mkPool("lb", "10.50.0.0/24", 26, lbPool),
	)
	ctx := testCtx(t)
	lb := AssignArgs{Node: VirtualLoadBalancer, Handle: "lb-abc", Num4: 1, Use: UseLoadBalancer}
	ip := mustAssign(t, c, lb)[0]
	if !netip.MustParsePrefix("10.50.0.0/24").Contains(ip) {
		t.Fatalf("LoadBalancer address %s, want one from the LoadBalancer pool", ip)
	}
	block := getBlock(t, b, blockOf(ip, 26).String())
	if block.Spec.Affinity == nil || *block.Spec.Affinity != "virtual:load-balancer" {
		t.Errorf("block affinity %v, want virtual:load-balancer", block.Spec.Affinity)
	}
	if pod := mustAssign(t, c, AssignArgs{Node: "n1", Handle: "pod", Num4: 1})[0]; !netip.MustParsePrefix("10.1.0.0/24").Contains(pod) {
		t.Errorf("pod address %s, want one from the pod pool", pod)
	}
	blocks, _, _ := b.List(ctx, datastore.KindIPAMBlock)
	affs, _, _ := b.List(ctx, datastore.KindBlockAffinity)
	var bs []*datastore.IPAMBlock
	var as []*datastore.BlockAffinity
	for _, o := range blocks {
		bs = append(bs, o.(*datastore.IPAMBlock))
	}
	for _, o := range affs {
		as = append(as, o.(*datastore.BlockAffinity))
	}
	if own, borrowed := NodeRoutes("n1", bs, as); len(own) != 1 || len(borrowed) != 0 {
		t.Errorf("n1 originates %v and %v, want its pod block only", own, borrowed)
	}

	// A requested address must be in a LoadBalancer pool.
	err := c.AssignIPFor(ctx, AssignArgs{Node: VirtualLoadBalancer, Handle: "lb-x", Use: UseLoadBalancer}, netip.MustParseAddr("10.1.0.200"))
	if err == nil || !strings.Contains(err.Error(), "does not allow LoadBalancer") {
		t.Errorf("LoadBalancer address from a pod pool: %v", err)
	}
	if err := c.AssignIPFor(ctx, AssignArgs{Node: VirtualLoadBalancer, Handle: "lb-y", Use: UseLoadBalancer}, netip.MustParseAddr("10.50.0.77")); err != nil {
		t.Errorf("requested LoadBalancer address: %v", err)
	}
	mustCheck(t, c)
	if pools, err := c.PoolsFor(ctx, UseLoadBalancer); err != nil || len(pools) != 1 || pools["lb"] != netip.MustParsePrefix("10.50.0.0/24") {
		t.Errorf("PoolsFor(LoadBalancer) = %v, %v", pools, err)
	}
	held, err := c.HandlesWithPrefix(ctx, "lb-")
	if err != nil || len(held) != 2 || held["lb-abc"][0] != ip || held["lb-y"][0] != netip.MustParseAddr("10.50.0.77") {
		t.Errorf("HandlesWithPrefix(lb-) = %v, %v", held, err)
	}
	for _, h := range []string{"lb-abc", "lb-y"} {
		if _, err := c.ReleaseByHandle(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := c.HandleAddrs(ctx, "lb-abc"); len(got) != 0 {
		t.Errorf("released handle still holds %v", got)
	}
	mustCheck(t, c)
}

// TestPoolWithoutUsesIsNeverLoadBalancer: Calico's default allowedUses
// (Workload, Tunnel) leaves LoadBalancer out.
func TestPoolWithoutUsesIsNeverLoadBalancer(t *testing.T) {
	c, _ := newClient(t, mkPool("pods", "10.1.0.0/24", 26))
	_, err := c.AutoAssign(testCtx(t), AssignArgs{Node: VirtualLoadBalancer, Handle: "lb-a", Num4: 1, Use: UseLoadBalancer})
	if !errors.Is(err, ErrNoPool) {
		t.Errorf("LoadBalancer address without a LoadBalancer pool: %v, want ErrNoPool", err)
	}
}
