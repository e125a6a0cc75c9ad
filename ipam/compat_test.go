package ipam

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/datastoretest"
)

const seedNode = "wsl-ubuntu20.04"

// TestSeed loads the seed's objects as Calico wrote them (the dump was
// trimmed: no BlockAffinity, and an empty allocations list), checks them,
// allocates on the seed's node and releases again.
func TestSeed(t *testing.T) {
	c, b := newClient(t)
	for _, o := range datastoretest.Seed(t) {
		if _, err := b.Create(testCtx(t), o); err != nil {
			t.Fatal(err)
		}
	}
	seedBlock := netip.MustParsePrefix("192.168.0.192/26")
	before := getBlock(t, b, seedBlock.String())

	// As it is, the seed has exactly three problems: the empty allocations
	// list read as all free leaves 62 ordinals in neither list, the tunnel
	// handle counts an address the block does not hold, and the block's
	// BlockAffinity was trimmed.
	r, err := c.Check(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"ordinal-lost: IPAMBlock 192-168-0-192-26: 62 ordinals neither allocated nor unallocated: 0-1, 3-56, 58-63",
		"handle-count: IPAMHandle vxlan-tunnel-addr-wsl-ubuntu20.04: counts 1 addresses in 192.168.0.192/26, the block holds 0",
		"block-without-affinity: IPAMBlock 192-168-0-192-26: affine to wsl-ubuntu20.04, which has no BlockAffinity wsl-ubuntu20.04-192-168-0-192-26",
	} {
		if !strings.Contains(r.String(), s) {
			t.Errorf("Check lacks %q", s)
		}
	}
	if len(r.Problems) != 3 {
		t.Errorf("Check on the seed:\n%s", r)
	}

	// A live cluster has the affinity; put it back.
	o, _ := datastore.New(datastore.KindBlockAffinity)
	aff := o.(*datastore.BlockAffinity)
	aff.Name = AffinityName(seedNode, seedBlock)
	aff.Spec = datastore.BlockAffinitySpec{State: "confirmed", Node: seedNode, CIDR: seedBlock.String(), Deleted: "false"}
	load(t, b, aff)

	// The node's block hands out its free ordinals head first: 57, 2;
	// then the node claims a new block of the pool.
	var got []netip.Addr
	for _, h := range []string{"k8s-pod-network.a", "k8s-pod-network.b", "k8s-pod-network.c"} {
		got = append(got, mustAssign(t, c, AssignArgs{Node: seedNode, Handle: h, Num4: 1, Attrs: map[string]string{"namespace": "default", "pod": h}})...)
	}
	if !slices.Equal(got[:2], addrs("192.168.0.249", "192.168.0.194")) {
		t.Fatalf("seed block gave %v, want ordinals 57 then 2", got[:2])
	}
	fresh := blockOf(got[2], 26)
	if fresh == seedBlock || !netip.MustParsePrefix("192.168.0.0/16").Contains(got[2]) || got[2] != fresh.Addr() {
		t.Fatalf("third address %s: want ordinal 0 of a new block", got[2])
	}
	if blk := getBlock(t, b, fresh.String()); *blk.Spec.Affinity != "host:"+seedNode {
		t.Errorf("new block affinity %s", *blk.Spec.Affinity)
	}
	if blk := getBlock(t, b, seedBlock.String()); len(blk.Spec.Unallocated) != 0 || len(blk.Spec.Allocations) != 64 || len(blk.Spec.Attributes) != 4 {
		t.Errorf("seed block after two allocations: %+v", blk.Spec)
	}

	// Releasing in the same order returns the ordinals to the tail: the
	// seed block is back to unallocated [57, 2] and its two attributes.
	for _, h := range []string{"k8s-pod-network.a", "k8s-pod-network.b", "k8s-pod-network.c"} {
		if n, err := c.ReleaseByHandle(testCtx(t), h); n != 1 || err != nil {
			t.Fatalf("ReleaseByHandle(%s) = %d, %v", h, n, err)
		}
	}
	after := getBlock(t, b, seedBlock.String())
	if !slices.Equal(after.Spec.Unallocated, []int{57, 2}) || (block{after, seedBlock}).used() != 0 {
		t.Errorf("unallocated %v", after.Spec.Unallocated)
	}
	if !slices.EqualFunc(after.Spec.Attributes, before.Spec.Attributes, func(a, b datastore.AllocationAttribute) bool {
		return *a.HandleID == *b.HandleID && a.Secondary["pod"] == b.Secondary["pod"]
	}) {
		t.Errorf("attributes %+v, want the seed's", after.Spec.Attributes)
	}

	// The tunnel handle's stale count is repaired by releasing it.
	if n, err := c.ReleaseByHandle(testCtx(t), "vxlan-tunnel-addr-"+seedNode); n != 0 || err != nil {
		t.Fatalf("ReleaseByHandle(tunnel) = %d, %v", n, err)
	}
	r, _ = c.Check(testCtx(t))
	if k := r.Kinds(); len(k) != 1 || k[OrdinalLost] != 1 {
		t.Errorf("after repair:\n%s", r)
	}
}
