package ipam

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/petrel-net/petrel/datastore"
)

// TestProperties runs random allocate/release sequences of two nodes on a
// /28 pool of /30 blocks and checks after every step that the store is
// consistent (Check) and holds exactly the addresses the model says.
func TestProperties(t *testing.T) {
	pool := netip.MustParsePrefix("10.0.0.0/28")
	var all []netip.Addr
	for a := pool.Addr(); pool.Contains(a); a = a.Next() {
		all = append(all, a)
	}
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		strict := rapid.Bool().Draw(rt, "strict")
		c, b := newClient(rt, mkPool("p", pool.String(), 30), mkConfig(strict, true, 0))
		model := map[netip.Addr]string{} // address → handle
		node := rapid.SampledFrom([]string{"n1", "n2"})
		handle := rapid.SampledFrom([]string{"h0", "h1", "h2", "h3"})
		addr := rapid.SampledFrom(all)

		rt.Repeat(map[string]func(*rapid.T){
			"AutoAssign": func(rt *rapid.T) {
				h, n := handle.Draw(rt, "handle"), rapid.IntRange(1, 5).Draw(rt, "n")
				ips, err := c.AutoAssign(ctx, AssignArgs{Node: node.Draw(rt, "node"), Handle: h, Num4: n})
				if err != nil {
					if !errors.Is(err, ErrExhausted) || (!strict && len(model)+n <= len(all)) {
						rt.Fatalf("AutoAssign of %d with %d free: %v", n, len(all)-len(model), err)
					}
					return
				}
				if len(ips) != n {
					rt.Fatalf("got %d addresses, want %d", len(ips), n)
				}
				for _, ip := range ips {
					if _, dup := model[ip]; dup || !pool.Contains(ip) {
						rt.Fatalf("%s handed out twice (or outside the pool)", ip)
					}
					model[ip] = h
				}
			},
			"AssignIP": func(rt *rapid.T) {
				ip, h := addr.Draw(rt, "ip"), handle.Draw(rt, "handle")
				err := c.AssignIP(ctx, node.Draw(rt, "node"), ip, h, nil)
				if _, taken := model[ip]; taken != errors.Is(err, ErrAllocated) || (!taken && err != nil) {
					rt.Fatalf("AssignIP(%s), taken %v: %v", ip, taken, err)
				}
				if err == nil {
					model[ip] = h
				}
			},
			"ReleaseByHandle": func(rt *rapid.T) {
				h := handle.Draw(rt, "handle")
				n, err := c.ReleaseByHandle(ctx, h)
				want := 0
				for ip, mh := range model {
					if mh == h {
						want++
						delete(model, ip)
					}
				}
				if err != nil || n != want {
					rt.Fatalf("ReleaseByHandle(%s) = %d, %v; want %d", h, n, err, want)
				}
			},
			"ReleaseIPs": func(rt *rapid.T) {
				ips := rapid.SliceOfNDistinct(addr, 1, 3, func(a netip.Addr) netip.Addr { return a }).Draw(rt, "ips")
				want := 0
				for _, ip := range ips {
					if _, ok := model[ip]; ok {
						want++
						delete(model, ip)
					}
				}
				if n, err := c.ReleaseIPs(ctx, ips...); err != nil || n != want {
					rt.Fatalf("ReleaseIPs(%v) = %d, %v; want %d", ips, n, err, want)
				}
			},
			"ReleaseEmptyBlocks": func(rt *rapid.T) {
				if _, err := c.ReleaseEmptyBlocks(ctx, node.Draw(rt, "node")); err != nil {
					rt.Fatal(err)
				}
			},
			"": func(rt *rapid.T) {
				mustCheck(rt, c)
				if got := storedAllocations(rt, b); !maps.Equal(got, model) {
					rt.Fatalf("store holds %v, model %v", got, model)
				}
			},
		})
	})
}

// storedAllocations maps every allocated address to its handle; an
// ordinal in both lists or an address in two blocks fails.
func storedAllocations(t fataler, b datastore.Backend) map[netip.Addr]string {
	t.Helper()
	objs, _, err := b.List(context.Background(), datastore.KindIPAMBlock)
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Addr]string{}
	for _, o := range objs {
		blk, err := parseBlock(o)
		if err != nil {
			t.Fatal(err)
		}
		for ord := range blk.Spec.Allocations {
			free := slices.Contains(blk.Spec.Unallocated, ord)
			if h := blk.handleOf(ord); blk.Spec.Allocations[ord] != nil {
				ip := addrAt(blk.cidr, ord)
				if _, dup := out[ip]; dup || free {
					t.Fatalf("%s allocated twice or also free", ip)
				}
				out[ip] = h
			} else if !free {
				t.Fatalf("ordinal %d of %s is lost", ord, blk.cidr)
			}
		}
	}
	return out
}
