package ipam

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/petrel-net/petrel/datastore"
)

// block is an IPAMBlock with its parsed CIDR. Its methods change the
// object in memory only; the caller writes it back with compare-and-swap.
type block struct {
	*datastore.IPAMBlock
	cidr netip.Prefix
}

// parseBlock wraps a stored block. An allocations list that is empty
// (as in a trimmed dump) is read as all-free slots, Calico's blocks always
// having one slot per address; ordinals listed in neither allocations nor
// unallocated then stay unusable and Check reports them. A block that
// cannot be used at all is a *datastore.DecodeError naming the field.
func parseBlock(o datastore.Object) (block, error) {
	b := o.(*datastore.IPAMBlock)
	cidr, err := netip.ParsePrefix(b.Spec.CIDR)
	if err != nil {
		return block{}, datastore.NewDecodeError(datastore.KindIPAMBlock, b.Name, "spec.cidr", err)
	}
	if n := blockLen(cidr); len(b.Spec.Allocations) != n {
		if len(b.Spec.Allocations) != 0 {
			return block{}, datastore.NewDecodeError(datastore.KindIPAMBlock, b.Name, "spec.allocations",
				fmt.Errorf("%d slots for %s, want %d", len(b.Spec.Allocations), cidr, n))
		}
		b.Spec.Allocations = make([]*int, n)
	}
	for _, ord := range b.Spec.Unallocated {
		if ord < 0 || ord >= len(b.Spec.Allocations) {
			return block{}, datastore.NewDecodeError(datastore.KindIPAMBlock, b.Name, "spec.unallocated",
				fmt.Errorf("ordinal %d outside %s", ord, cidr))
		}
	}
	return block{b, cidr}, nil
}

// badBlock is a stored IPAMBlock that cannot be used: undecodable, or
// decoded but inconsistent. Its addresses may be allocated, so its range
// stays reserved: nothing claims it, allocates from it or releases in it,
// and Check reports it, until an operator repairs or deletes it.
type badBlock struct {
	cidr netip.Prefix // from the object, else from its name; invalid when neither tells
	err  *datastore.DecodeError
}

