package datastoretest

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/petrel-net/petrel/datastore"
)

// Corrupt stores a Node called name (creating it, or overwriting the one
// there) that the backend cannot decode, as only a writer other than
// petrel can, and returns the field it broke ("" for the whole value).
type Corrupt func(t *testing.T, name string) (field string)

// RunUndecodable checks that one undecodable Node among good ones hides
// only itself: List returns the others and names it (kind, name, field);
// Follow follows the others and reports it, also when a good Node turns
// bad and after the bad one is deleted.
func RunUndecodable(t *testing.T, b datastore.Backend, corrupt Corrupt) {
	createNode(t, b, "node-a")
	createNode(t, b, "node-b")
	field := corrupt(t, "node-bad")

	objs, rev, err := b.List(ctx(t), datastore.KindNode)
	bad, ok := datastore.SkippedObjects(err)
	if !ok || len(bad) != 1 {
		t.Fatalf("List with one undecodable Node: err = %v, want a SkippedError naming node-bad", err)
	}
	if got := bad[0]; got.Kind != datastore.KindNode || got.Name != "node-bad" || got.Field != field {
		t.Errorf("skipped %s %q field %q, want Node \"node-bad\" field %q (%v)", got.Kind, got.Name, got.Field, field, got)
	}
	if names := objectNames(objs); !slices.Equal(names, []string{"node-a", "node-b"}) || rev == "" {
		t.Errorf("List returned %v at revision %q, want node-a and node-b at a revision to watch from", names, rev)
	}

	f := follow(t, b, datastore.KindNode)
	f.waitFor(t, []string{"node-a", "node-b"}, []string{"node-bad"})
	if got := f.last.bad["node-bad"]; got.Field != field {
		t.Errorf("Follow reports node-bad's field as %q, want %q (%v)", got.Field, field, got)
	}
	corrupt(t, "node-b")
	f.waitFor(t, []string{"node-a"}, []string{"node-b", "node-bad"})
	if err := b.Delete(ctx(t), datastore.KindNode, "node-bad", ""); err != nil {
		t.Fatalf("delete the undecodable Node: %v", err)
	}
	f.waitFor(t, []string{"node-a"}, []string{"node-b"})
	createNode(t, b, "node-c")
	f.waitFor(t, []string{"node-a", "node-c"}, []string{"node-b"})
}

func createNode(t *testing.T, b datastore.Backend, name string) {
	t.Helper()
	o, _ := datastore.New(datastore.KindNode)
	n := o.(*datastore.Node)
	n.Name = name
	asn := uint32(64512)
	n.Spec.BGP = &datastore.NodeBGPSpec{IPv4Address: "10.0.0.5/24", ASNumber: &asn}
	if _, err := b.Create(ctx(t), n); err != nil {
		t.Fatalf("create Node %s: %v", name, err)
	}
}

func objectNames(objs []datastore.Object) []string {
	names := make([]string, 0, len(objs))
	for _, o := range objs {
		names = append(names, o.GetName())
	}
	slices.Sort(names)
	return names
}

// followed is what one Follow callback reported.
type followed struct {
	good datastore.Snapshot
	bad  datastore.Skipped
}

type follower struct {
	updates chan followed
	last    followed
}

// follow runs datastore.Follow on kind until the test ends.
func follow(t *testing.T, b datastore.Backend, kind datastore.Kind) *follower {
	c, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	f := &follower{updates: make(chan followed, 64)}
	go func() {
		defer close(done)
		datastore.Follow(c, b, kind, slog.Default(), func(s datastore.Snapshot, bad datastore.Skipped) {
			select {
			case f.updates <- followed{s, bad}:
			case <-c.Done():
			}
		})
	}()
	return f
}

// waitFor waits until Follow reports exactly the good and bad names.
func (f *follower) waitFor(t *testing.T, good, bad []string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		gotGood, gotBad := slices.Sorted(maps.Keys(f.last.good)), slices.Sorted(maps.Keys(f.last.bad))
		if slices.Equal(gotGood, good) && slices.Equal(gotBad, bad) {
			return
		}
		select {
		case f.last = <-f.updates:
		case <-deadline:
			t.Fatalf("Follow reports good %v and undecodable %v, want %v and %v", gotGood, gotBad, good, bad)
		}
	}
}
