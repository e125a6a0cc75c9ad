package ipam

import (
	"context"
	"fmt"
	"maps"
	"math/big"
	"net/netip"
	"slices"
	"strings"

	"github.com/petrel-net/petrel/datastore"
)

// BlockInfo is one of a node's blocks.
type BlockInfo struct {
	CIDR  netip.Prefix
	State string // the BlockAffinity's: pending, confirmed, pendingDeletion
	// Missing is true when the affinity has no IPAMBlock (a claim in
	// progress or cut short).
	Missing bool
	// Unusable says why a stored block cannot be used (corrupt); empty
	// for a good one.
	Unusable   string
	Used, Free int
}

// NodeBlocks lists the blocks node has an affinity for, by CIDR.
func (c *Client) NodeBlocks(ctx context.Context, node string) ([]BlockInfo, error) {
	affs, err := c.listAffinities(ctx, node)
	if err != nil {
		return nil, err
	}
	blocks, bad, err := c.listBlocks(ctx)
	if err != nil {
		return nil, err
	}
	byCIDR := make(map[netip.Prefix]block, len(blocks))
	for _, b := range blocks {
		byCIDR[b.cidr] = b
	}
	out := make([]BlockInfo, 0, len(affs))
	for _, af := range affs {
		bi := BlockInfo{CIDR: af.cidr, State: af.Spec.State}
		if b, ok := byCIDR[af.cidr]; ok {
			bi.Used, bi.Free = b.used(), b.free()
		} else if i := slices.IndexFunc(bad, func(b badBlock) bool { return b.cidr == af.cidr }); i >= 0 {
			bi.Unusable = bad[i].err.Error()
		} else {
			bi.Missing = true
		}
		out = append(out, bi)
	}
	return out, nil
}

// PoolUsage is a pool's use, as `calicoctl ipam show` prints it.
type PoolUsage struct {
	Name     string
	CIDR     netip.Prefix
	Disabled bool
	Size     *big.Int // addresses in the pool (an IPv6 pool has more than 2^64)
	Used     int      // addresses allocated
	Free     *big.Int // Size - Used
	Blocks   int      // blocks that exist
	// BlockFree is the free addresses in existing blocks: what nodes can
	// allocate without claiming a block.
	BlockFree int
}

// Usage reports every pool's use, ordered by CIDR.
func (c *Client) Usage(ctx context.Context) ([]PoolUsage, error) {
	pools, err := c.pools(ctx)
	if err != nil {
		return nil, err
	}
	blocks, _, err := c.listBlocks(ctx) // an unusable block counts as neither used nor free
	if err != nil {
		return nil, err
	}
	out := make([]PoolUsage, len(pools))
	for i, p := range pools {
		u := PoolUsage{Name: p.name, CIDR: p.cidr, Disabled: p.spec.Disabled,
			Size: new(big.Int).Lsh(big.NewInt(1), uint(p.cidr.Addr().BitLen()-p.cidr.Bits()))}
		for _, b := range blocks {
			if q, ok := poolOf(pools, b.cidr); ok && q.cidr == p.cidr {
				u.Blocks++
				u.Used += b.used()
				u.BlockFree += b.free()
			}
		}
		u.Free = new(big.Int).Sub(u.Size, big.NewInt(int64(u.Used)))
		out[i] = u
	}
	return out, nil
}

// ProblemKind classifies an inconsistency Check finds.
type ProblemKind string

