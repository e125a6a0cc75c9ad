package etcd

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/datastoretest"
	"github.com/petrel-net/petrel/internal/testenv/etcdserver"
)

func TestContract(t *testing.T) {
	srv := etcdserver.Start(t)
	datastoretest.Run(t, func(t *testing.T) datastore.Backend {
		// Each case gets a fresh store: a key space of its own is not
		// possible with a fixed layout, so wipe the prefix instead.
		b, err := New(t.Context(), Config{Endpoints: srv.Endpoint})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.c.Delete(t.Context(), prefix, clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestUndecodable: one Node key holding a value that is not a Node (an
// AS number that is not a number) hides only itself.
func TestUndecodable(t *testing.T) {
	srv := etcdserver.Start(t)
	b, err := New(t.Context(), Config{Endpoints: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	datastoretest.RunUndecodable(t, b, func(t *testing.T, name string) string {
		value := `{"kind":"Node","metadata":{"name":"` + name + `"},"spec":{"bgp":{"asNumber":"notanumber"}}}`
		if _, err := b.c.Put(t.Context(), Key(datastore.KindNode, name), value); err != nil {
			t.Fatal(err)
		}
		return "spec.bgp.asNumber"
	})
}
