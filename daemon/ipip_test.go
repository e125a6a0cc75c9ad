package daemon

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/etcd"
	"github.com/petrel-net/petrel/internal/testenv/etcdserver"
	"github.com/petrel-net/petrel/ipam"
)

// The node's IPIP tunnel address, as calico-node's allocateip keeps it,
// against a real etcd: allocated from the IPIP pool (not the VXLAN pool
// beside it) under Calico's handle and attributes and published on the
// Node; the same address on every later run; a new one when the pool
// stops being IPIP; released, and the Node field cleared, when no IPIP
// pool is left, with IPAM consistent throughout.
func TestIPIPTunnelAddressInEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs etcd")
	}
	ctx := t.Context()
	b, err := etcd.New(ctx, etcd.Config{Endpoints: etcdserver.Start(t).Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	vx := testPool("a-vxlan", "10.1.0.0/16", "Always", false, false)
	first, second := testIPIPPool("ipip", "10.5.0.0/16", "Always"), testIPIPPool("ipip2", "10.6.0.0/16", "CrossSubnet")
	node, _ := datastore.New(datastore.KindNode)
	node.SetName("node1")
	for _, o := range []datastore.Object{vx, first, second, node} {
		if _, err := b.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	c := ipam.New(b)
	publish := func(pools ...netip.Prefix) netip.Addr {
		t.Helper()
		a, err := publishIPIPTunnelAddr(ctx, b, "node1", pools)
		if err != nil {
			t.Fatal(err)
		}
		held, err := c.HandleAddrs(ctx, "ipip-tunnel-addr-node1")
		if err != nil {
			t.Fatal(err)
		}
		if want := slices.DeleteFunc([]netip.Addr{a}, func(a netip.Addr) bool { return !a.IsValid() }); !slices.Equal(held, want) {
			t.Errorf("handle ipip-tunnel-addr-node1 holds %v, want %v", held, want)
		}
		if got := nodeIPIPAddr(ctx, t, b); (got == "") != !a.IsValid() || (a.IsValid() && got != a.String()) {
			t.Errorf("Node spec.bgp.ipv4IPIPTunnelAddr %q, want %v", got, a)
		}
		if r, err := c.Check(ctx); err != nil || !r.OK() {
			t.Errorf("ipam check: %v %v", r, err)
		}
		return a
	}

	a := publish(pfx("10.5.0.0/16")...)
	if !netip.MustParsePrefix("10.5.0.0/16").Contains(a) {
		t.Fatalf("tunnel address %s, want one from the IPIP pool 10.5.0.0/16", a)
	}
	if attrs := allocationAttrs(ctx, t, b, a); attrs["type"] != "ipipTunnelAddress" || attrs["node"] != "node1" {
		t.Errorf("allocation attributes %v, want Calico's type ipipTunnelAddress and node node1", attrs)
	}
	if again := publish(pfx("10.5.0.0/16")...); again != a {
		t.Errorf("second run gave %s, want the same %s", again, a)
	}
	if moved := publish(pfx("10.6.0.0/16")...); !netip.MustParsePrefix("10.6.0.0/16").Contains(moved) {
		t.Errorf("after 10.5.0.0/16 stopped being IPIP: %s, want an address from 10.6.0.0/16 (and 10.5's released)", moved)
	}
	publish()
}

func nodeIPIPAddr(ctx context.Context, t *testing.T, b datastore.Backend) string {
	t.Helper()
	o, err := b.Get(ctx, datastore.KindNode, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if n := o.(*datastore.Node); n.Spec.BGP != nil {
		return n.Spec.BGP.IPv4IPIPTunnelAddr
	}
	return ""
}

// allocationAttrs are the secondary attributes of a's allocation.
func allocationAttrs(ctx context.Context, t *testing.T, b datastore.Backend, a netip.Addr) map[string]string {
	t.Helper()
	objs, _, err := b.List(ctx, datastore.KindIPAMBlock)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		blk := o.(*datastore.IPAMBlock)
		cidr := netip.MustParsePrefix(blk.Spec.CIDR)
		if !cidr.Contains(a) {
			continue
		}
		ord := 0
		for x := cidr.Addr(); x != a; x = x.Next() {
			ord++
		}
		if i := blk.Spec.Allocations[ord]; i != nil {
			return blk.Spec.Attributes[*i].Secondary
		}
	}
	return nil
}
