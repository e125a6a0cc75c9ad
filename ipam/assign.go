package ipam

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/petrel-net/petrel/datastore"
)

// AssignArgs says what AutoAssign allocates.
type AssignArgs struct {
	Node   string // the node the addresses are for
	Handle string // the handle id the addresses belong to (a pod's "k8s-pod-network.<container id>")
	Num4   int    // IPv4 addresses wanted
	Num6   int    // IPv6 addresses wanted
	// Attrs is stored as the allocations' secondary attributes
	// (namespace, node, pod, timestamp…); "node" defaults to Node, which
	// is what NodeRoutes reads for borrowed addresses.
	Attrs map[string]string
	// Pools, if set, restricts allocation to these pools (ignoring their
	// node selectors, as Calico does).
	Pools []netip.Prefix
	Use   string // UseWorkload (default), UseTunnel or UseLoadBalancer
}

func (a *AssignArgs) check() error {
	switch {
	case a.Node == "":
		return errors.New("ipam: no node given")
	case a.Handle == "":
		return errors.New("ipam: no handle given")
	case a.Num4 < 0 || a.Num6 < 0:
		return fmt.Errorf("ipam: negative address count (%d IPv4, %d IPv6)", a.Num4, a.Num6)
	}
	if a.Use == "" {
		a.Use = UseWorkload
	}
	if a.Use != UseWorkload && a.Use != UseTunnel && a.Use != UseLoadBalancer {
		return fmt.Errorf("ipam: use %q: want %s, %s or %s", a.Use, UseWorkload, UseTunnel, UseLoadBalancer)
	}
	attrs := maps.Clone(a.Attrs)
	if attrs == nil {
		attrs = map[string]string{}
	}
	if attrs["node"] == "" {
		attrs["node"] = a.Node
	}
	a.Attrs = attrs
	return nil
}

// AutoAssign allocates Num4 IPv4 and Num6 IPv6 addresses for a node:
// first from the blocks affine to it, then from new blocks it claims, then
// (unless strictAffinity) from other nodes' blocks. It gets them all or
// none.
func (c *Client) AutoAssign(ctx context.Context, a AssignArgs) ([]netip.Addr, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	cfg, err := c.config(ctx)
	if err != nil {
		return nil, err
	}
	all, err := c.pools(ctx)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, fam := range []struct {
		n  int
		v6 bool
	}{{a.Num4, false}, {a.Num6, true}} {
		if fam.n == 0 {
			continue
		}
		pools, err := c.selectPools(ctx, all, a, fam.v6)
		if err == nil {
			var got []netip.Addr
			got, err = c.assignFamily(ctx, a, cfg, pools, fam.n)
			out = append(out, got...)
		}
		if err != nil {
			if _, rerr := c.ReleaseIPs(context.WithoutCancel(ctx), out...); rerr != nil {
				err = fmt.Errorf("%w (and releasing the %d addresses taken: %v)", err, len(out), rerr)
			}
			return nil, err
		}
	}
	return out, nil
}

// Ensure returns a.Num4 IPv4 and a.Num6 IPv6 addresses of a.Handle: those
// the handle already holds of each family, and new ones from AutoAssign
// for what is missing (all or nothing, as AutoAssign). Calling it again
// for the same handle (a repeated CNI ADD, or a retry after a write lost a
// compare-and-swap race) takes no second address: a dual-stack pod keeps
// one address of each family under one handle. IPv4 addresses come first.
func (c *Client) Ensure(ctx context.Context, a AssignArgs) ([]netip.Addr, error) {
	if a.Num4 < 0 || a.Num6 < 0 {
		return nil, fmt.Errorf("ipam: handle %s: negative address count (%d IPv4, %d IPv6)", a.Handle, a.Num4, a.Num6)
	}
	if a.Num4+a.Num6 == 0 {
		return nil, fmt.Errorf("ipam: handle %s: no address family requested", a.Handle)
	}
	held, err := c.HandleAddrs(ctx, a.Handle)
	if err != nil {
		return nil, fmt.Errorf("ipam: handle %s: %w", a.Handle, err)
	}
	var v4, v6 []netip.Addr
	for _, addr := range held {
		if addr.Is4() && len(v4) < a.Num4 {
			v4 = append(v4, addr)
		} else if addr.Is6() && len(v6) < a.Num6 {
			v6 = append(v6, addr)
		}
	}
	missing := a
	missing.Num4, missing.Num6 = a.Num4-len(v4), a.Num6-len(v6)
	if missing.Num4+missing.Num6 > 0 {
		got, err := c.AutoAssign(ctx, missing)
		if err != nil {
			return nil, err
		}
		for _, addr := range got {
			if addr.Is4() {
				v4 = append(v4, addr)
			} else {
				v6 = append(v6, addr)
			}
		}
	}
	if len(v4) != a.Num4 || len(v6) != a.Num6 {
		return nil, fmt.Errorf("ipam: handle %s: got %d IPv4 and %d IPv6 addresses, want %d and %d", a.Handle, len(v4), len(v6), a.Num4, a.Num6)
	}
	return append(v4, v6...), nil
}