// blockNameCIDR reads a block's CIDR back from its name (BlockName's
// inverse: the last '-' was the '/', the others '.' or ':').
func blockNameCIDR(name string) (netip.Prefix, bool) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return netip.Prefix{}, false
	}
	head, bits := name[:i], name[i+1:]
	for _, sep := range []string{".", ":"} {
		if p, err := netip.ParsePrefix(strings.ReplaceAll(head, "-", sep) + "/" + bits); err == nil && BlockName(p) == name {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// newBlock is a fresh block affine to node: every ordinal free, in order.
func newBlock(cidr netip.Prefix, node string, strict bool) *datastore.IPAMBlock {
	o, _ := datastore.New(datastore.KindIPAMBlock)
	b := o.(*datastore.IPAMBlock)
	b.Name = BlockName(cidr)
	aff := blockAffinity(node)
	b.Spec = datastore.IPAMBlockSpec{
		CIDR:           cidr.String(),
		Affinity:       &aff,
		Allocations:    make([]*int, blockLen(cidr)),
		Unallocated:    make([]int, blockLen(cidr)),
		Attributes:     []datastore.AllocationAttribute{},
		StrictAffinity: strict,
	}
	for i := range b.Spec.Unallocated {
		b.Spec.Unallocated[i] = i
	}
	return b
}

// node is the node the block is affine to ("" if none), or
// VirtualLoadBalancer for Calico's "virtual:load-balancer".
func (b block) node() string {
	if b.Spec.Affinity == nil {
		return ""
	}
	if *b.Spec.Affinity == blockAffinity(VirtualLoadBalancer) {
		return VirtualLoadBalancer
	}
	n, _ := strings.CutPrefix(*b.Spec.Affinity, "host:")
	if n == *b.Spec.Affinity {
		return ""
	}
	return n
}

func (b block) free() int { return len(b.Spec.Unallocated) }

func (b block) used() int {
	n := 0
	for _, a := range b.Spec.Allocations {
		if a != nil {
			n++
		}
	}
	return n
}

// attr is the attribute of an allocated ordinal (nil when free or when
// the index is out of range).
func (b block) attr(ord int) *datastore.AllocationAttribute {
	a := b.Spec.Allocations[ord]
	if a == nil || *a < 0 || *a >= len(b.Spec.Attributes) {
		return nil
	}
	return &b.Spec.Attributes[*a]
}

// handleOf is the handle id of an allocated ordinal.
func (b block) handleOf(ord int) string {
	if a := b.attr(ord); a != nil && a.HandleID != nil {
		return *a.HandleID
	}
	return ""
}

// ordinalsOf lists the ordinals allocated to a handle.
func (b block) ordinalsOf(handleID string) []int {
	var out []int
	for ord, a := range b.Spec.Allocations {
		if a != nil && b.handleOf(ord) == handleID {
			out = append(out, ord)
		}
	}
	return out
}

// attributeIndex finds an identical attribute or appends one, as
// Calico's findOrAddAttribute.
func (b block) attributeIndex(handleID string, secondary map[string]string) int {
	for i, a := range b.Spec.Attributes {
		if a.HandleID != nil && *a.HandleID == handleID && maps.Equal(a.Secondary, secondary) {
			return i
		}
	}
	h := handleID
	b.Spec.Attributes = append(b.Spec.Attributes, datastore.AllocationAttribute{HandleID: &h, Secondary: maps.Clone(secondary)})
	return len(b.Spec.Attributes) - 1
}

// assign allocates free ordinals to a handle. Calico stamps each
// allocation with the block's sequence number and bumps it on every write,
// so a release can tell a re-used address from the one it meant.
func (b block) assign(ords []int, handleID string, secondary map[string]string) {
	idx := b.attributeIndex(handleID, secondary)
	taken := map[int]bool{}
	for _, o := range ords {
		b.Spec.Allocations[o] = &idx
		taken[o] = true
		if b.Spec.SequenceNumberForAllocation == nil {
			b.Spec.SequenceNumberForAllocation = map[string]uint64{}
		}
		b.Spec.SequenceNumberForAllocation[strconv.Itoa(o)] = b.Spec.SequenceNumber
	}
	b.Spec.Unallocated = slices.DeleteFunc(b.Spec.Unallocated, func(o int) bool { return taken[o] })
	b.Spec.SequenceNumber++
}

// release frees allocated ordinals: each goes to the tail of unallocated,
// and the attributes they used that nothing references any more are
// dropped (the rest renumbered), as Calico does. It returns how many
// addresses each handle lost.
func (b block) release(ords []int) map[string]int {
	counts := map[string]int{}
	freed := map[int]bool{}
	for _, o := range ords {
		a := b.Spec.Allocations[o]
		if a == nil {
			continue
		}
		counts[b.handleOf(o)]++
		freed[*a] = true
		b.Spec.Allocations[o] = nil
		b.Spec.Unallocated = append(b.Spec.Unallocated, o)
		delete(b.Spec.SequenceNumberForAllocation, strconv.Itoa(o))
	}
	for _, a := range b.Spec.Allocations {
		if a != nil {
			delete(freed, *a)
		}
	}
	b.dropAttributes(freed)
	b.Spec.SequenceNumber++
	return counts
}

// dropAttributes removes the attributes at the given indexes and renumbers
// the allocations that point past them.
func (b block) dropAttributes(drop map[int]bool) {
	if len(drop) == 0 {
		return
	}
	renumber := make([]int, len(b.Spec.Attributes))
	var kept []datastore.AllocationAttribute
	for i, a := range b.Spec.Attributes {
		renumber[i] = len(kept)
		if !drop[i] {
			kept = append(kept, a)
		}
	}
	b.Spec.Attributes = kept
	if kept == nil {
		b.Spec.Attributes = []datastore.AllocationAttribute{}
	}
	for i, a := range b.Spec.Allocations {
		if a != nil && *a >= 0 && *a < len(renumber) {
			n := renumber[*a]
			b.Spec.Allocations[i] = &n
		}
	}
}
