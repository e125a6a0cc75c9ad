package daemon

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/memory"
	"github.com/petrel-net/petrel/ipam"
)

// racingBackend makes another writer change a Node just before each of
// the first `races` Node updates, so those updates lose their
// compare-and-swap, as when kubelet or calicoctl writes the Node meanwhile.
type racingBackend struct {
	datastore.Backend
	races atomic.Int32
	lost  atomic.Int32
}

func (r *racingBackend) Update(ctx context.Context, obj datastore.Object) (datastore.Object, error) {
	if obj.Kind() == datastore.KindNode && r.races.Add(-1) >= 0 {
		other, err := r.Backend.Get(ctx, datastore.KindNode, obj.GetName())
		if err != nil {
			return nil, err
		}
		other.SetLabels(map[string]string{"written-by": "someone-else"})
		if _, err := r.Backend.Update(ctx, other); err != nil {
			return nil, err
		}
	}
	out, err := r.Backend.Update(ctx, obj)
	if errors.Is(err, datastore.ErrConflict) {
		r.lost.Add(1)
	}
	return out, err
}

// TestTunnelAddressSurvivesNodeUpdateConflicts is issue #12, item 7: the
// Node update that publishes the tunnel address loses its CAS twice; the
// handle must still hold exactly one address, the one on the Node.
func TestTunnelAddressSurvivesNodeUpdateConflicts(t *testing.T) {
	ctx := t.Context()
	b := &racingBackend{Backend: memory.New()}
	b.races.Store(2)
	pool, _ := datastore.New(datastore.KindIPPool)
	pool.SetName("pool")
	spec := &pool.(*datastore.IPPool).Spec
	spec.CIDR, spec.BlockSize, spec.VXLANMode, spec.AllowedUses = "192.168.0.0/16", 26, "Always", []string{ipam.UseWorkload, ipam.UseTunnel}
	node, _ := datastore.New(datastore.KindNode)
	node.SetName("node1")
	for _, o := range []datastore.Object{pool, node} {
		if _, err := b.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	tunnel, mac, err := publishTunnelEndpoint(ctx, b, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if b.lost.Load() != 2 {
		t.Fatalf("%d Node updates lost their race, want 2: the test did not force conflicts", b.lost.Load())
	}
	held, err := ipam.New(b).HandleAddrs(ctx, tunnelHandle("node1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0] != tunnel {
		t.Errorf("handle %s holds %v, want only the published %s", tunnelHandle("node1"), held, tunnel)
	}
	got, err := b.Get(ctx, datastore.KindNode, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if n := got.(*datastore.Node); n.Spec.IPv4VXLANTunnelAddr != tunnel.String() || n.Spec.VXLANTunnelMACAddr != mac.String() {
		t.Errorf("Node publishes %s %s, want %s %s", n.Spec.IPv4VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddr, tunnel, mac)
	}
}