// EnsureIPv4 is Ensure for one IPv4 address (a.Num4 and a.Num6 are
// ignored).
func (c *Client) EnsureIPv4(ctx context.Context, a AssignArgs) (netip.Addr, error) {
	a.Num4, a.Num6 = 1, 0
	addrs, err := c.Ensure(ctx, a)
	if err != nil {
		return netip.Addr{}, err
	}
	return addrs[0], nil
}

// assignFamily allocates n addresses from pools (all of one family): from
// the node's blocks, then from blocks it claims, then borrowed from other
// nodes' blocks.
func (c *Client) assignFamily(ctx context.Context, a AssignArgs, cfg datastore.IPAMConfigSpec, pools []pool, n int) ([]netip.Addr, error) {
	as := &assignment{c: c, args: a, cfg: cfg, pools: pools, n: n}
	if err := as.fromOwnBlocks(ctx); err != nil {
		return as.got, err
	}
	if err := as.borrow(ctx); err != nil {
		return as.got, err
	}
	if len(as.got) < n {
		err := exhausted(pools)
		if len(as.why) > 0 {
			err = fmt.Errorf("%w (%s)", err, strings.Join(as.why, "; "))
		}
		return as.got, fmt.Errorf("ipam: %d of %d addresses for node %s: %w", len(as.got), n, a.Node, err)
	}
	return as.got, nil
}

// assignment is one assignFamily call under way.
type assignment struct {
	c     *Client
	args  AssignArgs
	cfg   datastore.IPAMConfigSpec
	pools []pool
	n     int
	got   []netip.Addr
	// why says what stopped the node from claiming or borrowing more.
	why []string
}

func (as *assignment) done() bool { return len(as.got) == as.n }

// take allocates what is still missing from one block: one affine to the
// node (mine), or one it borrows from.
func (as *assignment) take(ctx context.Context, cidr netip.Prefix, mine bool) error {
	a := as.args
	ips, err := as.c.allocate(ctx, cidr, a.Handle, a.Attrs, func(b block) ([]int, error) {
		if b.Spec.Deleted || (mine && b.node() != a.Node) || (!mine && (b.node() == a.Node || b.Spec.StrictAffinity)) {
			return nil, nil
		}
		return b.Spec.Unallocated[:min(as.n-len(as.got), b.free())], nil
	})
	as.got = append(as.got, ips...)
	var unusable *datastore.DecodeError
	if errors.As(err, &unusable) {
		return nil // reserved as it is; Check reports it
	}
	return err
}

// fromOwnBlocks takes addresses from the node's blocks, claiming a new
// block each time they run out, until done or no block can be claimed.
func (as *assignment) fromOwnBlocks(ctx context.Context) error {
	for !as.done() {
		mine, err := as.fromAffineBlocks(ctx)
		if err != nil || as.done() {
			return err
		}
		claimed, err := as.claimBlock(ctx, mine)
		if err != nil || !claimed {
			return err
		}
	}
	return nil
}

// fromAffineBlocks takes addresses from the blocks affine to the node in
// the pools, and returns how many such blocks it has.
func (as *assignment) fromAffineBlocks(ctx context.Context) (mine int, err error) {
	affs, err := as.c.listAffinities(ctx, as.args.Node)
	if err != nil {
		return 0, err
	}
	for _, af := range affs {
		if _, ok := poolOf(as.pools, af.cidr); !ok || af.Spec.State == "pendingDeletion" {
			continue
		}
		mine++
		if !af.confirmed() && !as.c.confirm(ctx, af) {
			continue // a claim in progress, or abandoned (Check reports it)
		}
		if err := as.take(ctx, af.cidr, true); err != nil {
			return mine, err
		}
		if as.done() {
			return mine, nil
		}
	}
	return mine, nil
}

