package ipam

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/petrel-net/petrel/datastore"
)

func TestNames(t *testing.T) {
	for cidr, want := range map[string]string{
		"192.168.0.192/26": "192-168-0-192-26",
		"10.0.0.0/30":      "10-0-0-0-30",
		"fd00::40/122":     "fd00--40-122",
		"fd00:1:2::/122":   "fd00-1-2---122",
	} {
		if got := BlockName(netip.MustParsePrefix(cidr)); got != want {
			t.Errorf("BlockName(%s) = %s, want %s", cidr, got, want)
		}
	}
	if got := AffinityName("wsl-ubuntu20.04", netip.MustParsePrefix("192.168.0.192/26")); got != "wsl-ubuntu20.04-192-168-0-192-26" {
		t.Errorf("AffinityName = %s", got)
	}
	if got := HandleName("k8s-pod-network.ABC"); got != "k8s-pod-network.abc" {
		t.Errorf("HandleName = %s", got)
	}
}

func TestOrdinals(t *testing.T) {
	for _, tc := range []struct {
		block string
		ord   int
		addr  string
	}{
		{"192.168.0.192/26", 0, "192.168.0.192"},
		{"192.168.0.192/26", 57, "192.168.0.249"},
		{"192.168.0.192/26", 63, "192.168.0.255"},
		{"10.0.0.4/30", 3, "10.0.0.7"},
		{"10.0.0.9/32", 0, "10.0.0.9"},
		{"10.16.0.0/20", 4095, "10.16.15.255"},
		{"fd00::40/122", 0, "fd00::40"},
		{"fd00::40/122", 63, "fd00::7f"},
		{"fd00:0:0:1::/116", 4095, "fd00:0:0:1::fff"},
	} {
		block, addr := netip.MustParsePrefix(tc.block), netip.MustParseAddr(tc.addr)
		if got := addrAt(block, tc.ord); got != addr {
			t.Errorf("addrAt(%s, %d) = %s, want %s", block, tc.ord, got, addr)
		}
		if got, ok := ordinal(block, addr); !ok || got != tc.ord {
			t.Errorf("ordinal(%s, %s) = %d %v, want %d", block, addr, got, ok, tc.ord)
		}
	}
	if _, ok := ordinal(netip.MustParsePrefix("10.0.0.0/26"), netip.MustParseAddr("10.0.0.64")); ok {
		t.Error("ordinal outside the block")
	}
	if n := blockLen(netip.MustParsePrefix("fd00::/122")); n != 64 {
		t.Errorf("blockLen(/122) = %d", n)
	}
}

func TestCandidateBlocks(t *testing.T) {
	pool := netip.MustParsePrefix("10.0.0.0/24")
	order := func(node string) []netip.Prefix { return slices.Collect(candidateBlocks(pool, 26, node)) }
	a := order("node-a")
	if len(a) != 4 {
		t.Fatalf("%d blocks, want 4: %v", len(a), a)
	}
	seen := map[netip.Prefix]bool{}
	for i, b := range a {
		seen[b] = true
		// A walk from a random start, wrapping around.
		if want := (a[0].Addr().As4()[3]/64 + byte(i)) % 4 * 64; b.Addr().As4()[3] != want || b.Bits() != 26 {
			t.Errorf("block %d = %s, want 10.0.0.%d/26", i, b, want)
		}
	}
	if len(seen) != 4 {
		t.Errorf("a block repeats: %v", a)
	}
	if !slices.Equal(a, order("node-a")) {
		t.Error("the order is not a function of the node name")
	}
	starts := map[netip.Prefix]bool{}
	for _, n := range []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"} {
		starts[order(n)[0]] = true
	}
	if len(starts) < 2 {
		t.Errorf("eight nodes all start at the same block")
	}
	// A huge IPv6 pool: the walk starts at once, inside the pool.
	v6 := netip.MustParsePrefix("fd00:1::/48")
	for b := range candidateBlocks(v6, 122, "node-a") {
		if !v6.Contains(b.Addr()) || b != b.Masked() || b.Bits() != 122 {
			t.Errorf("IPv6 candidate %s", b)
		}
		break
	}
}

