package daemon

import "context"

// asnReconciler applies an asNumber change live. The embedded speaker's
// own AS is fixed when it starts, but every session can carry its own
// local AS (GoBGP's per-neighbor local-as, which also decides iBGP or
// eBGP): after a change each session that used the node's AS gets the new
// one as its local AS, so the peer reconciler re-creates exactly those,
// and the sessions with their own BGPPeer localASNumber stay up.
type asnReconciler struct {
	started uint32 // the AS the speaker runs with
}

func (r *asnReconciler) Name() string { return "AS number" }

func (r *asnReconciler) Reconcile(_ context.Context, d *desired) error {
	if d.ASN == r.started {
		return nil
	}
	for i := range d.Peers {
		if d.Peers[i].LocalASN == 0 {
			d.Peers[i].LocalASN = d.ASN
		}
	}
	return nil
}
