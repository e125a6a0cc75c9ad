package ipam

import (
	"net/netip"

	"github.com/petrel-net/petrel/datastore"
)

// Origin is where a prefix sits in IPAM: its block with the block's
// affinity, its pool, and for a single address its allocation. explain
// reads it; it is pure, computed from the objects a snapshot holds.
type Origin struct {
	// Block contains the prefix (invalid: no block does).
	Block netip.Prefix
	// Affinity is the node the block is affine to ("" none) and
	// AffinityState its BlockAffinity's state ("" when there is none).
	Affinity, AffinityState string
	// Pool is the IPPool holding the prefix (nil: none).
	Pool *datastore.IPPool
	// For a single address: Allocated, its handle and the node that uses
	// it (the secondary "node" attribute); Borrowed when that node is not
	// the block's.
	Allocated bool
	Handle    string
	UsedBy    string
	Borrowed  bool
}

// OriginOf places p in IPAM.
func OriginOf(p netip.Prefix, blocks []*datastore.IPAMBlock, affinities []*datastore.BlockAffinity, pools []*datastore.IPPool) Origin {
	var o Origin
	for _, pool := range pools {
		if cidr, err := netip.ParsePrefix(pool.Spec.CIDR); err == nil && cidr.Bits() <= p.Bits() && cidr.Contains(p.Addr()) {
			o.Pool = pool
		}
	}
	for _, obj := range blocks {
		cidr, err := netip.ParsePrefix(obj.Spec.CIDR)
		if err != nil || cidr.Bits() > p.Bits() || !cidr.Contains(p.Addr()) {
			continue
		}
		b := block{obj, cidr}
		o.Block, o.Affinity = cidr, b.node()
		if p.IsSingleIP() && len(obj.Spec.Allocations) == blockLen(cidr) {
			o.allocation(b, p.Addr())
		}
	}
	for _, a := range affinities {
		if cidr, err := netip.ParsePrefix(a.Spec.CIDR); err == nil && o.Block.IsValid() && cidr.Masked() == o.Block && a.Spec.Node == o.Affinity {
			o.AffinityState = a.Spec.State
			if o.AffinityState == "" {
				o.AffinityState = "confirmed"
			}
		}
	}
	return o
}

func (o *Origin) allocation(b block, a netip.Addr) {
	ord, ok := ordinal(b.cidr, a)
	if !ok {
		return
	}
	attr := b.attr(ord)
	if attr == nil {
		return
	}
	o.Allocated, o.Handle = true, b.handleOf(ord)
	o.UsedBy = attr.Secondary["node"]
	o.Borrowed = o.UsedBy != "" && o.UsedBy != b.node()
}
