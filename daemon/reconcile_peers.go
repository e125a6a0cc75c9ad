package daemon

import (
	"context"

	"github.com/petrel-net/petrel/bgp"
)

// peerTarget is the part of the speaker that holds the peer set.
type peerTarget interface {
	SetPeers(ctx context.Context, peers []bgp.PeerConfig) error
}

// peerReconciler keeps the speaker's peer set. The speaker itself leaves
// unchanged peers alone, so their sessions stay up.
type peerReconciler struct {
	speaker peerTarget
	peers   lastApplied[[]bgp.PeerConfig]
}

func (r *peerReconciler) Name() string { return "peers" }

func (r *peerReconciler) Reconcile(ctx context.Context, d *desired) error {
	return r.peers.apply(d.Peers, func(p []bgp.PeerConfig) error { return r.speaker.SetPeers(ctx, p) })
}