const (
	// OrdinalBoth: an ordinal is allocated and listed as unallocated.
	OrdinalBoth ProblemKind = "ordinal-both"
	// OrdinalLost: an ordinal is neither allocated nor unallocated, so it
	// can never be used.
	OrdinalLost ProblemKind = "ordinal-lost"
	// OrdinalRepeated: an ordinal is listed twice in unallocated.
	OrdinalRepeated ProblemKind = "ordinal-repeated"
	// BadAttribute: an allocation points past the attributes.
	BadAttribute ProblemKind = "bad-attribute"
	// HandleCount: a handle's count for a block differs from the block's
	// allocations with that handle (a leak after a crash).
	HandleCount ProblemKind = "handle-count"
	// OrphanAllocation: a block holds addresses of a handle that does not
	// exist (or of no handle).
	OrphanAllocation ProblemKind = "orphan"
	// AffinityWithoutBlock: a BlockAffinity whose block does not exist.
	AffinityWithoutBlock ProblemKind = "affinity-without-block"
	// AffinityMismatch: a BlockAffinity for a block affine to another node.
	AffinityMismatch ProblemKind = "affinity-mismatch"
	// BlockWithoutAffinity: a block affine to a node without a
	// BlockAffinity for it.
	BlockWithoutAffinity ProblemKind = "block-without-affinity"
	// BlockOverlap: two blocks share addresses.
	BlockOverlap ProblemKind = "block-overlap"
	// Unusable: a stored object that does not decode or is inconsistent
	// in itself (a block whose allocations do not fit its CIDR). IPAM
	// leaves it and, for a block, its whole range alone.
	Unusable ProblemKind = "unusable"
)

// Problem is one inconsistency.
type Problem struct {
	Kind   ProblemKind
	Object string // "IPAMBlock 10-0-0-0-26", "IPAMHandle h1"…
	Detail string
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s: %s", p.Kind, p.Object, p.Detail) }

// Report is what Check found; no problems means consistent.
type Report struct {
	Blocks, Handles, Affinities int // objects checked
	Problems                    []Problem
}

// OK is true when Check found nothing.
func (r Report) OK() bool { return len(r.Problems) == 0 }

func (r Report) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "%d blocks, %d handles, %d affinities: %d problems", r.Blocks, r.Handles, r.Affinities, len(r.Problems))
	for _, p := range r.Problems {
		s.WriteString("\n  " + p.String())
	}
	return s.String()
}

// Kinds counts the problems by kind.
func (r Report) Kinds() map[ProblemKind]int {
	m := map[ProblemKind]int{}
	for _, p := range r.Problems {
		m[p.Kind]++
	}
	return m
}

// Check reads every block, handle and affinity and reports what does not
// add up. It changes nothing; on a store in use, a write in progress can
// show up as a handle count off by its addresses.
func (c *Client) Check(ctx context.Context) (Report, error) {
	blocks, badBlocks, err := c.listBlocks(ctx)
	if err != nil {
		return Report{}, err
	}
	hobjs, badHandles, err := c.list(ctx, datastore.KindIPAMHandle)
	if err != nil {
		return Report{}, err
	}
	aobjs, badAffs, err := c.list(ctx, datastore.KindBlockAffinity)
	if err != nil {
		return Report{}, err
	}
	affs, unparsed := parseAffinities(aobjs, "")
	skip := unreadable{blocks: map[netip.Prefix]bool{}, handles: map[string]bool{}}
	for _, b := range badBlocks {
		skip.blocks[b.cidr] = true
	}
	for _, h := range badHandles {
		skip.handles[h.Name] = true
	}
	r := check(blocks, hobjs, affs, skip)
	unusable := slices.Concat(badHandles, badAffs, unparsed)
	for _, b := range badBlocks {
		unusable = append(unusable, b.err)
	}
	for _, e := range unusable {
		r.Problems = append(r.Problems, Problem{Unusable, string(e.Kind) + " " + e.Name, e.Error()})
	}
	_, badPools, err := c.listPools(ctx)
	if err != nil {
		return Report{}, err
	}
	r.Problems = append(r.Problems, badPools...)
	r.Blocks += len(badBlocks)
	r.Handles += len(badHandles)
	r.Affinities += len(badAffs) + len(unparsed)
	return r, nil
}

// unreadable is what Check could not read: the ranges of unusable blocks
// and the names of unusable handles. What only they could confirm (an
// affinity's block, a handle's count, an allocation's handle) is not
// reported again as a mismatch.
type unreadable struct {
	blocks  map[netip.Prefix]bool
	handles map[string]bool
}

