package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/datastore"
)

// ipipTunnel is the IPIP dataplane (tunl0).
type ipipTunnel interface {
	Ensure(tunnel netip.Addr) error
	Sync(tunnel netip.Addr, routes map[netip.Prefix]netip.Addr) error
}

// ipipDeps are what the IPIP reconciler needs from outside: the tunnel
// address from IPAM on the Node, and tunl0.
type ipipDeps struct {
	// address publishes the node's tunnel address for these IPIP pools
	// (none without pools) and returns it.
	address func(ctx context.Context, pools []netip.Prefix) (netip.Addr, error)
	// open makes the dataplane; it does not touch the kernel yet.
	open func() (ipipTunnel, error)
}

// newIPIPDeps wires the IPIP reconciler to the datastore and to tunl0 in
// this network namespace.
func newIPIPDeps(b datastore.Backend, node string, underlay netip.Addr) *ipipDeps {
	return &ipipDeps{
		address: func(ctx context.Context, pools []netip.Prefix) (netip.Addr, error) {
			return publishIPIPTunnelAddr(ctx, b, node, pools)
		},
		open: func() (ipipTunnel, error) {
			t, err := dataplane.NewIPIP(dataplane.IPIPConfig{Underlay: underlay})
			if err != nil {
				return nil, err // not a nil *IPIP in a non-nil interface
			}
			return t, nil
		},
	}
}

// ipipReconciler does for IPIP pools what BIRD's kernel protocol does
// with krt_tunnel = "tunl0" in calico-node, plus calico-node's tunnel
// address: it keeps the node's IPIP tunnel address (IPAM and Node), puts
// it on tunl0, and routes the remote blocks tunl0 carries, handed over
// from kernel sync first.
//
// Where tunl0 cannot exist (a kernel without IPIP) it fails soft: kernel
// sync keeps routing those blocks natively from BGP, and status names
// every IPIP pool as not encapsulated, so it is never silent.
type ipipReconciler struct {
	deps   *ipipDeps
	kernel excludeTarget // nil when kernel sync is off
	log    *slog.Logger
	tunnel ipipTunnel // nil until an IPIP pool first exists
	// pools and addr are the tunnel address last published, for pools.
	pools lastApplied[[]netip.Prefix]
	addr  netip.Addr
	// excluded is what kernel sync was last told to leave to tunl0.
	excluded lastApplied[[]netip.Prefix]
}

func (r *ipipReconciler) Name() string { return "IPIP" }

// Reconcile publishes the tunnel address, then (once any IPIP pool has
// existed) checks tunl0, hands the blocks over and syncs the routes. A
// failed address does not stop the routes: they need only tunl0.
func (r *ipipReconciler) Reconcile(ctx context.Context, d *desired) error {
	var errs []error
	err := r.pools.apply(d.IPIP.Pools, func(pools []netip.Prefix) error {
		a, err := r.deps.address(ctx, pools)
		if err == nil && a != r.addr {
			r.log.Info("IPIP tunnel address", "device", dataplane.IPIPDevice, "address", a, "pools", pools)
			r.addr = a
		}
		return err
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("tunnel address, retried on the next change: %w", err))
	}
	if r.tunnel == nil && len(d.IPIP.Names) == 0 {
		return errors.Join(errs...)
	}
	if r.tunnel == nil {
		if r.tunnel, err = r.deps.open(); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	if err := r.tunnel.Ensure(r.addr); err != nil {
		// Not one block is handed to a tunnel that cannot carry it.
		if r.hand(ctx, nil) != nil {
			return errors.Join(errs...)
		}
		switch {
		case len(d.IPIP.Names) == 0: // no IPIP pool any more: nothing to carry
		case errors.Is(err, dataplane.ErrNoIPIP):
			d.Problems = append(d.Problems, noIPIPProblem(d.IPIP.Names))
		default:
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	if r.hand(ctx, d.IPIP.Excluded) != nil {
		return errors.Join(errs...) // shutting down, or kernel sync failed (reported by run)
	}
	if err := r.tunnel.Sync(r.addr, d.IPIP.Routes); err != nil {
		errs = append(errs, fmt.Errorf("sync: %w", err))
	}
	return errors.Join(errs...)
}

// hand tells kernel sync which blocks tunl0 routes.
func (r *ipipReconciler) hand(ctx context.Context, blocks []netip.Prefix) error {
	if r.kernel == nil {
		return nil
	}
	return r.excluded.apply(blocks, func(p []netip.Prefix) error { return r.kernel.SetExcluded(ctx, p) })
}

// noIPIPProblem is the status line for IPIP pools on a kernel without
// IPIP.
func noIPIPProblem(pools []string) string {
	return fmt.Sprintf("IPPool %s: spec.ipipMode: %s; this node's blocks in them are routed natively from BGP, which works only where the nodes share a subnet (load the ipip module, or move the pools to vxlanMode)",
		strings.Join(pools, ", "), dataplane.ErrNoIPIP)
}

// excludeUnion lets both tunnels hand blocks over from kernel sync, which
// has one excluded set: the union of theirs.
type excludeUnion struct {
	kernel excludeTarget
	sets   map[string][]netip.Prefix // by owner
}

// owner is one tunnel's handle on the union.
func (u *excludeUnion) owner(name string) excludeTarget { return excludeOwner{u: u, name: name} }

type excludeOwner struct {
	u    *excludeUnion
	name string
}

func (o excludeOwner) SetExcluded(ctx context.Context, prefixes []netip.Prefix) error {
	if o.u.sets == nil {
		o.u.sets = map[string][]netip.Prefix{}
	}
	o.u.sets[o.name] = prefixes
	var all []netip.Prefix
	for _, s := range o.u.sets {
		all = append(all, s...)
	}
	slices.SortFunc(all, netip.Prefix.Compare)
	return o.u.kernel.SetExcluded(ctx, slices.Compact(all))
}
