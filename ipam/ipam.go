// Package ipam allocates pod and tunnel addresses the way Calico's
// libcalico-go IPAM does, on Calico's own objects (IPPool, IPAMConfig,
// IPAMBlock, BlockAffinity, IPAMHandle), so a cluster moves between Calico
// and petrel without losing an allocation.
//
// It owns the IPAM objects in the datastore: it claims and releases
// blocks, assigns and releases addresses, and checks their consistency.
// It only reads IPPools, IPAMConfig and Nodes (for pool node selectors).
// It never touches the kernel or BGP; NodeRoutes computes what a node
// advertises, for the daemon to hand to its BGP speaker.
//
// # Writes and crashes
//
// Every write is a compare-and-swap on resourceVersion; on ErrConflict the
// object is read again and the change redone, at most Retries times.
// Assignment writes the handle count before the block and release writes
// the block before the handle, as Calico does: a crash between the two
// writes can only leave a handle counting more addresses than the blocks
// hold, never an address without a handle. Check reports such a count;
// ReleaseByHandle repairs it, because it frees what the blocks hold (not
// what the handle claims) and then deletes the handle.
//
// # Choices
//
//   - IPAMConfig maxBlocksPerHost 0 means no limit (Calico's API: "if
//     non-zero, the maximum number of blocks"); a missing IPAMConfig means
//     strictAffinity false, autoAllocateBlocks true.
//   - An IPPool without allowedUses allows Workload and Tunnel (Calico's
//     default), never LoadBalancer: Service addresses come only from pools
//     that name that use. An empty nodeSelector selects every node; pools
//     named in AssignArgs.Pools, and pools for LoadBalancer addresses (which
//     belong to no node), are used whatever their selector, as in Calico.
//   - A block's empty allocations list is read as all-free slots (see
//     parseBlock).
//   - AutoAssign is all or nothing: when it cannot get every address it
//     releases the ones it took and returns an error (Calico returns the
//     partial list and leaves the release to the CNI plugin).
//   - Taking over another node's empty block after a grace period is not
//     done: a node only borrows addresses from it.
//   - IPv6 pools default to /122 blocks (Calico's default), IPv4 to /26.
//     Ensure gives a handle what it lacks of each requested family and
//     returns what it holds, so a dual-stack pod's repeated CNI ADD takes
//     no second address.
package ipam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/selector"
)

// Errors callers can test with errors.Is; the returned errors wrap them
// in a sentence naming the pool, node or address.
var (
	ErrExhausted    = errors.New("exhausted")            // "pool 10.0.0.0/24 is exhausted"
	ErrNoPool       = errors.New("no IP pool selects")   // "no IP pool selects node n1 ..."
	ErrAllocated    = errors.New("is already allocated") // "10.0.0.5 is already allocated (handle h)"
	ErrNotInPool    = errors.New("is not in any pool")   // "10.9.9.9 is not in any pool"
	ErrBlockInUse   = errors.New("is not empty")         // "block 10.0.0.0/26 is not empty (3 addresses in use)"
	ErrTooManyRetry = errors.New("too many compare-and-swap conflicts")
)

// Pool uses, as IPPool.spec.allowedUses.
const (
	UseWorkload     = "Workload"
	UseTunnel       = "Tunnel"
	UseLoadBalancer = "LoadBalancer"
)

// VirtualLoadBalancer is the node name LoadBalancer addresses are assigned
// for, as Calico's kube-controllers do: their blocks are affine to
// "virtual:load-balancer", so no real node originates them.
const VirtualLoadBalancer = "load-balancer"

// DefaultRetries bounds the compare-and-swap retries of one write, as
// Calico's datastoreRetries.
const DefaultRetries = 100

// Client allocates addresses in a datastore. It keeps no state of its own,
// so any number of Clients (on any number of nodes) may share a store.
type Client struct {
	b       datastore.Backend
	retries int
}

// Option configures a Client.
type Option func(*Client)

// WithRetries sets how many times a write is redone after a conflict.
func WithRetries(n int) Option { return func(c *Client) { c.retries = max(n, 1) } }

// New returns a Client on b.
func New(b datastore.Backend, opts ...Option) *Client {
	c := &Client{b: b, retries: DefaultRetries}
	for _, o := range opts {
		o(c)
	}
	return c
}

// config reads IPAMConfig "default", or Calico's defaults without one.
func (c *Client) config(ctx context.Context) (datastore.IPAMConfigSpec, error) {
	o, err := c.b.Get(ctx, datastore.KindIPAMConfig, "default")
	if errors.Is(err, datastore.ErrNotFound) {
		return datastore.IPAMConfigSpec{AutoAllocateBlocks: true}, nil
	}
	if err != nil {
		return datastore.IPAMConfigSpec{}, fmt.Errorf("ipam: read IPAMConfig: %w", err)
	}
	return o.(*datastore.IPAMConfig).Spec, nil
}