func check(blocks []block, hobjs []datastore.Object, affs []affinity, skip unreadable) Report {
	c := &checker{
		r:    Report{Blocks: len(blocks), Handles: len(hobjs), Affinities: len(affs)},
		skip: skip, held: map[string]map[string]int{}, byCIDR: map[netip.Prefix]block{},
	}
	for i, b := range blocks {
		c.byCIDR[b.cidr] = b
		if i > 0 && blocks[i-1].cidr.Overlaps(b.cidr) {
			c.add(BlockOverlap, "IPAMBlock "+b.Name, "overlaps block %s", blocks[i-1].cidr)
		}
		c.checkOrdinals(b)
		c.checkBlockAffinity(b, affs)
	}
	c.checkAffinities(affs)
	c.checkHandles(hobjs)
	return c.r
}

// checker gathers Check's findings over one read of the store.
type checker struct {
	r    Report
	skip unreadable
	// held[handle][block] counts allocations, for the handle check.
	held   map[string]map[string]int
	byCIDR map[netip.Prefix]block
}

func (c *checker) add(kind ProblemKind, object, format string, args ...any) {
	c.r.Problems = append(c.r.Problems, Problem{kind, object, fmt.Sprintf(format, args...)})
}

// checkOrdinals checks that each ordinal of b is either allocated (to a
// valid attribute) or unallocated, once, and counts its allocations per
// handle.
func (c *checker) checkOrdinals(b block) {
	free := map[int]int{}
	for _, o := range b.Spec.Unallocated {
		free[o]++
	}
	var both, lost, repeated, bad []int
	for ord, a := range b.Spec.Allocations {
		switch {
		case a != nil && free[ord] > 0:
			both = append(both, ord)
		case a == nil && free[ord] == 0:
			lost = append(lost, ord)
		}
		if free[ord] > 1 {
			repeated = append(repeated, ord)
		}
		if a == nil {
			continue
		}
		if b.attr(ord) == nil {
			bad = append(bad, ord)
			continue
		}
		h := b.handleOf(ord)
		if c.held[h] == nil {
			c.held[h] = map[string]int{}
		}
		c.held[h][b.cidr.String()]++
	}
	for _, p := range []struct {
		kind ProblemKind
		ords []int
		what string
	}{
		{OrdinalBoth, both, "allocated and also unallocated"},
		{OrdinalLost, lost, "neither allocated nor unallocated"},
		{OrdinalRepeated, repeated, "listed more than once in unallocated"},
		{BadAttribute, bad, fmt.Sprintf("allocated to an attribute index past the %d attributes", len(b.Spec.Attributes))},
	} {
		if len(p.ords) > 0 {
			c.add(p.kind, "IPAMBlock "+b.Name, "%d ordinals %s: %s", len(p.ords), p.what, ranges(p.ords))
		}
	}
}

// checkBlockAffinity checks that a block affine to a node has that
// node's BlockAffinity.
func (c *checker) checkBlockAffinity(b block, affs []affinity) {
	if n := b.node(); n != "" && !slices.ContainsFunc(affs, func(a affinity) bool { return a.cidr == b.cidr && a.Spec.Node == n }) {
		c.add(BlockWithoutAffinity, "IPAMBlock "+b.Name, "affine to %s, which has no BlockAffinity %s", n, AffinityName(n, b.cidr))
	}
}

// checkAffinities checks that each BlockAffinity has its block, affine to
// the same node.
func (c *checker) checkAffinities(affs []affinity) {
	for _, af := range affs {
		obj := "BlockAffinity " + af.Name
		b, ok := c.byCIDR[af.cidr]
		switch {
		case !ok && c.skip.blocks[af.cidr]:
		case !ok:
			c.add(AffinityWithoutBlock, obj, "%s has no IPAMBlock %s (state %q)", af.Spec.Node, BlockName(af.cidr), af.Spec.State)
		case b.node() != af.Spec.Node:
			c.add(AffinityMismatch, obj, "block %s is affine to %q, not %s", af.cidr, b.node(), af.Spec.Node)
		}
	}
}

