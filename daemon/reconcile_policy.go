package daemon

import (
	"context"

	"github.com/petrel-net/petrel/bgp"
)

// policyTarget is the part of the speaker that holds the route policy.
type policyTarget interface {
	SetRoutePolicy(ctx context.Context, rp bgp.RoutePolicy) error
}

// policyReconciler keeps BGPFilters, next-hop modes and prefix
// communities in the speaker. It runs before the peers, so a new peer's
// first UPDATEs already honour its filters.
type policyReconciler struct {
	speaker policyTarget
	policy  lastApplied[bgp.RoutePolicy]
}

func (r *policyReconciler) Name() string { return "route policy" }

func (r *policyReconciler) Reconcile(ctx context.Context, d *desired) error {
	return r.policy.apply(d.RoutePolicy, func(rp bgp.RoutePolicy) error { return r.speaker.SetRoutePolicy(ctx, rp) })
}