// pool is an IPPool with its parsed fields.
type pool struct {
	name      string
	cidr      netip.Prefix
	blockBits int
	spec      datastore.IPPoolSpec
}

func (p pool) allows(use string) bool {
	if len(p.spec.AllowedUses) == 0 {
		return use != UseLoadBalancer
	}
	return slices.Contains(p.spec.AllowedUses, use)
}

// pools lists every usable IPPool, ordered by CIDR so that allocation
// does not depend on the store's listing order.
func (c *Client) pools(ctx context.Context) ([]pool, error) {
	pools, _, err := c.listPools(ctx)
	return pools, err
}

// listPools is pools, and the IPPools that cannot be used (undecodable, or
// invalid): those are left out, so that one bad pool stops no allocation
// from the others.
func (c *Client) listPools(ctx context.Context) ([]pool, []Problem, error) {
	objs, undecodable, err := c.list(ctx, datastore.KindIPPool)
	if err != nil {
		return nil, nil, err
	}
	var bad []Problem
	for _, e := range undecodable {
		bad = append(bad, Problem{Unusable, "IPPool " + e.Name, e.Error()})
	}
	var out []pool
	for _, o := range objs {
		p := o.(*datastore.IPPool)
		if err := p.Validate(); err != nil {
			bad = append(bad, Problem{Unusable, "IPPool " + p.Name, err.Error()})
			continue
		}
		cidr := netip.MustParsePrefix(p.Spec.CIDR) // Validate parsed it
		bits := p.Spec.BlockSize
		if bits == 0 {
			bits = map[bool]int{true: 26, false: 122}[cidr.Addr().Is4()]
		}
		out = append(out, pool{name: p.Name, cidr: cidr.Masked(), blockBits: bits, spec: p.Spec})
	}
	slices.SortFunc(out, func(a, b pool) int { return cmpPrefix(a.cidr, b.cidr) })
	return out, bad, nil
}

func cmpPrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// poolOf is the pool holding a block or address.
func poolOf(pools []pool, p netip.Prefix) (pool, bool) {
	for _, pl := range pools {
		if pl.cidr.Overlaps(p) && pl.cidr.Bits() <= p.Bits() {
			return pl, true
		}
	}
	return pool{}, false
}

// nodeLabels reads a node's labels; a node not (yet) in the store has
// none, so only selectors that need no label select it.
func (c *Client) nodeLabels(ctx context.Context, node string) (map[string]string, error) {
	o, err := c.b.Get(ctx, datastore.KindNode, node)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ipam: read node %q: %w", node, err)
	}
	return o.GetLabels(), nil
}

