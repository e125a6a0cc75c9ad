package ipam

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/etcd"
	"github.com/petrel-net/petrel/internal/testenv/etcdserver"
)

// TestUnusableObjectsOnEtcd: on a real etcd, one IPAMBlock holding
// garbage, one whose allocations do not fit its CIDR, one garbage handle
// and one garbage affinity. IPAM keeps working around them: nodes still
// get addresses (never from the corrupt blocks' ranges), releases in good
// blocks work, a release that needs a corrupt block names it, Check names
// each corrupt object, and the corrupt values are never overwritten.
func TestUnusableObjectsOnEtcd(t *testing.T) {
	srv := etcdserver.Start(t)
	b, err := etcd.New(t.Context(), etcd.Config{Endpoints: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	raw, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	ctx := testCtx(t)
	load(t, b, mkPool("p", "10.0.0.0/24", 28), mkConfig(false, true, 0))
	c := New(b)

	// node1 fills a block and starts a second; node2 takes a block.
	first := mustAssign(t, c, AssignArgs{Node: "node1", Handle: "h-big", Num4: 17})
	blockA, _ := first[0].Prefix(28)
	kept := mustAssign(t, c, AssignArgs{Node: "node2", Handle: "h-kept", Num4: 1})[0]
	blockB, _ := kept.Prefix(28)
	if blockA == blockB {
		t.Fatalf("node1 and node2 share block %s", blockA)
	}

	// Corrupt block A (garbage) and the handle h-kept; make block B
	// inconsistent (4 slots for a /28); add a garbage affinity.
	put := func(kind datastore.Kind, name, value string) {
		t.Helper()
		if _, err := raw.Put(ctx, etcd.Key(kind, name), value); err != nil {
			t.Fatal(err)
		}
	}
	get := func(kind datastore.Kind, name string) string {
		t.Helper()
		resp, err := raw.Get(ctx, etcd.Key(kind, name))
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s %s: %v", kind, name, err)
		}
		return string(resp.Kvs[0].Value)
	}
	put(datastore.KindIPAMBlock, BlockName(blockA), `{"kind":"IPAMBlock","spec":{"cidr":`)
	inconsistent := strings.Replace(get(datastore.KindIPAMBlock, BlockName(blockB)), `"allocations":[`, `"allocations":[null,null,null,null,`, 1)
	put(datastore.KindIPAMBlock, BlockName(blockB), inconsistent)
	put(datastore.KindIPAMHandle, "h-other", `not json`)
	put(datastore.KindBlockAffinity, "node9-10-0-0-240-28", `{"spec":{"node":7}}`)
	corruptA := get(datastore.KindIPAMBlock, BlockName(blockA))

	// Both nodes still get addresses, from neither corrupt range.
	for _, node := range []string{"node1", "node2", "node3"} {
		ips, err := c.AutoAssign(ctx, AssignArgs{Node: node, Handle: "h-new-" + node, Num4: 2})
		if err != nil {
			t.Fatalf("AutoAssign on %s with corrupt objects around: %v", node, err)
		}
		for _, ip := range ips {
			if blockA.Contains(ip) || blockB.Contains(ip) {
				t.Errorf("%s got %s, in a corrupt block (%s, %s)", node, ip, blockA, blockB)
			}
		}
	}
	if err := c.AssignIP(ctx, "node3", blockA.Addr().Next(), "h-pick", nil); err == nil || !strings.Contains(err.Error(), BlockName(blockA)) {
		t.Errorf("AssignIP in the corrupt block: err = %v, want one naming IPAMBlock %s", err, BlockName(blockA))
	}

	// A release that needs a corrupt block names it and keeps its handle.
	if _, err := c.ReleaseIPs(ctx, first[0]); err == nil || !strings.Contains(err.Error(), BlockName(blockA)) {
		t.Errorf("ReleaseIPs %s: err = %v, want one naming IPAMBlock %s", first[0], err, BlockName(blockA))
	}
	if _, err := c.ReleaseByHandle(ctx, "h-big"); err == nil || !strings.Contains(err.Error(), BlockName(blockA)) {
		t.Errorf("ReleaseByHandle h-big: err = %v, want one naming IPAMBlock %s", err, BlockName(blockA))
	}
	if _, err := b.Get(ctx, datastore.KindIPAMHandle, HandleName("h-big")); err != nil {
		t.Errorf("handle h-big after a release that could not finish: %v (want it kept)", err)
	}
	// h-big's 17th address is in a good block: that part is released.
	if addrs, _ := c.HandleAddrs(ctx, "h-big"); len(addrs) != 0 {
		t.Errorf("h-big still holds %v in good blocks", addrs)
	}
	if n, err := c.ReleaseByHandle(ctx, "h-new-node3"); err != nil || n != 2 {
		t.Errorf("ReleaseByHandle h-new-node3 = %d, %v; want 2, nil", n, err)
	}

	// Check names every corrupt object, as unusable and nothing else.
	r, err := c.Check(ctx)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	var unusable []string
	for _, p := range r.Problems {
		if p.Kind != Unusable {
			t.Errorf("Check: unexpected problem %s", p)
			continue
		}
		unusable = append(unusable, p.Object)
	}
	want := []string{
		"BlockAffinity node9-10-0-0-240-28", "IPAMBlock " + BlockName(blockA),
		"IPAMBlock " + BlockName(blockB), "IPAMHandle h-other",
	}
	slices.Sort(want)
	slices.Sort(unusable)
	if !slices.Equal(unusable, want) {
		t.Errorf("Check: unusable %v, want %v\n%s", unusable, want, r)
	}
	if !strings.Contains(r.String(), "spec.allocations") {
		t.Errorf("Check does not name the field of the inconsistent block:\n%s", r)
	}

	// Nothing wrote over the corrupt block.
	if got := get(datastore.KindIPAMBlock, BlockName(blockA)); got != corruptA {
		t.Errorf("corrupt block A was rewritten: %q", got)
	}
	if got := get(datastore.KindIPAMBlock, BlockName(blockB)); got != inconsistent {
		t.Errorf("inconsistent block B was rewritten: %q", got)
	}
	blocks, err := c.NodeBlocks(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(blocks, func(bi BlockInfo) bool { return bi.CIDR == blockA }); i < 0 || blocks[i].Unusable == "" {
		t.Errorf("NodeBlocks(node1) = %+v, want %s marked unusable", blocks, blockA)
	}
	var decodeErr *datastore.DecodeError
	if _, err := c.getBlock(context.Background(), blockB); !errors.As(err, &decodeErr) || decodeErr.Field != "spec.allocations" {
		t.Errorf("getBlock(%s) = %v, want a DecodeError on spec.allocations", blockB, err)
	}
}
