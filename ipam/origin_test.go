package ipam

import (
	"net/netip"
	"testing"

	"github.com/petrel-net/petrel/datastore"
)

func TestOriginOf(t *testing.T) {
	cidr := netip.MustParsePrefix("192.168.1.0/26")
	b := newBlock(cidr, "node1", false)
	handle, zero := "k8s-pod-network.abc", 0
	b.Spec.Allocations[5] = &zero
	b.Spec.Attributes = []datastore.AllocationAttribute{{HandleID: &handle, Secondary: map[string]string{"node": "node2"}}}
	aff := &datastore.BlockAffinity{Spec: datastore.BlockAffinitySpec{CIDR: cidr.String(), Node: "node1", State: "confirmed"}}
	pool := &datastore.IPPool{}
	pool.Name, pool.Spec.CIDR = "default-ipv4-ippool", "192.168.0.0/16"
	blocks, affs, pools := []*datastore.IPAMBlock{b}, []*datastore.BlockAffinity{aff}, []*datastore.IPPool{pool}

	o := OriginOf(cidr, blocks, affs, pools)
	if o.Block != cidr || o.Affinity != "node1" || o.AffinityState != "confirmed" || o.Pool != pool || o.Allocated {
		t.Errorf("block: %+v", o)
	}
	o = OriginOf(netip.MustParsePrefix("192.168.1.5/32"), blocks, affs, pools)
	if !o.Allocated || !o.Borrowed || o.UsedBy != "node2" || o.Handle != handle {
		t.Errorf("borrowed address: %+v", o)
	}
	if o = OriginOf(netip.MustParsePrefix("192.168.1.6/32"), blocks, affs, pools); o.Allocated || o.Block != cidr {
		t.Errorf("free address: %+v", o)
	}
	if o = OriginOf(netip.MustParsePrefix("10.9.0.0/24"), blocks, affs, pools); o.Block.IsValid() || o.Pool != nil {
		t.Errorf("outside IPAM: %+v", o)
	}
	if o = OriginOf(netip.MustParsePrefix("192.168.0.0/16"), blocks, affs, pools); o.Block.IsValid() || o.Pool != pool {
		t.Errorf("the pool itself: %+v", o)
	}
}