// selectPools returns the enabled pools of a family that allow use and
// select node, or the requested ones.
func (c *Client) selectPools(ctx context.Context, all []pool, a AssignArgs, v6 bool) ([]pool, error) {
	fam := map[bool]string{false: "IPv4", true: "IPv6"}[v6]
	var out []pool
	if len(a.Pools) > 0 {
		for _, want := range a.Pools {
			if want.Addr().Is6() != v6 {
				continue
			}
			i := slices.IndexFunc(all, func(p pool) bool { return p.cidr == want.Masked() })
			if i < 0 || all[i].spec.Disabled {
				return nil, fmt.Errorf("ipam: requested pool %s does not exist or is disabled", want)
			}
			if !all[i].allows(a.Use) {
				return nil, fmt.Errorf("ipam: requested pool %s does not allow %s addresses", want, a.Use)
			}
			out = append(out, all[i])
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("ipam: none of the requested pools is %s", fam)
		}
		return out, nil
	}
	var labels map[string]string
	labelsRead := false
	for _, p := range all {
		if p.spec.Disabled || p.cidr.Addr().Is6() != v6 || !p.allows(a.Use) {
			continue
		}
		if s := strings.TrimSpace(p.spec.NodeSelector); s != "" && s != "all()" && a.Use != UseLoadBalancer {
			sel, err := selector.Parse(s)
			if err != nil {
				return nil, fmt.Errorf("ipam: IPPool %q: nodeSelector: %w", p.name, err)
			}
			if !labelsRead {
				if labels, err = c.nodeLabels(ctx, a.Node); err != nil {
					return nil, err
				}
				labelsRead = true
			}
			if !sel.Matches(labels) {
				continue
			}
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ipam: %w node %s (no enabled %s pool for %s addresses)", ErrNoPool, a.Node, fam, a.Use)
	}
	return out, nil
}

// exhausted names the pools in an exhaustion error.
func exhausted(pools []pool) error {
	cidrs := make([]string, len(pools))
	for i, p := range pools {
		cidrs[i] = p.cidr.String()
	}
	if len(pools) == 1 {
		return fmt.Errorf("pool %s is %w", cidrs[0], ErrExhausted)
	}
	return fmt.Errorf("pools %s are %w", strings.Join(cidrs, ", "), ErrExhausted)
}

// retry runs one read-modify-write until it does not conflict.
func (c *Client) retry(what string, fn func() error) error {
	for range c.retries {
		err := fn()
		if !errors.Is(err, datastore.ErrConflict) && !errors.Is(err, datastore.ErrExists) {
			return err
		}
	}
	return fmt.Errorf("ipam: %s: %w (%d attempts)", what, ErrTooManyRetry, c.retries)
}

// getBlock reads and parses a block.
func (c *Client) getBlock(ctx context.Context, cidr netip.Prefix) (block, error) {
	o, err := c.b.Get(ctx, datastore.KindIPAMBlock, BlockName(cidr))
	if err != nil {
		return block{}, err
	}
	return parseBlock(o)
}

// list reads every object of kind. Objects that do not decode are left
// out and returned apart, so that one corrupt object never stops IPAM.
func (c *Client) list(ctx context.Context, kind datastore.Kind) ([]datastore.Object, []*datastore.DecodeError, error) {
	objs, _, err := c.b.List(ctx, kind)
	var skipped *datastore.SkippedError
	if errors.As(err, &skipped) {
		return objs, skipped.Objects, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("ipam: list %ss: %w", kind, err)
	}
	return objs, nil, nil
}

// listBlocks reads every block, ordered by CIDR, and the blocks that
// cannot be used.
func (c *Client) listBlocks(ctx context.Context) ([]block, []badBlock, error) {
	objs, undecodable, err := c.list(ctx, datastore.KindIPAMBlock)
	if err != nil {
		return nil, nil, err
	}
	var bad []badBlock
	for _, e := range undecodable {
		cidr, _ := blockNameCIDR(e.Name)
		bad = append(bad, badBlock{cidr, e})
	}
	out := make([]block, 0, len(objs))
	for _, o := range objs {
		b, err := parseBlock(o)
		var e *datastore.DecodeError
		if errors.As(err, &e) {
			cidr, err := netip.ParsePrefix(o.(*datastore.IPAMBlock).Spec.CIDR)
			if err != nil {
				cidr, _ = blockNameCIDR(o.GetName())
			}
			bad = append(bad, badBlock{cidr, e})
			continue
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b block) int { return cmpPrefix(a.cidr, b.cidr) })
	return out, bad, nil
}

// inBadBlock is the error for an address in a block that cannot be used.
func inBadBlock(ip netip.Addr, bad []badBlock) error {
	for _, b := range bad {
		if b.cidr.IsValid() && b.cidr.Contains(ip) {
			return fmt.Errorf("ipam: %s is in a block that cannot be used: %w", ip, b.err)
		}
	}
	return nil
}

// affinity is a BlockAffinity with its parsed CIDR.
type affinity struct {
	*datastore.BlockAffinity
	cidr netip.Prefix
}

// confirmed is true for Calico's "confirmed" and for the empty state of
// affinities written by old Calico versions.
func (a affinity) confirmed() bool { return a.Spec.State == "confirmed" || a.Spec.State == "" }

// listAffinities reads the BlockAffinities of node ("" for every node),
// ordered by CIDR.
func (c *Client) listAffinities(ctx context.Context, node string) ([]affinity, error) {
	objs, _, err := c.list(ctx, datastore.KindBlockAffinity)
	if err != nil {
		return nil, err
	}
	affs, _ := parseAffinities(objs, node)
	return affs, nil
}

// parseAffinities keeps node's affinities ("" for every node). One whose
// CIDR does not parse is returned apart (Check reports it): its block, if
// any, still says whose it is.
func parseAffinities(objs []datastore.Object, node string) ([]affinity, []*datastore.DecodeError) {
	var out []affinity
	var bad []*datastore.DecodeError
	for _, o := range objs {
		a := o.(*datastore.BlockAffinity)
		if node != "" && a.Spec.Node != node {
			continue
		}
		cidr, err := netip.ParsePrefix(a.Spec.CIDR)
		if err != nil {
			bad = append(bad, datastore.NewDecodeError(datastore.KindBlockAffinity, a.Name, "spec.cidr", err))
			continue
		}
		out = append(out, affinity{a, cidr})
	}
	slices.SortFunc(out, func(a, b affinity) int {
		return cmp.Or(cmpPrefix(a.cidr, b.cidr), strings.Compare(a.Spec.Node, b.Spec.Node))
	})
	return out, bad
}
