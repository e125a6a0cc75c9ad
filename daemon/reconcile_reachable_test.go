package daemon

import (
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/petrel-net/petrel/mesh"
)

type fakePeerRoutes struct{ synced []map[netip.Prefix]netip.Addr }

func (f *fakePeerRoutes) Sync(want map[netip.Prefix]netip.Addr) error {
	f.synced = append(f.synced, want)
	return nil
}

// reachableBy's /32s are taken from kernel sync before they are written
// (a BGP route for the peer's own address must not replace them), the
// first BGPPeer naming a peer wins, and a node without reachableBy never
// opens the writer.
func TestReachableReconciler(t *testing.T) {
	routes, kernel, opened := &fakePeerRoutes{}, &excludedKernel{}, 0
	r := &reachableReconciler{kernel: kernel, open: func() (peerRouteSyncer, error) { opened++; return routes, nil }}
	if err := r.Reconcile(t.Context(), &desired{}); err != nil || opened != 0 {
		t.Fatalf("no reachableBy: opened %d, err %v; want nothing done", opened, err)
	}
	peer := netip.MustParsePrefix("10.99.0.1/32")
	d := desired{ReachableBy: []mesh.StaticRoute{
		{Peer: peer, Gateway: netip.MustParseAddr("10.0.0.254"), BGPPeer: "a"},
		{Peer: peer, Gateway: netip.MustParseAddr("10.0.0.253"), BGPPeer: "b"},
	}}
	if err := r.Reconcile(t.Context(), &d); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Prefix]netip.Addr{peer: netip.MustParseAddr("10.0.0.254")}
	if len(routes.synced) != 1 || !maps.Equal(routes.synced[0], want) || len(kernel.sets) != 1 || !slices.Equal(kernel.sets[0], []netip.Prefix{peer}) {
		t.Errorf("synced %v, excluded %v; want %v with the /32 handed over", routes.synced, kernel.sets, want)
	}
	if err := r.Reconcile(t.Context(), &desired{}); err != nil {
		t.Fatal(err)
	}
	if len(routes.synced[len(routes.synced)-1]) != 0 || len(kernel.sets[len(kernel.sets)-1]) != 0 {
		t.Errorf("BGPPeer gone: synced %v, excluded %v; want both empty", routes.synced, kernel.sets)
	}
}