// TestAutoAssignFreshBlock: a node without blocks claims one (affinity
// confirmed) and gets its ordinals from 0 in order.
func TestAutoAssignFreshBlock(t *testing.T) {
	c, b := newClient(t, mkPool("p", "10.0.0.0/24", 26))
	ips := mustAssign(t, c, AssignArgs{Node: "n1", Handle: "H1", Num4: 3, Attrs: map[string]string{"pod": "p1", "namespace": "ns"}})
	first, _ := iterFirst(candidateBlocks(netip.MustParsePrefix("10.0.0.0/24"), 26, "n1"))
	if want := []netip.Addr{addrAt(first, 0), addrAt(first, 1), addrAt(first, 2)}; !slices.Equal(ips, want) {
		t.Fatalf("got %v, want %v", ips, want)
	}
	blk := getBlock(t, b, first.String())
	if blk.Spec.Affinity == nil || *blk.Spec.Affinity != "host:n1" || blk.Spec.StrictAffinity || blk.Spec.Deleted {
		t.Errorf("block %+v", blk.Spec)
	}
	if len(blk.Spec.Unallocated) != 61 || blk.Spec.Unallocated[0] != 3 || len(blk.Spec.Allocations) != 64 {
		t.Errorf("unallocated %v", blk.Spec.Unallocated)
	}
	if a := blk.Spec.Attributes; len(a) != 1 || *a[0].HandleID != "H1" ||
		!maps.Equal(a[0].Secondary, map[string]string{"pod": "p1", "namespace": "ns", "node": "n1"}) {
		t.Errorf("attributes %+v", a)
	}
	o, err := b.Get(testCtx(t), datastore.KindBlockAffinity, AffinityName("n1", first))
	if err != nil || o.(*datastore.BlockAffinity).Spec.State != "confirmed" {
		t.Fatalf("affinity %+v %v", o, err)
	}
	o, err = b.Get(testCtx(t), datastore.KindIPAMHandle, "h1")
	if err != nil || o.(*datastore.IPAMHandle).Spec.HandleID != "H1" || o.(*datastore.IPAMHandle).Spec.Block[first.String()] != 3 {
		t.Fatalf("handle %+v %v", o, err)
	}
	mustCheck(t, c)
}

func iterFirst[T any](seq func(func(T) bool)) (T, bool) {
	for v := range seq {
		return v, true
	}
	var zero T
	return zero, false
}

