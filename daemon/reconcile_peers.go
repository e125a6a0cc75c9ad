package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/petrel-net/petrel/bgp"
)

// peerTarget is the part of the speaker that holds the peer set.
type peerTarget interface {
	SetPeers(ctx context.Context, peers []bgp.PeerConfig) error
}

// firstPeersWait bounds how long the first peers wait for Service prefixes:
// past it (an API server down at start) sessions come up without them.
const firstPeersWait = 5 * time.Second

// peerReconciler keeps the speaker's peer set. The speaker itself leaves
// unchanged peers alone, so their sessions stay up.
type peerReconciler struct {
	speaker peerTarget
	peers   lastApplied[[]bgp.PeerConfig]
	// waitFor, when set, holds the first peer set back until it is closed
	// (at most firstPeersWait): GoBGP sends End-of-RIB right after the
	// first table dump, and a restarted node's peers drop the stale routes
	// it has not re-sent by then (the Service prefixes, which come from
	// informers of their own).
	waitFor <-chan struct{}
	log     *slog.Logger
}

func (r *peerReconciler) Name() string { return "peers" }

func (r *peerReconciler) Reconcile(ctx context.Context, d *desired) error {
	if r.waitFor != nil {
		r.waitFirst(ctx)
		r.waitFor = nil
	}
	return r.peers.apply(d.Peers, func(p []bgp.PeerConfig) error { return r.speaker.SetPeers(ctx, p) })
}

func (r *peerReconciler) waitFirst(ctx context.Context) {
	timer := time.NewTimer(firstPeersWait)
	defer timer.Stop()
	select {
	case <-r.waitFor:
	case <-ctx.Done():
	case <-timer.C:
		r.log.Warn("Service prefixes not ready; starting BGP sessions without them", "waited", firstPeersWait)
	}
}
