package daemon

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/memory"
)

func decodeOne(t *testing.T, yaml string) datastore.Object {
	t.Helper()
	objs, err := datastore.Decode([]byte(yaml))
	if err != nil || len(objs) != 1 {
		t.Fatalf("%v %v", objs, err)
	}
	return objs[0]
}

// TestDryRun: a BGPPeer adds one session on its node only; a BGPFilter
// then stops the node's block going to that peer, naming the rule; a
// delete reverses it. The datastore is never written.
func TestDryRun(t *testing.T) {
	ctx := context.Background()
	b := memory.New()
	for _, o := range []datastore.Object{testNode("a", "10.0.0.1/24", ""), testNode("b", "10.0.0.2/24", ""),
		testPool("pool", "192.168.0.0/16", "", false, false), testAffinity("a", "192.168.1.0/26")} {
		if _, err := b.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	peer := decodeOne(t, "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {node: a, peerIP: 10.0.0.200, asNumber: 65001, filters: [edge]}\n")
	filter := decodeOne(t, "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: edge}\nspec:\n  exportV4:\n  - {action: Reject, matchOperator: Equal, cidr: 192.168.1.0/26}\n")
	filterAccept := decodeOne(t, "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: edge}\nspec:\n  exportV4:\n  - {action: Accept, matchOperator: Equal, cidr: 192.168.1.0/26}\n")

	imp, err := DryRun(ctx, b, Change{Apply: []datastore.Object{peer, filterAccept}})
	if err != nil {
		t.Fatal(err)
	}
	if len(imp) != 2 || len(imp[0].Added) != 1 || !strings.HasPrefix(imp[0].Added[0], "10.0.0.200 (Node_10_0_0_200") || !imp[1].Empty() {
		t.Fatalf("adding the peer: %+v", imp)
	}
	if want := "192.168.1.0/26 -> 10.0.0.200 (Node_10_0_0_200): " + bgp.RuleOriginated; !slices.Equal(imp[0].ExportStarts, []string{want}) {
		t.Errorf("a new session's exports: %q, want %q", imp[0].ExportStarts, want)
	}
	held, err := DryRun(ctx, b, Change{Apply: []datastore.Object{peer, filter}})
	if err != nil || len(held[0].ExportHeld) != 1 || len(held[0].ExportStarts) != 0 {
		t.Errorf("a new session with a filter rejecting the block: %+v %v", held[0], err)
	}
	for _, o := range []datastore.Object{peer, filterAccept} {
		if _, err := b.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	imp, err = DryRun(ctx, b, Change{Apply: []datastore.Object{filter}})
	if err != nil {
		t.Fatal(err)
	}
	want := `192.168.1.0/26 -> 10.0.0.200 (Node_10_0_0_200): BGPFilter "edge": spec.exportV4[0] (Reject)`
	if a := imp[0]; len(a.ExportStops) != 1 || a.ExportStops[0] != want || !a.PolicyChanged || len(a.Added)+len(a.Removed)+len(a.Reset) != 0 {
		t.Fatalf("rejecting the block: %+v", a)
	}
	imp, err = DryRun(ctx, b, Change{Delete: []datastore.Object{peer}})
	if err != nil {
		t.Fatal(err)
	}
	if a := imp[0]; len(a.Removed) != 1 || len(a.ExportStops) != 0 {
		t.Fatalf("deleting the peer: %+v", a)
	}
	if objs, _, _ := b.List(ctx, datastore.KindBGPFilter); len(objs) != 1 || objs[0].(*datastore.BGPFilter).Spec.ExportV4[0].Action != "Accept" {
		t.Errorf("dry-run wrote to the datastore: %v", objs)
	}
}

// TestDryRunBGPConfiguration: turning the node-to-node mesh off removes
// every mesh session, on every node.
func TestDryRunBGPConfiguration(t *testing.T) {
	ctx := context.Background()
	b := memory.New()
	for _, o := range []datastore.Object{testNode("a", "10.0.0.1/24", ""), testNode("b", "10.0.0.2/24", "")} {
		if _, err := b.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	off := decodeOne(t, "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n")
	imp, err := DryRun(ctx, b, Change{Apply: []datastore.Object{off}})
	if err != nil {
		t.Fatal(err)
	}
	if len(imp) != 2 || !slices.Equal(imp[0].Removed, []string{"10.0.0.2 (Mesh_10_0_0_2, node-to-node mesh)"}) ||
		!slices.Equal(imp[1].Removed, []string{"10.0.0.1 (Mesh_10_0_0_1, node-to-node mesh)"}) {
		t.Fatalf("mesh off: %+v", imp)
	}
}

// TestOtherBlocksComeOverTheirFamilysSession: dry-run's view of another
// node's blocks: its IPv4 block from its IPv4 address, its IPv6 block
// from its IPv6 address (the bird6-style session that carries it).
func TestOtherBlocksComeOverTheirFamilysSession(t *testing.T) {
	b := testNode("b", "10.0.0.2/24", "")
	b.Spec.BGP.IPv6Address = "fd00:10::2/64"
	snap := snapshot{Nodes: []*datastore.Node{testNode("a", "10.0.0.1/24", ""), b},
		Affinities: []*datastore.BlockAffinity{testAffinity("b", "192.168.2.0/26"), testAffinity("b", "fd00:100::80/122")}}
	got := otherBlocks(snap, snap, "a")
	want := []otherBlock{
		{netip.MustParsePrefix("192.168.2.0/26"), netip.MustParseAddr("10.0.0.2")},
		{netip.MustParsePrefix("fd00:100::80/122"), netip.MustParseAddr("fd00:10::2")},
	}
	if !slices.Equal(got, want) {
		t.Errorf("other blocks = %v, want %v", got, want)
	}
}