// TestReleaseAndReuse: a released ordinal goes to the tail of unallocated,
// its attribute goes when unused, the handle goes at zero, the block and
// its affinity stay until ReleaseEmptyBlocks.
func TestReleaseAndReuse(t *testing.T) {
	c, b := newClient(t, mkPool("p", "10.0.0.0/26", 26))
	var ips []netip.Addr
	for _, h := range []string{"h0", "h1", "h2"} {
		ips = append(ips, mustAssign(t, c, AssignArgs{Node: "n1", Handle: h, Num4: 1})...)
	}
	if !slices.Equal(ips, addrs("10.0.0.0", "10.0.0.1", "10.0.0.2")) {
		t.Fatalf("got %v", ips)
	}
	if n, err := c.ReleaseByHandle(testCtx(t), "h1"); n != 1 || err != nil {
		t.Fatalf("ReleaseByHandle = %d, %v", n, err)
	}
	blk := getBlock(t, b, "10.0.0.0/26")
	if u := blk.Spec.Unallocated; u[0] != 3 || u[len(u)-1] != 1 || len(u) != 62 {
		t.Errorf("unallocated %v: the released ordinal must go last", u)
	}
	if len(blk.Spec.Attributes) != 2 || *blk.Spec.Attributes[1].HandleID != "h2" || *blk.Spec.Allocations[2] != 1 {
		t.Errorf("attributes %+v, allocations[2] = %d: h1's attribute must go, h2's renumbered", blk.Spec.Attributes, *blk.Spec.Allocations[2])
	}
	if _, err := b.Get(testCtx(t), datastore.KindIPAMHandle, "h1"); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("handle h1 after release: %v", err)
	}
	if got := mustAssign(t, c, AssignArgs{Node: "n1", Handle: "h3", Num4: 1}); got[0] != netip.MustParseAddr("10.0.0.3") {
		t.Errorf("next address %v, want 10.0.0.3 (head of unallocated)", got)
	}
	mustCheck(t, c)

	if n, err := c.ReleaseIPs(testCtx(t), addrs("10.0.0.0", "10.0.0.2", "10.0.0.3", "10.0.0.9", "10.9.9.9")...); n != 3 || err != nil {
		t.Fatalf("ReleaseIPs = %d, %v", n, err)
	}
	blk = getBlock(t, b, "10.0.0.0/26")
	if len(blk.Spec.Attributes) != 0 || len(blk.Spec.Unallocated) != 64 {
		t.Errorf("empty block keeps %+v", blk.Spec)
	}
	bi, err := c.NodeBlocks(testCtx(t), "n1")
	if err != nil || len(bi) != 1 || bi[0].State != "confirmed" || bi[0].Used != 0 || bi[0].Free != 64 {
		t.Fatalf("NodeBlocks = %+v, %v: an empty block keeps its affinity", bi, err)
	}
	mustCheck(t, c)
	released, err := c.ReleaseEmptyBlocks(testCtx(t), "n1")
	if err != nil || len(released) != 1 || released[0] != netip.MustParsePrefix("10.0.0.0/26") {
		t.Fatalf("ReleaseEmptyBlocks = %v, %v", released, err)
	}
	if objs, _, _ := b.List(testCtx(t), datastore.KindIPAMBlock); len(objs) != 0 {
		t.Errorf("blocks left: %v", objs)
	}
	if objs, _, _ := b.List(testCtx(t), datastore.KindBlockAffinity); len(objs) != 0 {
		t.Errorf("affinities left: %v", objs)
	}
	mustCheck(t, c)
}

func TestReleaseAffinityOfBlockInUse(t *testing.T) {
	c, _ := newClient(t, mkPool("p", "10.0.0.0/26", 26))
	mustAssign(t, c, AssignArgs{Node: "n1", Handle: "h", Num4: 1})
	err := c.ReleaseAffinity(testCtx(t), "n1", netip.MustParsePrefix("10.0.0.0/26"))
	if !errors.Is(err, ErrBlockInUse) || !strings.Contains(err.Error(), "block 10.0.0.0/26 is not empty (1 addresses in use)") {
		t.Fatalf("err = %v", err)
	}
	if bi, _ := c.NodeBlocks(testCtx(t), "n1"); len(bi) != 1 || bi[0].State != "confirmed" {
		t.Fatalf("NodeBlocks = %+v: the affinity must be confirmed again", bi)
	}
	if got, _ := c.ReleaseEmptyBlocks(testCtx(t), "n1"); len(got) != 0 {
		t.Fatalf("released a block in use: %v", got)
	}
	mustCheck(t, c)
}

func TestIPv6AndDualStack(t *testing.T) {
	c, b := newClient(t, mkPool("v4", "10.0.0.0/24", 0), mkPool("v6", "fd00::/120", 0))
	ips := mustAssign(t, c, AssignArgs{Node: "n1", Handle: "h", Num4: 1, Num6: 2})
	if len(ips) != 3 || !ips[0].Is4() || !ips[1].Is6() || ips[2] != ips[1].Next() {
		t.Fatalf("got %v", ips)
	}
	v4, v6 := blockOf(ips[0], 26), blockOf(ips[1], 122)
	if ord, _ := ordinal(v6, ips[1]); ord != 0 {
		t.Errorf("first IPv6 address %s is ordinal %d", ips[1], ord)
	}
	blk := getBlock(t, b, v6.String())
	if !strings.Contains(blk.Name, "--") || len(blk.Spec.Allocations) != 64 {
		t.Errorf("IPv6 block %s with %d slots", blk.Name, len(blk.Spec.Allocations))
	}
	o, _ := b.Get(testCtx(t), datastore.KindIPAMHandle, "h")
	if got := o.(*datastore.IPAMHandle).Spec.Block; !maps.Equal(got, map[string]int{v4.String(): 1, v6.String(): 2}) {
		t.Errorf("handle blocks %v", got)
	}
	mustCheck(t, c)
	if n, err := c.ReleaseByHandle(testCtx(t), "h"); n != 3 || err != nil {
		t.Fatalf("ReleaseByHandle = %d, %v", n, err)
	}
	mustCheck(t, c)
}