// checkHandles checks each handle's counts against the allocations the
// blocks hold, then reports allocations no handle counts.
func (c *checker) checkHandles(hobjs []datastore.Object) {
	counted := map[string]bool{}
	for _, o := range hobjs {
		h := o.(*datastore.IPAMHandle)
		counted[h.Spec.HandleID] = true
		c.checkHandleCounts(h)
	}
	for _, id := range slices.Sorted(maps.Keys(c.held)) {
		if !counted[id] && !c.skip.handles[HandleName(id)] {
			obj := "handle " + id
			if id == "" {
				obj = "no handle"
			}
			c.add(OrphanAllocation, obj, "%d addresses in blocks %s, no IPAMHandle %s",
				sum(c.held[id]), strings.Join(slices.Sorted(maps.Keys(c.held[id])), ", "), HandleName(id))
		}
	}
}

// checkHandleCounts compares, block by block, what h counts with what the
// blocks hold for it (blocks that could not be read excepted).
func (c *checker) checkHandleCounts(h *datastore.IPAMHandle) {
	id := h.Spec.HandleID
	keys := slices.Sorted(maps.Keys(h.Spec.Block))
	for k := range c.held[id] {
		if _, ok := h.Spec.Block[k]; !ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		c.add(HandleCount, "IPAMHandle "+h.Name, "counts no address")
	}
	for _, k := range keys {
		if p, err := netip.ParsePrefix(k); err == nil && c.skip.blocks[p] {
			continue
		}
		if want, got := h.Spec.Block[k], c.held[id][k]; want != got {
			c.add(HandleCount, "IPAMHandle "+h.Name, "counts %d addresses in %s, the block holds %d", want, k, got)
		}
	}
}

// ranges prints sorted ordinals compactly: "0-1, 3-56, 58-63".
func ranges(ords []int) string {
	var parts []string
	for i := 0; i < len(ords); {
		j := i
		for j+1 < len(ords) && ords[j+1] == ords[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprint(ords[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", ords[i], ords[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// NodeRoutes is what node advertises over BGP, from the blocks and
// affinities in the store: own, the blocks it holds a confirmed affinity
// for ("" is confirmed, as old Calico wrote it), and borrowed, the
// addresses it uses in blocks affine to another node (or to none), which
// Calico advertises as host routes. It is pure; both lists are sorted.
func NodeRoutes(node string, blocks []*datastore.IPAMBlock, affinities []*datastore.BlockAffinity) (own []netip.Prefix, borrowed []netip.Addr) {
	for _, a := range affinities {
		if a.Spec.Node != node || a.Spec.Deleted == "true" || !(affinity{BlockAffinity: a}).confirmed() {
			continue
		}
		if cidr, err := netip.ParsePrefix(a.Spec.CIDR); err == nil && !slices.Contains(own, cidr.Masked()) {
			own = append(own, cidr.Masked())
		}
	}
	for _, o := range blocks {
		// Not parseBlock: it would fill in a missing allocations list of
		// the caller's object, and such a block allocates nothing anyway.
		cidr, err := netip.ParsePrefix(o.Spec.CIDR)
		if err != nil || len(o.Spec.Allocations) != blockLen(cidr) {
			continue
		}
		b := block{o, cidr}
		if b.node() == node {
			continue
		}
		for ord := range b.Spec.Allocations {
			if a := b.attr(ord); a != nil && a.Secondary["node"] == node {
				borrowed = append(borrowed, addrAt(b.cidr, ord))
			}
		}
	}
	slices.SortFunc(own, cmpPrefix)
	slices.SortFunc(borrowed, netip.Addr.Compare)
	return own, borrowed
}

// HandleAddrs returns the addresses allocated to a handle, read from the
// blocks the handle names (every block when the handle object is missing):
// what makes adding the same workload twice harmless.
func (c *Client) HandleAddrs(ctx context.Context, handleID string) ([]netip.Addr, error) {
	// An address in an unusable block is not seen: at worst the caller
	// takes a second one, never blocks on the corrupt block.
	blocks, _, err := c.listBlocks(ctx)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, b := range blocks {
		for _, ord := range b.ordinalsOf(handleID) {
			out = append(out, addrAt(b.cidr, ord))
		}
	}
	return out, nil
}
