package daemon

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/petrel-net/petrel/dataplane"
)

// excludeTarget is the part of kernel sync that hands prefixes to another
// owner.
type excludeTarget interface {
	SetExcluded(ctx context.Context, prefixes []netip.Prefix) error
}

// tunnel is the VXLAN dataplane.
type tunnel interface {
	Sync(remotes []dataplane.Remote) error
}

// vxlanReconciler sets one family's VXLAN tunnel up on the first pool
// that needs it, then keeps its remotes, and hands the blocks it routes
// over from kernel sync to it. There is one per family: vxlan.calico and
// vxlan-v6.calico are independent, and a node runs either or both.
type vxlanReconciler struct {
	fam vxlanFamily
	// setup creates the tunnel (a datastore write and a device), its
	// address from pools.
	setup  func(ctx context.Context, fam vxlanFamily, pools []netip.Prefix) (tunnel, error)
	kernel excludeTarget // nil when kernel sync is off
	tunnel tunnel        // nil until set up
	// excluded is what kernel sync was last told to leave alone.
	excluded lastApplied[[]netip.Prefix]
}

func (r *vxlanReconciler) Name() string {
	if r.fam.v6 {
		return "VXLAN " + r.fam.name
	}
	return "VXLAN"
}

// plan is the family's part of d.
func (r *vxlanReconciler) plan(d *desired) vxlanPlan {
	if r.fam.v6 {
		return d.VXLANV6
	}
	return d.VXLAN
}

// Reconcile hands the tunnel's blocks over before the tunnel writes their
// routes (kernel sync would otherwise take them back). The remotes go to
// Sync on every pass, unchanged ones too: Sync checks the device and its
// entries against the kernel, which is how a deleted device comes back.
func (r *vxlanReconciler) Reconcile(ctx context.Context, d *desired) error {
	plan := r.plan(d)
	if r.tunnel == nil && plan.Enabled {
		t, err := r.setup(ctx, r.fam, plan.Pools)
		if err != nil {
			return fmt.Errorf("setup, retried on the next change: %w", err)
		}
		r.tunnel = t
	}
	if r.tunnel == nil {
		return nil
	}
	if r.kernel != nil {
		err := r.excluded.apply(plan.Excluded, func(p []netip.Prefix) error { return r.kernel.SetExcluded(ctx, p) })
		if err != nil {
			return nil // shutting down, or kernel sync failed (reported by run)
		}
	}
	if err := r.tunnel.Sync(plan.Remotes); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}
