package daemon

import (
	"context"
	"net/netip"
)

// blackholeTarget is the part of kernel sync that keeps block blackholes.
type blackholeTarget interface {
	SetBlackholes(prefixes []netip.Prefix)
}

// blockReconciler keeps a blackhole route for each of the node's IPAM
// blocks, so addresses in them that no pod holds are dropped locally.
type blockReconciler struct {
	kernel     blackholeTarget
	blackholes lastApplied[[]netip.Prefix]
}

func (r *blockReconciler) Name() string { return "IPAM blocks" }

func (r *blockReconciler) Reconcile(_ context.Context, d *desired) error {
	return r.blackholes.apply(d.Blackholes, func(p []netip.Prefix) error {
		r.kernel.SetBlackholes(p)
		return nil
	})
}