// TestSmallBlocks: /30 and /32 blocks; a node claims as many as it needs.
func TestSmallBlocks(t *testing.T) {
	for _, tc := range []struct {
		pool              string
		size, num, blocks int
	}{{"10.1.0.0/28", 30, 6, 2}, {"10.2.0.0/29", 32, 5, 5}, {"10.3.0.0/24", 28, 16, 1}} {
		c, _ := newClient(t, mkPool("p", tc.pool, tc.size))
		ips := mustAssign(t, c, AssignArgs{Node: "n1", Handle: "h", Num4: tc.num})
		if len(ips) != tc.num || len(slices.Compact(slices.SortedFunc(slices.Values(ips), netip.Addr.Compare))) != tc.num {
			t.Errorf("%s/%d: %v", tc.pool, tc.size, ips)
		}
		if bi, _ := c.NodeBlocks(testCtx(t), "n1"); len(bi) != tc.blocks {
			t.Errorf("%s/%d: %d blocks, want %d", tc.pool, tc.size, len(bi), tc.blocks)
		}
		mustCheck(t, c)
	}
}

// borrowSetup: n1 holds all four /30 blocks of a /28 with two addresses
// free in the last.
func borrowSetup(t *testing.T, strict bool) (*Client, datastore.Backend) {
	c, b := newClient(t, mkPool("p", "10.1.0.0/28", 30), mkConfig(strict, true, 0))
	mustAssign(t, c, AssignArgs{Node: "n1", Handle: "h1", Num4: 14})
	return c, b
}

func TestBorrow(t *testing.T) {
	c, b := borrowSetup(t, false)
	got := mustAssign(t, c, AssignArgs{Node: "n2", Handle: "h2", Num4: 2})
	blk := getBlock(t, b, blockOf(got[0], 30).String())
	if *blk.Spec.Affinity != "host:n1" {
		t.Errorf("borrowing changed the block's affinity to %s", *blk.Spec.Affinity)
	}
	blocks, affs := snapshot(t, b)
	own, borrowed := NodeRoutes("n2", blocks, affs)
	if len(own) != 0 || !slices.Equal(borrowed, got) {
		t.Errorf("NodeRoutes(n2) = %v, %v; want none, %v", own, borrowed, got)
	}
	own, borrowed = NodeRoutes("n1", blocks, affs)
	if len(own) != 4 || len(borrowed) != 0 {
		t.Errorf("NodeRoutes(n1) = %v, %v", own, borrowed)
	}
	mustCheck(t, c)

	_, err := c.AutoAssign(testCtx(t), AssignArgs{Node: "n2", Handle: "h3", Num4: 1})
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "pool 10.1.0.0/28 is exhausted") {
		t.Fatalf("err = %v", err)
	}
	mustCheck(t, c)
}

func TestStrictAffinityForbidsBorrowing(t *testing.T) {
	c, _ := borrowSetup(t, true)
	_, err := c.AutoAssign(testCtx(t), AssignArgs{Node: "n2", Handle: "h2", Num4: 1})
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "strictAffinity forbids borrowing") {
		t.Fatalf("err = %v", err)
	}
	// n1 itself still uses its own blocks.
	mustAssign(t, c, AssignArgs{Node: "n1", Handle: "h1", Num4: 2})
	mustCheck(t, c)
}

