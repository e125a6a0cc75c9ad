package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/petrel-net/petrel/dataplane"
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
// handle must still hold exactly one address, the one on the Node. For
// each family, with Calico's handle, from the family's VXLAN pool (not
// the other pool of the family), with Calico's MAC on the Node.
func TestTunnelAddressSurvivesNodeUpdateConflicts(t *testing.T) {
	for _, tc := range []struct {
		fam          vxlanFamily
		vxlan, plain string
		handle       string
		mac          net.HardwareAddr
	}{
		{vxlanV4, "192.168.0.0/16", "10.9.0.0/16", "vxlan-tunnel-addr-node1", dataplane.VTEPMAC("node1")},
		{vxlanV6, "fd10::/112", "fd00:9::/112", "vxlan-v6-tunnel-addr-node1", dataplane.VTEPMACV6("node1")},
	} {
		t.Run(tc.fam.name, func(t *testing.T) {
			ctx := t.Context()
			b := &racingBackend{Backend: memory.New()}
			b.races.Store(2)
			node, _ := datastore.New(datastore.KindNode)
			node.SetName("node1")
			objs := []datastore.Object{node}
			for name, cidr := range map[string]string{"plain": tc.plain, "vxlan": tc.vxlan} {
				pool, _ := datastore.New(datastore.KindIPPool)
				pool.SetName(name)
				spec := &pool.(*datastore.IPPool).Spec
				spec.CIDR, spec.AllowedUses = cidr, []string{ipam.UseWorkload, ipam.UseTunnel}
				if name == "vxlan" {
					spec.VXLANMode = "Always"
				}
				objs = append(objs, pool)
			}
			for _, o := range objs {
				if _, err := b.Create(ctx, o); err != nil {
					t.Fatal(err)
				}
			}
			vxlanPools := []netip.Prefix{netip.MustParsePrefix(tc.vxlan)}
			tunnel, mac, err := publishTunnelEndpoint(ctx, b, "node1", tc.fam, vxlanPools)
			if err != nil {
				t.Fatal(err)
			}
			if b.lost.Load() != 2 {
				t.Fatalf("%d Node updates lost their race, want 2: the test did not force conflicts", b.lost.Load())
			}
			if !vxlanPools[0].Contains(tunnel) || !slices.Equal(mac, tc.mac) {
				t.Errorf("tunnel %s MAC %s, want an address of %s and %s", tunnel, mac, tc.vxlan, tc.mac)
			}
			held, err := ipam.New(b).HandleAddrs(ctx, tc.handle)
			if err != nil {
				t.Fatal(err)
			}
			if len(held) != 1 || held[0] != tunnel {
				t.Errorf("handle %s holds %v, want only the published %s", tc.handle, held, tunnel)
			}
			got, err := b.Get(ctx, datastore.KindNode, "node1")
			if err != nil {
				t.Fatal(err)
			}
			addr, macField := tc.fam.fields(&got.(*datastore.Node).Spec)
			if *addr != tunnel.String() || *macField != mac.String() {
				t.Errorf("Node publishes %s %s, want %s %s", *addr, *macField, tunnel, mac)
			}
			// Published once: a second run keeps the Node's address.
			again, _, err := publishTunnelEndpoint(ctx, b, "node1", tc.fam, vxlanPools)
			if err != nil || again != tunnel {
				t.Errorf("second publish: %s, %v; want %s again", again, err, tunnel)
			}
		})
	}
}