// claimBlock claims a free block for the node, unless IPAMConfig forbids
// it or the node already has its maximum (mine).
func (as *assignment) claimBlock(ctx context.Context, mine int) (bool, error) {
	if !as.cfg.AutoAllocateBlocks {
		as.why = append(as.why, "autoAllocateBlocks is false")
		return false, nil
	}
	if as.cfg.MaxBlocksPerHost > 0 && mine >= as.cfg.MaxBlocksPerHost {
		as.why = append(as.why, fmt.Sprintf("node %s has reached maxBlocksPerHost %d", as.args.Node, as.cfg.MaxBlocksPerHost))
		return false, nil
	}
	return as.c.claimFreeBlock(ctx, as.args.Node, as.pools, as.cfg.StrictAffinity)
}

// borrow takes what is still missing from other nodes' blocks, unless
// strictAffinity forbids it.
func (as *assignment) borrow(ctx context.Context) error {
	if as.done() {
		return nil
	}
	if as.cfg.StrictAffinity {
		as.why = append(as.why, "strictAffinity forbids borrowing")
		return nil
	}
	blocks, _, err := as.c.listBlocks(ctx)
	if err != nil {
		return err
	}
	for _, b := range blocks {
		if _, ok := poolOf(as.pools, b.cidr); !ok || b.free() == 0 || b.node() == as.args.Node {
			continue
		}
		if err := as.take(ctx, b.cidr, false); err != nil {
			return err
		}
		if as.done() {
			return nil
		}
	}
	return nil
}

// AssignIP allocates a given address to a handle. The address must be in
// an enabled pool (of any use); if its block does not exist yet, node
// claims it.
func (c *Client) AssignIP(ctx context.Context, node string, ip netip.Addr, handle string, attrs map[string]string) error {
	return c.assignIP(ctx, AssignArgs{Node: node, Handle: handle, Attrs: attrs}, ip, false)
}

// AssignIPFor is AssignIP for a.Node, a.Handle and a.Attrs, from a pool
// that allows a.Use: a Service's requested LoadBalancer address must be in
// a LoadBalancer pool.
func (c *Client) AssignIPFor(ctx context.Context, a AssignArgs, ip netip.Addr) error {
	return c.assignIP(ctx, a, ip, true)
}

func (c *Client) assignIP(ctx context.Context, a AssignArgs, ip netip.Addr, checkUse bool) error {
	if err := a.check(); err != nil {
		return err
	}
	ip = ip.Unmap()
	all, err := c.pools(ctx)
	if err != nil {
		return err
	}
	p, ok := poolOf(all, netip.PrefixFrom(ip, ip.BitLen()))
	if !ok {
		return fmt.Errorf("ipam: %s %w", ip, ErrNotInPool)
	}
	if p.spec.Disabled {
		return fmt.Errorf("ipam: %s is in disabled pool %s", ip, p.cidr)
	}
	if checkUse && !p.allows(a.Use) {
		return fmt.Errorf("ipam: %s is in pool %s, which does not allow %s addresses", ip, p.cidr, a.Use)
	}
	node := a.Node
	cidr := blockOf(ip, p.blockBits)
	for range c.retries {
		ips, err := c.allocate(ctx, cidr, a.Handle, a.Attrs, func(b block) ([]int, error) {
			ord, _ := ordinal(b.cidr, ip)
			if b.Spec.Allocations[ord] != nil {
				return nil, fmt.Errorf("ipam: %s %w (handle %s)", ip, ErrAllocated, b.handleOf(ord))
			}
			if !slices.Contains(b.Spec.Unallocated, ord) {
				return nil, fmt.Errorf("ipam: %s is not free in block %s (neither allocated nor unallocated; see Check)", ip, b.cidr)
			}
			return []int{ord}, nil
		})
		if err != nil || len(ips) == 1 {
			return err
		}
		// No block yet: claim it for node (or lose it to another node,
		// whose block then holds the address).
		cfg, err := c.config(ctx)
		if err != nil {
			return err
		}
		if _, err := c.claim(ctx, node, cidr, cfg.StrictAffinity); err != nil {
			return err
		}
	}
	return fmt.Errorf("ipam: assign %s: %w", ip, ErrTooManyRetry)
}