// TestAllOrNothing: a request that cannot be met leaves nothing behind.
func TestAllOrNothing(t *testing.T) {
	c, b := newClient(t, mkPool("p", "10.1.0.0/28", 30))
	_, err := c.AutoAssign(testCtx(t), AssignArgs{Node: "n1", Handle: "h", Num4: 17})
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "16 of 17") {
		t.Fatalf("err = %v", err)
	}
	u, _ := c.Usage(testCtx(t))
	if len(u) != 1 || u[0].Used != 0 || u[0].Blocks != 4 || u[0].BlockFree != 16 {
		t.Errorf("usage after a failed request %+v", u)
	}
	if objs, _, _ := b.List(testCtx(t), datastore.KindIPAMHandle); len(objs) != 0 {
		t.Errorf("handles left: %v", objs)
	}
	mustCheck(t, c)
}

func TestPoolSelection(t *testing.T) {
	c, _ := newClient(t,
		mkPool("off", "10.9.0.0/24", 26, func(s *datastore.IPPoolSpec) { s.Disabled = true }),
		mkPool("a", "10.1.0.0/24", 26, func(s *datastore.IPPoolSpec) { s.NodeSelector = "rack == 'a'" }),
		mkPool("b", "10.2.0.0/24", 26, func(s *datastore.IPPoolSpec) {
			s.NodeSelector = "rack == 'b'"
			s.AllowedUses = []string{UseWorkload}
		}),
		mkPool("tun", "10.3.0.0/24", 26, func(s *datastore.IPPoolSpec) {
			s.AllowedUses = []string{UseTunnel}
			s.NodeSelector = "all()"
		}),
		mkNode("na", map[string]string{"rack": "a"}),
		mkNode("nb", map[string]string{"rack": "b"}),
	)
	in := func(ip netip.Addr, pool string) bool { return netip.MustParsePrefix(pool).Contains(ip) }
	if ip := mustAssign(t, c, AssignArgs{Node: "na", Handle: "ha", Num4: 1})[0]; !in(ip, "10.1.0.0/24") {
		t.Errorf("na got %s", ip)
	}
	if ip := mustAssign(t, c, AssignArgs{Node: "nb", Handle: "hb", Num4: 1})[0]; !in(ip, "10.2.0.0/24") {
		t.Errorf("nb got %s", ip)
	}
	if ip := mustAssign(t, c, AssignArgs{Node: "nb", Handle: "ht", Num4: 1, Use: UseTunnel})[0]; !in(ip, "10.3.0.0/24") {
		t.Errorf("tunnel address %s", ip)
	}
	// A requested pool is used whatever its selector.
	if ip := mustAssign(t, c, AssignArgs{Node: "na", Handle: "hx", Num4: 1, Pools: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24")}})[0]; !in(ip, "10.2.0.0/24") {
		t.Errorf("requested pool: got %s", ip)
	}
	_, err := c.AutoAssign(testCtx(t), AssignArgs{Node: "nc", Handle: "hc", Num4: 1})
	if !errors.Is(err, ErrNoPool) || !strings.Contains(err.Error(), "no IP pool selects node nc") {
		t.Errorf("unlabelled node: %v", err)
	}
	_, err = c.AutoAssign(testCtx(t), AssignArgs{Node: "na", Handle: "hd", Num4: 1, Pools: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")}})
	if err == nil || !strings.Contains(err.Error(), "10.9.0.0/24 does not exist or is disabled") {
		t.Errorf("disabled requested pool: %v", err)
	}
	_, err = c.AutoAssign(testCtx(t), AssignArgs{Node: "na", Handle: "h6", Num6: 1})
	if !errors.Is(err, ErrNoPool) {
		t.Errorf("no IPv6 pool: %v", err)
	}
	mustCheck(t, c)
}

func TestMaxBlocksPerHostAndAutoAllocate(t *testing.T) {
	c, b := newClient(t, mkPool("p", "10.0.0.0/24", 28), mkConfig(true, true, 2))
	mustAssign(t, c, AssignArgs{Node: "n1", Handle: "h", Num4: 32})
	_, err := c.AutoAssign(testCtx(t), AssignArgs{Node: "n1", Handle: "h2", Num4: 1})
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "node n1 has reached maxBlocksPerHost 2") {
		t.Fatalf("err = %v", err)
	}
	if bi, _ := c.NodeBlocks(testCtx(t), "n1"); len(bi) != 2 {
		t.Errorf("%d blocks, want 2", len(bi))
	}
	// Without strictAffinity the node borrows instead.
	cfg, _ := b.Get(testCtx(t), datastore.KindIPAMConfig, "default")
	cfg.(*datastore.IPAMConfig).Spec.StrictAffinity = false
	if _, err := b.Update(testCtx(t), cfg); err != nil {
		t.Fatal(err)
	}
	mustAssign(t, c, AssignArgs{Node: "n2", Handle: "h3", Num4: 1})
	ip := mustAssign(t, c, AssignArgs{Node: "n1", Handle: "h4", Num4: 1})[0]
	if blk := getBlock(t, b, blockOf(ip, 28).String()); *blk.Spec.Affinity != "host:n2" {
		t.Errorf("n1 got %s from %s, want a borrowed address of n2's block", ip, *blk.Spec.Affinity)
	}
	// autoAllocateBlocks false: no new block, even for a node without one.
	cfg, _ = b.Get(testCtx(t), datastore.KindIPAMConfig, "default")
	cfg.(*datastore.IPAMConfig).Spec = datastore.IPAMConfigSpec{StrictAffinity: true, AutoAllocateBlocks: false}
	b.Update(testCtx(t), cfg)
	_, err = c.AutoAssign(testCtx(t), AssignArgs{Node: "n3", Handle: "h5", Num4: 1})
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "autoAllocateBlocks is false") {
		t.Fatalf("err = %v", err)
	}
	mustCheck(t, c)
}

func TestAssignIP(t *testing.T) {
	c, b := newClient(t, mkPool("p", "10.2.0.0/24", 26))
	ctx := testCtx(t)
	if err := c.AssignIP(ctx, "n1", netip.MustParseAddr("10.2.0.70"), "h1", nil); err != nil {
		t.Fatal(err)
	}
	blk := getBlock(t, b, "10.2.0.64/26")
	if *blk.Spec.Affinity != "host:n1" || blk.Spec.Allocations[6] == nil || slices.Contains(blk.Spec.Unallocated, 6) || len(blk.Spec.Unallocated) != 63 {
		t.Errorf("block %+v", blk.Spec)
	}
	err := c.AssignIP(ctx, "n2", netip.MustParseAddr("10.2.0.70"), "h2", nil)
	if !errors.Is(err, ErrAllocated) || !strings.Contains(err.Error(), "10.2.0.70 is already allocated (handle h1)") {
		t.Errorf("err = %v", err)
	}
	// Another node's address in n1's block: the block stays n1's.
	if err := c.AssignIP(ctx, "n2", netip.MustParseAddr("10.2.0.71"), "h2", nil); err != nil {
		t.Fatal(err)
	}
	if blk := getBlock(t, b, "10.2.0.64/26"); *blk.Spec.Affinity != "host:n1" {
		t.Errorf("affinity %s", *blk.Spec.Affinity)
	}
	err = c.AssignIP(ctx, "n1", netip.MustParseAddr("10.9.9.9"), "h3", nil)
	if !errors.Is(err, ErrNotInPool) || !strings.Contains(err.Error(), "10.9.9.9 is not in any pool") {
		t.Errorf("err = %v", err)
	}
	// n1 auto-assigns from its block, from the head of unallocated.
	if ip := mustAssign(t, c, AssignArgs{Node: "n1", Handle: "h4", Num4: 1})[0]; ip != netip.MustParseAddr("10.2.0.64") {
		t.Errorf("AutoAssign after AssignIP: %s", ip)
	}
	mustCheck(t, c)
}

// TestCrashBetweenWrites: assignment counts the handle before it writes
// the block; a crash in between leaves a count Check reports and
// ReleaseByHandle repairs.
func TestCrashBetweenWrites(t *testing.T) {
	c, _ := newClient(t, mkPool("p", "10.0.0.0/26", 26))
	mustAssign(t, c, AssignArgs{Node: "n1", Handle: "h", Num4: 2})
	if err := c.adjustHandle(testCtx(t), "h", netip.MustParsePrefix("10.0.0.0/26"), 1); err != nil {
		t.Fatal(err)
	}
	r, _ := c.Check(testCtx(t))
	if k := r.Kinds(); len(k) != 1 || k[HandleCount] != 1 {
		t.Fatalf("Check: %s", r)
	}
	if n, err := c.ReleaseByHandle(testCtx(t), "h"); n != 2 || err != nil {
		t.Fatalf("ReleaseByHandle = %d, %v", n, err)
	}
	mustCheck(t, c)
}

// TestCheckBrokenStore: every kind of inconsistency, written by hand, in
// IPv4 and in IPv6 blocks.
func TestCheckBrokenStore(t *testing.T) {
	for _, fam := range []struct {
		name       string
		a, b, none string // n1's block, n2's block, a CIDR with no block
	}{
		{"IPv4", "10.0.0.0/30", "10.0.0.4/30", "10.0.0.8/30"},
		{"IPv6", "fd00::/126", "fd00::4/126", "fd00::8/126"},
	} {
		t.Run(fam.name, func(t *testing.T) { checkBrokenStore(t, fam.a, fam.b, fam.none) })
	}
}

func checkBrokenStore(t *testing.T, cidrA, cidrB, cidrNone string) {
	blk := newBlock(netip.MustParsePrefix(cidrA), "n1", false)
	h := "h1"
	zero, one, seven := 0, 1, 7
	blk.Spec.Attributes = []datastore.AllocationAttribute{{HandleID: &h}, {HandleID: new("ghost")}}
	blk.Spec.Allocations = []*int{&zero, &one, &seven, nil}
	blk.Spec.Unallocated = []int{0, 3, 3} // 0 both, 1 and 2 allocated, 3 repeated
	other := newBlock(netip.MustParsePrefix(cidrB), "n2", false)
	other.Spec.Unallocated = []int{1, 2, 3} // 0 lost

	hd, _ := datastore.New(datastore.KindIPAMHandle)
	handle := hd.(*datastore.IPAMHandle)
	handle.Name, handle.Spec.HandleID, handle.Spec.Block = "h1", "h1", map[string]int{cidrA: 3}

	aff := func(node, cidr string) *datastore.BlockAffinity {
		o, _ := datastore.New(datastore.KindBlockAffinity)
		a := o.(*datastore.BlockAffinity)
		a.Name = AffinityName(node, netip.MustParsePrefix(cidr))
		a.Spec = datastore.BlockAffinitySpec{State: "confirmed", Node: node, CIDR: cidr, Deleted: "false"}
		return a
	}
	b := newStoreNoValidate(t, blk, other, handle, aff("n1", cidrA), aff("n3", cidrNone), aff("n3", cidrB))
	c := New(b)
	r, err := c.Check(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[ProblemKind]int{
		OrdinalBoth: 1, OrdinalRepeated: 1, BadAttribute: 1, OrdinalLost: 1,
		HandleCount: 1, OrphanAllocation: 1,
		AffinityWithoutBlock: 1, AffinityMismatch: 1, BlockWithoutAffinity: 1,
	}
	if got := r.Kinds(); !maps.Equal(got, want) {
		t.Errorf("Check found %v, want %v:\n%s", got, want, r)
	}
	nameB := BlockName(netip.MustParsePrefix(cidrB))
	for _, s := range []string{
		"handle-count: IPAMHandle h1: counts 3 addresses in " + cidrA + ", the block holds 1",
		"orphan: handle ghost: 1 addresses in blocks " + cidrA + ", no IPAMHandle ghost",
		"ordinal-lost: IPAMBlock " + nameB + ": 1 ordinals neither allocated nor unallocated: 0",
		"block-without-affinity: IPAMBlock " + nameB + ": affine to n2",
	} {
		if !strings.Contains(r.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, r)
		}
	}
	// The orphan is released by its handle id although no handle exists.
	if n, err := c.ReleaseByHandle(testCtx(t), "ghost"); n != 1 || err != nil {
		t.Errorf("ReleaseByHandle(ghost) = %d, %v", n, err)
	}
	if r, _ := c.Check(testCtx(t)); r.Kinds()[OrphanAllocation] != 0 {
		t.Errorf("orphan still reported:\n%s", r)
	}
}

// newStoreNoValidate loads objects that fail validation on purpose.
func newStoreNoValidate(t *testing.T, objs ...datastore.Object) datastore.Backend {
	_, b := newClient(t)
	for _, o := range objs {
		if _, err := b.Create(testCtx(t), o); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func snapshot(t testing.TB, b datastore.Backend) ([]*datastore.IPAMBlock, []*datastore.BlockAffinity) {
	t.Helper()
	bo, _, err := b.List(testCtx(t), datastore.KindIPAMBlock)
	if err != nil {
		t.Fatal(err)
	}
	ao, _, err := b.List(testCtx(t), datastore.KindBlockAffinity)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []*datastore.IPAMBlock
	for _, o := range bo {
		blocks = append(blocks, o.(*datastore.IPAMBlock))
	}
	var affs []*datastore.BlockAffinity
	for _, o := range ao {
		affs = append(affs, o.(*datastore.BlockAffinity))
	}
	return blocks, affs
}

func TestNodeRoutes(t *testing.T) {
	owned := newBlock(netip.MustParsePrefix("10.0.0.0/26"), "n1", false)
	legacy := newBlock(netip.MustParsePrefix("10.0.0.64/26"), "n1", false)
	pending := newBlock(netip.MustParsePrefix("10.0.0.128/26"), "n1", false)
	foreign := newBlock(netip.MustParsePrefix("10.0.1.0/26"), "n2", false)
	block{foreign, netip.MustParsePrefix("10.0.1.0/26")}.assign([]int{0}, "a", map[string]string{"node": "n2"})
	block{foreign, netip.MustParsePrefix("10.0.1.0/26")}.assign([]int{5, 9}, "b", map[string]string{"node": "n1"})
	trimmed := newBlock(netip.MustParsePrefix("10.0.2.0/26"), "n2", false)
	trimmed.Spec.Allocations = nil
	aff := func(node, cidr, state string) *datastore.BlockAffinity {
		return &datastore.BlockAffinity{Spec: datastore.BlockAffinitySpec{Node: node, CIDR: cidr, State: state}}
	}
	affs := []*datastore.BlockAffinity{
		aff("n1", "10.0.0.64/26", ""), aff("n1", "10.0.0.0/26", "confirmed"), aff("n1", "10.0.0.128/26", "pending"),
		aff("n2", "10.0.1.0/26", "confirmed"), aff("n1", "10.0.3.0/26", "pendingDeletion"),
	}
	own, borrowed := NodeRoutes("n1", []*datastore.IPAMBlock{owned, legacy, pending, foreign, trimmed}, affs)
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/26"), netip.MustParsePrefix("10.0.0.64/26")}; !slices.Equal(own, want) {
		t.Errorf("own = %v, want %v", own, want)
	}
	if want := addrs("10.0.1.5", "10.0.1.9"); !slices.Equal(borrowed, want) {
		t.Errorf("borrowed = %v, want %v", borrowed, want)
	}
	if trimmed.Spec.Allocations != nil {
		t.Error("NodeRoutes changed its input")
	}
}

func TestUsage(t *testing.T) {
	c, _ := newClient(t, mkPool("a", "10.0.0.0/24", 26), mkPool("b", "fd00::/64", 122))
	mustAssign(t, c, AssignArgs{Node: "n1", Handle: "h1", Num4: 3, Num6: 1})
	mustAssign(t, c, AssignArgs{Node: "n2", Handle: "h2", Num4: 2})
	u, err := c.Usage(testCtx(t))
	if err != nil || len(u) != 2 {
		t.Fatal(u, err)
	}
	if a := u[0]; a.Name != "a" || a.Size.Int64() != 256 || a.Used != 5 || a.Free.Int64() != 251 || a.Blocks != 2 || a.BlockFree != 123 {
		t.Errorf("pool a: %+v", a)
	}
	if b := u[1]; b.Name != "b" || b.Size.BitLen() != 65 || b.Used != 1 || b.Blocks != 1 {
		t.Errorf("pool b: %+v", b)
	}
}
