package ipam

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/petrel-net/petrel/datastore"
)

// TestEnsure: a handle gets one address of each requested family, a
// repeated call returns what it holds (taking what is missing), and a
// family that cannot be served takes nothing.
func TestEnsure(t *testing.T) {
	v4, v6 := mkPool("v4", "10.0.0.0/24", 0), mkPool("v6", "fd00:10::/64", 0)
	for _, tc := range []struct {
		name       string
		pools      []datastore.Object
		held       AssignArgs // allocated to the handle first (Num4/Num6 0 = none)
		num4, num6 int
		want4      int // IPv4 and IPv6 addresses returned and held after
		want6      int
		wantErr    bool
		errIs      error // with wantErr, if set
	}{
		{name: "dual stack", pools: []datastore.Object{v4, v6}, num4: 1, num6: 1, want4: 1, want6: 1},
		{name: "IPv6 only", pools: []datastore.Object{v4, v6}, num6: 1, want6: 1},
		{name: "IPv4 only", pools: []datastore.Object{v4, v6}, num4: 1, want4: 1},
		{name: "repeated dual stack", pools: []datastore.Object{v4, v6}, held: AssignArgs{Num4: 1, Num6: 1}, num4: 1, num6: 1, want4: 1, want6: 1},
		{name: "held IPv4, IPv6 added", pools: []datastore.Object{v4, v6}, held: AssignArgs{Num4: 1}, num4: 1, num6: 1, want4: 1, want6: 1},
		{name: "no IPv6 pool", pools: []datastore.Object{v4}, num4: 1, num6: 1, wantErr: true, errIs: ErrNoPool},
		{name: "nothing requested", pools: []datastore.Object{v4, v6}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, b := newClient(t, tc.pools...)
			var before []netip.Addr
			if tc.held.Num4+tc.held.Num6 > 0 {
				tc.held.Node, tc.held.Handle = "n1", "h"
				before = mustAssign(t, c, tc.held)
			}
			got, err := c.Ensure(testCtx(t), AssignArgs{Node: "n1", Handle: "h", Num4: tc.num4, Num6: tc.num6})
			held, herr := c.HandleAddrs(testCtx(t), "h")
			if herr != nil {
				t.Fatal(herr)
			}
			if tc.wantErr {
				if err == nil || (tc.errIs != nil && !errors.Is(err, tc.errIs)) {
					t.Fatalf("Ensure = %v, %v; want an error (%v)", got, err, tc.errIs)
				}
				if len(held) != len(before) {
					t.Fatalf("failed Ensure left the handle holding %v (before: %v)", held, before)
				}
				mustCheck(t, c)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n4, n6 := count(got); n4 != tc.want4 || n6 != tc.want6 || (len(got) == 2 && !got[0].Is4()) {
				t.Fatalf("Ensure = %v, want %d IPv4 then %d IPv6", got, tc.want4, tc.want6)
			}
			if n4, n6 := count(held); n4 != tc.want4 || n6 != tc.want6 {
				t.Fatalf("handle holds %v after Ensure", held)
			}
			for _, a := range before {
				if !slices.Contains(got, a) {
					t.Errorf("Ensure = %v, dropped the held %s", got, a)
				}
			}
			// Again: the same addresses, nothing new.
			again, err := c.Ensure(testCtx(t), AssignArgs{Node: "n1", Handle: "h", Num4: tc.num4, Num6: tc.num6})
			if err != nil || !slices.Equal(again, got) {
				t.Fatalf("second Ensure = %v, %v; first %v", again, err, got)
			}
			if h, _ := c.HandleAddrs(testCtx(t), "h"); len(h) != len(held) {
				t.Fatalf("second Ensure: handle holds %v, was %v", h, held)
			}
			mustCheck(t, c)
			// One handle, released together.
			if n, err := c.ReleaseByHandle(testCtx(t), "h"); n != len(held) || err != nil {
				t.Fatalf("ReleaseByHandle = %d, %v; want %d", n, err, len(held))
			}
			if _, err := b.Get(testCtx(t), datastore.KindIPAMHandle, "h"); !errors.Is(err, datastore.ErrNotFound) {
				t.Errorf("handle left after release: %v", err)
			}
			mustCheck(t, c)
		})
	}
}

// TestIPv6BlocksDefaultSizeAndAffinity: an IPv6 pool without a block size
// hands out /122 blocks, each affine to the node that claimed it, and the
// node originates them.
func TestIPv6BlocksDefaultSizeAndAffinity(t *testing.T) {
	c, b := newClient(t, mkPool("v6", "fd00:10::/64", 0))
	a1 := mustAssign(t, c, AssignArgs{Node: "n1", Handle: "h1", Num6: 1})
	a2 := mustAssign(t, c, AssignArgs{Node: "n2", Handle: "h2", Num6: 1})
	b1, b2 := blockOf(a1[0], 122), blockOf(a2[0], 122)
	if b1 == b2 {
		t.Fatalf("n1 and n2 share block %s", b1)
	}
	for node, cidr := range map[string]netip.Prefix{"n1": b1, "n2": b2} {
		blk := getBlock(t, b, cidr.String())
		if blk.Spec.CIDR != cidr.String() || len(blk.Spec.Allocations) != 64 || blk.Spec.Affinity == nil || *blk.Spec.Affinity != "host:"+node {
			t.Errorf("block %s: cidr %s, %d slots, affinity %v", cidr, blk.Spec.CIDR, len(blk.Spec.Allocations), blk.Spec.Affinity)
		}
		o, err := b.Get(testCtx(t), datastore.KindBlockAffinity, AffinityName(node, cidr))
		if err != nil || o.(*datastore.BlockAffinity).Spec.State != "confirmed" {
			t.Errorf("affinity of %s for %s: %v %v", node, cidr, o, err)
		}
		blocks, affs := snapshot(t, b)
		if own, borrowed := NodeRoutes(node, blocks, affs); !slices.Equal(own, []netip.Prefix{cidr}) || len(borrowed) != 0 {
			t.Errorf("NodeRoutes(%s) = %v, %v; want its block %s", node, own, borrowed, cidr)
		}
	}
	mustCheck(t, c)
}

func count(addrs []netip.Addr) (n4, n6 int) {
	for _, a := range addrs {
		if a.Is4() {
			n4++
		} else {
			n6++
		}
	}
	return n4, n6
}
