package ipam

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/petrel-net/petrel/datastore"
)

// releaseInBlock frees the ordinals pick chooses in a block, then takes
// them off their handles (block first, see the package doc). It returns
// how many addresses each handle lost.
func (c *Client) releaseInBlock(ctx context.Context, cidr netip.Prefix, pick func(block) []int) (map[string]int, error) {
	var counts map[string]int
	err := c.retry("release in block "+cidr.String(), func() error {
		b, err := c.getBlock(ctx, cidr)
		if errors.Is(err, datastore.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ords := pick(b)
		if len(ords) == 0 {
			return nil
		}
		counts = b.release(ords)
		if err := c.updateBlock(ctx, b); err != nil {
			counts = nil
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, h := range slices.Sorted(maps.Keys(counts)) {
		if h == "" {
			continue // an allocation without a handle
		}
		if err := c.adjustHandle(ctx, h, cidr, -counts[h]); err != nil {
			return counts, err
		}
	}
	return counts, nil
}

func sum(counts map[string]int) int {
	n := 0
	for _, v := range counts {
		n += v
	}
	return n
}

// ReleaseIPs frees addresses, whatever their handle, and returns how many
// were allocated. Addresses that are free or in no block are skipped.
func (c *Client) ReleaseIPs(ctx context.Context, ips ...netip.Addr) (int, error) {
	if len(ips) == 0 {
		return 0, nil
	}
	blocks, bad, err := c.listBlocks(ctx)
	if err != nil {
		return 0, err
	}
	byBlock := map[netip.Prefix][]netip.Addr{}
	var unusable []error
	for _, ip := range ips {
		ip = ip.Unmap()
		i := slices.IndexFunc(blocks, func(b block) bool { return b.cidr.Contains(ip) })
		if i >= 0 {
			byBlock[blocks[i].cidr] = append(byBlock[blocks[i].cidr], ip)
		} else if err := inBadBlock(ip, bad); err != nil {
			unusable = append(unusable, err)
		}
	}
	total := 0
	for _, cidr := range slices.SortedFunc(maps.Keys(byBlock), cmpPrefix) {
		counts, err := c.releaseInBlock(ctx, cidr, func(b block) []int {
			var ords []int
			for _, ip := range byBlock[cidr] {
				if o, _ := ordinal(cidr, ip); b.Spec.Allocations[o] != nil && !slices.Contains(ords, o) {
					ords = append(ords, o)
				}
			}
			return ords
		})
		total += sum(counts)
		if err != nil {
			return total, err
		}
	}
	return total, errors.Join(unusable...)
}

// ReleaseByHandle frees every address of a handle, in every block, deletes
// the handle and returns how many addresses it had. It trusts the blocks,
// not the handle's counts, so it also repairs a handle left counting
// addresses by a crash; for a handle that does not exist it looks through
// every block (an orphan allocation). A handle with nothing is no error.
func (c *Client) ReleaseByHandle(ctx context.Context, handleID string) (int, error) {
	name := HandleName(handleID)
	total := 0
	release := func(cidr netip.Prefix, id string) error {
		counts, err := c.releaseInBlock(ctx, cidr, func(b block) []int { return b.ordinalsOf(id) })
		total += counts[id]
		return err
	}
	o, err := c.b.Get(ctx, datastore.KindIPAMHandle, name)
	if errors.Is(err, datastore.ErrNotFound) {
		blocks, _, err := c.listBlocks(ctx) // an orphan in an unusable block stays
		if err != nil {
			return 0, err
		}
		for _, b := range blocks {
			if len(b.ordinalsOf(handleID)) > 0 {
				if err := release(b.cidr, handleID); err != nil {
					return total, err
				}
			}
		}
		return total, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ipam: read handle %s: %w", handleID, err)
	}
	visited := map[string]bool{}
	var unusable []error // blocks that cannot be read: the handle stays for them
	err = c.retry("release handle "+handleID, func() error {
		h := o.(*datastore.IPAMHandle)
		if len(unusable) > 0 && allVisited(h, visited) {
			return errors.Join(unusable...)
		}
		if len(h.Spec.Block) == 0 || allVisited(h, visited) {
			err := c.b.Delete(ctx, datastore.KindIPAMHandle, name, h.ResourceVersion)
			if errors.Is(err, datastore.ErrNotFound) {
				return nil
			}
			if err == nil || !errors.Is(err, datastore.ErrConflict) {
				return err
			}
		} else {
			for _, key := range slices.Sorted(maps.Keys(h.Spec.Block)) {
				if visited[key] {
					continue
				}
				visited[key] = true
				cidr, err := netip.ParsePrefix(key)
				if err != nil {
					return fmt.Errorf("ipam: handle %s: block %q: %w", handleID, key, err)
				}
				var bad *datastore.DecodeError
				if err := release(cidr, h.Spec.HandleID); errors.As(err, &bad) {
					unusable = append(unusable, fmt.Errorf("ipam: handle %s: %w", handleID, err))
				} else if err != nil {
					return err
				}
			}
		}
		// Read it again: the releases changed it, and whatever the handle
		// says now decides whether it can go.
		if o, err = c.b.Get(ctx, datastore.KindIPAMHandle, name); errors.Is(err, datastore.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return datastore.ErrConflict
	})
	return total, err
}

func allVisited(h *datastore.IPAMHandle, visited map[string]bool) bool {
	for key := range h.Spec.Block {
		if !visited[key] {
			return false
		}
	}
	return true
}

// ReleaseAffinity gives up node's claim on an empty block, as Calico's
// releaseBlockAffinity: the affinity goes pendingDeletion (so the node
// stops allocating in it), the block is deleted if still empty (CAS), then
// the affinity. A block in use keeps its affinity (back to confirmed) and
// the error wraps ErrBlockInUse.
func (c *Client) ReleaseAffinity(ctx context.Context, node string, cidr netip.Prefix) error {
	if err := c.setAffinityState(ctx, node, cidr, "pendingDeletion"); err != nil {
		return err
	}
	err := c.retry("delete block "+cidr.String(), func() error {
		b, err := c.getBlock(ctx, cidr)
		if errors.Is(err, datastore.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if b.node() != node {
			return nil // someone else's block: only our affinity goes
		}
		if n := b.used(); n > 0 {
			return fmt.Errorf("ipam: block %s %w (%d addresses in use)", cidr, ErrBlockInUse, n)
		}
		err = c.b.Delete(ctx, datastore.KindIPAMBlock, b.Name, b.ResourceVersion)
		if errors.Is(err, datastore.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		if serr := c.setAffinityState(context.WithoutCancel(ctx), node, cidr, "confirmed"); serr != nil {
			err = fmt.Errorf("%w (and restoring the affinity: %v)", err, serr)
		}
		return err
	}
	err = c.b.Delete(ctx, datastore.KindBlockAffinity, AffinityName(node, cidr), "")
	if errors.Is(err, datastore.ErrNotFound) {
		return nil
	}
	return err
}

// ReleaseEmptyBlocks releases every affinity of node whose block holds no
// address (or does not exist), and returns those blocks. Releasing an
// address never does this by itself, as in Calico.
func (c *Client) ReleaseEmptyBlocks(ctx context.Context, node string) ([]netip.Prefix, error) {
	affs, err := c.listAffinities(ctx, node)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, af := range affs {
		b, err := c.getBlock(ctx, af.cidr)
		if err != nil && !errors.Is(err, datastore.ErrNotFound) {
			return out, err
		}
		if err == nil && b.used() > 0 {
			continue
		}
		err = c.ReleaseAffinity(ctx, node, af.cidr)
		if errors.Is(err, ErrBlockInUse) {
			continue // an address was taken meanwhile
		}
		if err != nil {
			return out, err
		}
		out = append(out, af.cidr)
	}
	return out, nil
}
