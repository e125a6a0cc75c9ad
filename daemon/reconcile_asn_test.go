package daemon

import (
	"net/netip"
	"testing"

	"github.com/petrel-net/petrel/bgp"
)

// After an asNumber change, the sessions that used the node's AS carry the
// new one as their local AS (so only they are re-created); a BGPPeer's own
// localASNumber is kept; back at the started AS nothing is overridden.
func TestASNChangeIsPerSessionLocalAS(t *testing.T) {
	r := &asnReconciler{started: 64512}
	peers := func() []bgp.PeerConfig {
		return []bgp.PeerConfig{
			{Address: netip.MustParseAddr("10.0.0.2"), ASN: 64600},
			{Address: netip.MustParseAddr("10.0.0.200"), ASN: 65001, LocalASN: 64999},
		}
	}
	d := desired{ASN: 64600, Peers: peers()}
	if err := r.Reconcile(t.Context(), &d); err != nil {
		t.Fatal(err)
	}
	if d.Peers[0].LocalASN != 64600 || d.Peers[1].LocalASN != 64999 {
		t.Errorf("local ASes %d, %d; want 64600 (the new AS) and 64999 (the BGPPeer's own)", d.Peers[0].LocalASN, d.Peers[1].LocalASN)
	}
	d = desired{ASN: 64512, Peers: peers()}
	_ = r.Reconcile(t.Context(), &d)
	if d.Peers[0].LocalASN != 0 {
		t.Errorf("at the started AS: local AS %d, want 0 (the speaker's)", d.Peers[0].LocalASN)
	}
}
