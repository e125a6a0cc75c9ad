// Package datastoretest is the contract every datastore.Backend passes:
// run it against a backend with Run. It uses real objects (the seed's),
// compare-and-swap conflicts, deletes and watches, including a watch
// resumed from an earlier revision as after a reconnect.
package datastoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/petrel-net/petrel/datastore"
)

// Seed returns the seed's objects from datastore/testdata/seed.yaml.
func Seed(t testing.TB) []datastore.Object {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "testdata", "seed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := datastore.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// Run runs the contract against fresh backends from newBackend.
func Run(t *testing.T, newBackend func(t *testing.T) datastore.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b datastore.Backend)
	}{
		{"SeedObjectsRoundTrip", testSeedRoundTrip},
		{"CreateExists", testCreateExists},
		{"UpdateCompareAndSwap", testUpdateCAS},
		{"DeleteCompareAndSwap", testDelete},
		{"ConcurrentCASLosesNoUpdate", testConcurrentCAS},
		{"WatchOrder", testWatchOrder},
		{"WatchResumesFromRevision", testWatchResume},
		{"Node", testNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t)
			t.Cleanup(func() { b.Close() })
			tt.fn(t, b)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func specJSON(t *testing.T, o datastore.Object) string {
	t.Helper()
	var v struct {
		Spec   json.RawMessage `json:"spec"`
		Labels any             `json:"labels"`
	}
	js, _ := json.Marshal(o)
	var full map[string]json.RawMessage
	_ = json.Unmarshal(js, &full)
	v.Spec = full["spec"]
	v.Labels = o.GetLabels()
	out, _ := json.Marshal(v)
	return string(out)
}

func testSeedRoundTrip(t *testing.T, b datastore.Backend) {
	for _, o := range Seed(t) {
		want := specJSON(t, o)
		if _, err := b.Create(ctx(t), o); err != nil {
			t.Fatalf("create %s %q: %v", o.Kind(), o.GetName(), err)
		}
		got, err := b.Get(ctx(t), o.Kind(), o.GetName())
		if err != nil {
			t.Fatal(err)
		}
		if g := specJSON(t, got); g != want {
			t.Errorf("%s %q changed in the store:\n got %s\nwant %s", o.Kind(), o.GetName(), g, want)
		}
		if got.GetResourceVersion() == "" {
			t.Errorf("%s %q has no resourceVersion", o.Kind(), o.GetName())
		}
	}
	pools, _, err := b.List(ctx(t), datastore.KindIPPool)
	if err != nil || len(pools) != 1 || pools[0].(*datastore.IPPool).Spec.VXLANMode != "CrossSubnet" {
		t.Fatalf("list pools = %v, %v", pools, err)
	}
	block, _ := b.Get(ctx(t), datastore.KindIPAMBlock, "192-168-0-192-26")
	if attrs := block.(*datastore.IPAMBlock).Spec.Attributes; len(attrs) != 2 || attrs[1].Secondary["pod"] != "calico-apiserver-8846fd76c-tthc2" {
		t.Errorf("block attributes = %+v", attrs)
	}
}

func pool(name, cidr string) *datastore.IPPool {
	o, _ := datastore.New(datastore.KindIPPool)
	p := o.(*datastore.IPPool)
	p.Name = name
	p.Spec.CIDR = cidr
	p.Spec.BlockSize = 26
	return p
}

func testCreateExists(t *testing.T, b datastore.Backend) {
	if _, err := b.Create(ctx(t), pool("p1", "10.10.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx(t), pool("p1", "10.11.0.0/16")); !errors.Is(err, datastore.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	if _, err := b.Get(ctx(t), datastore.KindIPPool, "nope"); !errors.Is(err, datastore.ErrNotFound) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
}

func testUpdateCAS(t *testing.T, b datastore.Backend) {
	created, err := b.Create(ctx(t), pool("p1", "10.10.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	p := created.(*datastore.IPPool)
	p.Spec.NATOutgoing = true
	updated, err := b.Update(ctx(t), p)
	if err != nil {
		t.Fatal(err)
	}
	if updated.GetResourceVersion() == created.GetResourceVersion() {
		t.Error("update kept the resourceVersion")
	}
	stale := created.(*datastore.IPPool)
	stale.SetResourceVersion(created.GetResourceVersion())
	stale.Spec.Disabled = true
	if _, err := b.Update(ctx(t), stale); !errors.Is(err, datastore.ErrConflict) {
		t.Fatalf("update with a stale resourceVersion: %v, want ErrConflict", err)
	}
	got, _ := b.Get(ctx(t), datastore.KindIPPool, "p1")
	if g := got.(*datastore.IPPool); !g.Spec.NATOutgoing || g.Spec.Disabled {
		t.Errorf("stored %+v: the stale update must not have landed", g.Spec)
	}
}

func testDelete(t *testing.T, b datastore.Backend) {
	created, err := b.Create(ctx(t), pool("p1", "10.10.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	p := created.(*datastore.IPPool)
	p.Spec.NATOutgoing = true
	if _, err := b.Update(ctx(t), p); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx(t), datastore.KindIPPool, "p1", created.GetResourceVersion()); !errors.Is(err, datastore.ErrConflict) {
		t.Fatalf("delete at a stale version: %v, want ErrConflict", err)
	}
	if err := b.Delete(ctx(t), datastore.KindIPPool, "p1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx(t), datastore.KindIPPool, "p1"); !errors.Is(err, datastore.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := b.Delete(ctx(t), datastore.KindIPPool, "p1", ""); !errors.Is(err, datastore.ErrNotFound) {
		t.Fatalf("delete twice: %v, want ErrNotFound", err)
	}
}

// testConcurrentCAS: writers racing on one object with read-modify-write
// loops never lose an increment — what IPAM relies on.
func testConcurrentCAS(t *testing.T, b datastore.Backend) {
	h, _ := datastore.New(datastore.KindIPAMHandle)
	handle := h.(*datastore.IPAMHandle)
	handle.Name, handle.Spec.HandleID, handle.Spec.Block = "h", "h", map[string]int{"10.0.0.0/26": 0}
	if _, err := b.Create(ctx(t), handle); err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				for attempt := 0; ; attempt++ {
					o, err := b.Get(ctx(t), datastore.KindIPAMHandle, "h")
					if err != nil {
						errs <- err
						return
					}
					o.(*datastore.IPAMHandle).Spec.Block["10.0.0.0/26"]++
					if _, err = b.Update(ctx(t), o); err == nil {
						break
					} else if !errors.Is(err, datastore.ErrConflict) || attempt > 200 {
						errs <- fmt.Errorf("update: %w", err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	o, _ := b.Get(ctx(t), datastore.KindIPAMHandle, "h")
	if n := o.(*datastore.IPAMHandle).Spec.Block["10.0.0.0/26"]; n != writers*each {
		t.Fatalf("count = %d, want %d: a compare-and-swap let an update be lost", n, writers*each)
	}
}

func next(t *testing.T, ch <-chan datastore.Event) datastore.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return datastore.Event{}
}

func expect(t *testing.T, ch <-chan datastore.Event, typ datastore.EventType, name string, check func(datastore.Object) bool) {
	t.Helper()
	ev := next(t, ch)
	if ev.Type != typ || ev.Object.GetName() != name || (check != nil && !check(ev.Object)) {
		t.Fatalf("event %s %s %+v, want %s %s", ev.Type, ev.Object.GetName(), ev.Object, typ, name)
	}
}

func testWatchOrder(t *testing.T, b datastore.Backend) {
	_, rev, err := b.List(ctx(t), datastore.KindIPPool)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := b.Watch(ctx(t), datastore.KindIPPool, rev)
	if err != nil {
		t.Fatal(err)
	}
	created, _ := b.Create(ctx(t), pool("p1", "10.10.0.0/16"))
	b.Create(ctx(t), pool("p2", "10.20.0.0/16"))
	p := created.(*datastore.IPPool)
	p.Spec.Disabled = true
	b.Update(ctx(t), p)
	b.Delete(ctx(t), datastore.KindIPPool, "p2", "")
	// Another kind's change must not show up.
	h, _ := datastore.New(datastore.KindIPAMConfig)
	h.SetName("default")
	b.Create(ctx(t), h)

	expect(t, ch, datastore.Added, "p1", nil)
	expect(t, ch, datastore.Added, "p2", nil)
	expect(t, ch, datastore.Modified, "p1", func(o datastore.Object) bool { return o.(*datastore.IPPool).Spec.Disabled })
	expect(t, ch, datastore.Deleted, "p2", nil)
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("unexpected event %s %s %s", ev.Type, ev.Object.Kind(), ev.Object.GetName())
		}
	case <-time.After(300 * time.Millisecond):
	}
}

// testWatchResumes: a watcher that lost its connection lists nothing again
// but resumes from the last revision it saw, and gets what it missed.
func testWatchResume(t *testing.T, b datastore.Backend) {
	c1, _ := b.Create(ctx(t), pool("p1", "10.10.0.0/16"))
	wctx, cancel := context.WithCancel(ctx(t))
	ch, err := b.Watch(wctx, datastore.KindIPPool, c1.GetResourceVersion())
	if err != nil {
		t.Fatal(err)
	}
	b.Create(ctx(t), pool("p2", "10.20.0.0/16"))
	last := next(t, ch).Object.GetResourceVersion()
	cancel() // the "outage"
	for range ch {
	}
	b.Create(ctx(t), pool("p3", "10.30.0.0/16"))
	b.Delete(ctx(t), datastore.KindIPPool, "p1", "")

	ch2, err := b.Watch(ctx(t), datastore.KindIPPool, last)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, ch2, datastore.Added, "p3", nil)
	expect(t, ch2, datastore.Deleted, "p1", nil)
}

func testNode(t *testing.T, b datastore.Backend) {
	o, _ := datastore.New(datastore.KindNode)
	n := o.(*datastore.Node)
	n.Name = "node-a"
	n.Labels = map[string]string{"rack": "r1"}
	asn := uint32(65001)
	n.Spec.BGP = &datastore.NodeBGPSpec{IPv4Address: "10.0.0.5/24", ASNumber: &asn, RouteReflectorClusterID: "224.0.0.1"}
	n.Spec.IPv4VXLANTunnelAddr = "192.168.0.193"
	n.Spec.VXLANTunnelMACAddr = "66:aa:bb:cc:dd:ee"
	n.Spec.IPv6VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddrV6 = "fd10::c1", "66:aa:bb:cc:dd:ef"
	want := specJSON(t, n)
	if _, err := b.Create(ctx(t), n); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx(t), datastore.KindNode, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if g := specJSON(t, got); g != want {
		t.Errorf("node changed in the store:\n got %s\nwant %s", g, want)
	}
	gn := got.(*datastore.Node)
	gn.Spec.BGP.IPv4Address = "10.0.0.6/24"
	if _, err := b.Update(ctx(t), gn); err != nil {
		t.Fatal(err)
	}
	nodes, _, _ := b.List(ctx(t), datastore.KindNode)
	found := false
	for _, o := range nodes {
		if o.GetName() == "node-a" {
			found = o.(*datastore.Node).Spec.BGP.IPv4Address == "10.0.0.6/24"
		}
	}
	if !found {
		t.Errorf("updated node not listed: %v", nodes)
	}
}
