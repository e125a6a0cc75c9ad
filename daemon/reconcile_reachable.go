package daemon

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/mesh"
)

// peerRouteSyncer is the dataplane's reachableBy routes.
type peerRouteSyncer interface {
	Sync(want map[netip.Prefix]netip.Addr) error
}

// openPeerRoutes makes the reachableBy routes' writer in this network
// namespace.
func openPeerRoutes() (peerRouteSyncer, error) {
	p, err := dataplane.NewPeerRoutes()
	if err != nil {
		return nil, err // not a nil *PeerRoutes in a non-nil interface
	}
	return p, nil
}

// reachableReconciler keeps BGPPeer spec.reachableBy's host routes to the
// peers, as the static protocol confd renders for them in calico-node:
// each peer's /32 via its gateway, taken from kernel sync first so a route
// learned over BGP for the peer's own address never replaces it. It runs
// before the peers change, so a new session's first SYN already takes the
// static route.
type reachableReconciler struct {
	open   func() (peerRouteSyncer, error)
	kernel excludeTarget // nil when kernel sync is off
	routes peerRouteSyncer
	// excluded is what kernel sync was last told to leave alone.
	excluded lastApplied[[]netip.Prefix]
}

func (r *reachableReconciler) Name() string { return "reachableBy" }

func (r *reachableReconciler) Reconcile(ctx context.Context, d *desired) error {
	want, excluded := peerRoutes(d.ReachableBy)
	if r.routes == nil {
		if len(want) == 0 {
			return nil
		}
		var err error
		if r.routes, err = r.open(); err != nil {
			return err
		}
	}
	if r.kernel != nil {
		if r.excluded.apply(excluded, func(p []netip.Prefix) error { return r.kernel.SetExcluded(ctx, p) }) != nil {
			return nil // shutting down, or kernel sync failed (reported by run)
		}
	}
	// Every pass: Sync reads the kernel, so a route removed behind our
	// back comes back.
	if err := r.routes.Sync(want); err != nil {
		return fmt.Errorf("routes to peers: %w", err)
	}
	return nil
}

// peerRoutes are the host routes of the BGPPeers' reachableBy (the first
// BGPPeer by name wins for a peer several name) and their prefixes.
func peerRoutes(static []mesh.StaticRoute) (map[netip.Prefix]netip.Addr, []netip.Prefix) {
	want := map[netip.Prefix]netip.Addr{}
	var prefixes []netip.Prefix
	for _, s := range static {
		if _, dup := want[s.Peer]; !dup {
			want[s.Peer] = s.Gateway
			prefixes = append(prefixes, s.Peer)
		}
	}
	return want, prefixes
}
