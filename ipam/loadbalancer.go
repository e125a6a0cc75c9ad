package ipam

import (
	"context"
	"net/netip"
	"strings"
)

// PoolsFor returns the enabled pools that allow use, by name: a caller
// that hands out addresses of that use (the LoadBalancer assigner) learns
// whether it has anything to do and resolves pools named in requests.
func (c *Client) PoolsFor(ctx context.Context, use string) (map[string]netip.Prefix, error) {
	pools, err := c.pools(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]netip.Prefix{}
	for _, p := range pools {
		if !p.spec.Disabled && p.allows(use) {
			out[p.name] = p.cidr
		}
	}
	return out, nil
}

// HandlesWithPrefix returns the addresses of every handle whose id starts
// with prefix, read from the blocks in one listing: the state a controller
// that alone allocates under that prefix rebuilds when it takes over.
func (c *Client) HandlesWithPrefix(ctx context.Context, prefix string) (map[string][]netip.Addr, error) {
	blocks, _, err := c.listBlocks(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]netip.Addr{}
	for _, b := range blocks {
		for ord := range b.Spec.Allocations {
			if h := b.handleOf(ord); h != "" && strings.HasPrefix(h, prefix) {
				out[h] = append(out[h], addrAt(b.cidr, ord))
			}
		}
	}
	return out, nil
}