// allocate assigns the ordinals pick chooses in a block to a handle. The
// handle is counted first (see the package doc); if the block write then
// takes fewer addresses than counted, the count is corrected. A missing
// block or an empty pick allocates nothing.
func (c *Client) allocate(ctx context.Context, cidr netip.Prefix, handle string, attrs map[string]string, pick func(block) ([]int, error)) ([]netip.Addr, error) {
	var counted int
	var ips []netip.Addr
	err := c.retry("allocate in block "+cidr.String(), func() error {
		b, err := c.getBlock(ctx, cidr)
		if errors.Is(err, datastore.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ords, err := pick(b)
		if err != nil || len(ords) == 0 {
			return err
		}
		ords = slices.Clone(ords)
		if counted < len(ords) {
			if err := c.adjustHandle(ctx, handle, cidr, len(ords)-counted); err != nil {
				return err
			}
			counted = len(ords)
		}
		b.assign(ords, handle, attrs)
		if err := c.updateBlock(ctx, b); err != nil {
			return err
		}
		for _, o := range ords {
			ips = append(ips, addrAt(cidr, o))
		}
		return nil
	})
	if counted > len(ips) {
		if aerr := c.adjustHandle(context.WithoutCancel(ctx), handle, cidr, len(ips)-counted); aerr != nil && err == nil {
			err = aerr
		}
	}
	return ips, err
}

// updateBlock writes a block back; a block deleted since it was read is a
// conflict too, so that the caller reads it again (and finds it gone).
func (c *Client) updateBlock(ctx context.Context, b block) error {
	_, err := c.b.Update(ctx, b.IPAMBlock)
	if errors.Is(err, datastore.ErrNotFound) {
		return fmt.Errorf("%w: block %s deleted", datastore.ErrConflict, b.cidr)
	}
	return err
}

// adjustHandle adds delta to a handle's count for a block, creating the
// handle at its first address and deleting it at its last.
func (c *Client) adjustHandle(ctx context.Context, handleID string, cidr netip.Prefix, delta int) error {
	name, key := HandleName(handleID), cidr.String()
	return c.retry("update handle "+handleID, func() error {
		o, err := c.b.Get(ctx, datastore.KindIPAMHandle, name)
		if errors.Is(err, datastore.ErrNotFound) {
			if delta <= 0 {
				return nil // nothing to take from: an orphan allocation
			}
			o, _ = datastore.New(datastore.KindIPAMHandle)
			h := o.(*datastore.IPAMHandle)
			h.Name = name
			h.Spec = datastore.IPAMHandleSpec{HandleID: handleID, Block: map[string]int{key: delta}}
			_, err = c.b.Create(ctx, h)
			return err
		}
		if err != nil {
			return err
		}
		h := o.(*datastore.IPAMHandle)
		if h.Spec.Block == nil {
			h.Spec.Block = map[string]int{}
		}
		if n := h.Spec.Block[key] + delta; n > 0 {
			h.Spec.Block[key] = n
		} else {
			delete(h.Spec.Block, key)
		}
		if len(h.Spec.Block) == 0 {
			err = c.b.Delete(ctx, datastore.KindIPAMHandle, name, h.ResourceVersion)
			if errors.Is(err, datastore.ErrNotFound) {
				return datastore.ErrConflict // deleted under us: look again
			}
			return err
		}
		_, err = c.b.Update(ctx, h)
		return err
	})
}

// claimFreeBlock claims for node the first block, in the node's candidate
// order, that no one has; false when every pool is full.
func (c *Client) claimFreeBlock(ctx context.Context, node string, pools []pool, strict bool) (bool, error) {
	blocks, bad, err := c.listBlocks(ctx)
	if err != nil {
		return false, err
	}
	taken := map[netip.Prefix]bool{}
	for _, b := range blocks {
		taken[b.cidr] = true
	}
	for _, b := range bad {
		if b.cidr.IsValid() {
			taken[b.cidr] = true // its addresses may be in use
		}
	}
	for _, p := range pools {
		inPool := 0
		for cidr := range taken {
			if p.cidr.Contains(cidr.Addr()) {
				inPool++
			}
		}
		if numBlocks(p.cidr, p.blockBits).IsInt64() && int64(inPool) >= numBlocks(p.cidr, p.blockBits).Int64() {
			continue
		}
		for cidr := range candidateBlocks(p.cidr, p.blockBits, node) {
			if taken[cidr] {
				continue
			}
			ok, err := c.claim(ctx, node, cidr, strict)
			if ok || err != nil {
				return ok, err
			}
			taken[cidr] = true
		}
	}
	return false, nil
}

// claim makes node the owner of a block in two phases, as Calico: a
// pending BlockAffinity, then the block (whose creation decides between
// racing nodes), then the affinity confirmed. If another node's block
// already exists, the pending affinity is withdrawn and claim says false.
// An existing affinity or block of node (a claim by another worker, or one
// cut short by a crash) is taken over.
func (c *Client) claim(ctx context.Context, node string, cidr netip.Prefix, strict bool) (bool, error) {
	o, _ := datastore.New(datastore.KindBlockAffinity)
	aff := o.(*datastore.BlockAffinity)
	aff.Name = AffinityName(node, cidr)
	aff.Spec = datastore.BlockAffinitySpec{State: "pending", Node: node, CIDR: cidr.String(), Deleted: "false"}
	if _, err := c.b.Create(ctx, aff); err != nil && !errors.Is(err, datastore.ErrExists) {
		return false, fmt.Errorf("ipam: claim %s: %w", cidr, err)
	}
	_, err := c.b.Create(ctx, newBlock(cidr, node, strict))
	if errors.Is(err, datastore.ErrExists) {
		var b block
		var unusable *datastore.DecodeError
		if b, err = c.getBlock(ctx, cidr); (err == nil && b.node() != node) || errors.As(err, &unusable) {
			c.withdraw(ctx, aff.Name) // another node's, or corrupt: not ours to take
			return false, nil
		}
	}
	if err != nil {
		return false, fmt.Errorf("ipam: claim %s: %w", cidr, err)
	}
	return true, c.setAffinityState(ctx, node, cidr, "confirmed")
}

// withdraw deletes a pending affinity of a claim lost to another node. A
// failure leaves an affinity without a block, which Check reports and
// ReleaseEmptyBlocks removes.
func (c *Client) withdraw(ctx context.Context, name string) {
	_ = c.retry("withdraw "+name, func() error {
		o, err := c.b.Get(ctx, datastore.KindBlockAffinity, name)
		if err != nil || o.(*datastore.BlockAffinity).Spec.State != "pending" {
			return nil
		}
		err = c.b.Delete(ctx, datastore.KindBlockAffinity, name, o.GetResourceVersion())
		if errors.Is(err, datastore.ErrNotFound) {
			return nil
		}
		return err
	})
}

// confirm finishes a pending claim of node's whose block exists and is
// node's (the claimant crashed or is about to confirm it itself).
func (c *Client) confirm(ctx context.Context, af affinity) bool {
	b, err := c.getBlock(ctx, af.cidr)
	if err != nil || b.node() != af.Spec.Node {
		return false
	}
	return c.setAffinityState(ctx, af.Spec.Node, af.cidr, "confirmed") == nil
}

// setAffinityState moves node's affinity for a block to state, creating
// it if it went missing (a confirmed claim must leave an affinity).
func (c *Client) setAffinityState(ctx context.Context, node string, cidr netip.Prefix, state string) error {
	name := AffinityName(node, cidr)
	return c.retry("set "+name+" "+state, func() error {
		o, err := c.b.Get(ctx, datastore.KindBlockAffinity, name)
		if errors.Is(err, datastore.ErrNotFound) {
			o, _ = datastore.New(datastore.KindBlockAffinity)
			a := o.(*datastore.BlockAffinity)
			a.Name = name
			a.Spec = datastore.BlockAffinitySpec{State: state, Node: node, CIDR: cidr.String(), Deleted: "false"}
			_, err = c.b.Create(ctx, a)
			return err
		}
		if err != nil {
			return err
		}
		a := o.(*datastore.BlockAffinity)
		if a.Spec.State == state {
			return nil
		}
		a.Spec.State = state
		_, err = c.b.Update(ctx, a)
		return err
	})
}
