package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/etcd"
	"github.com/petrel-net/petrel/datastore/kubernetes"
	"github.com/petrel-net/petrel/internal/testenv/etcdserver"
	"github.com/petrel-net/petrel/internal/testenv/kubeapi"
)

const nodes, workersPerNode = 4, 2

func TestConcurrentEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs etcd")
	}
	srv := etcdserver.Start(t)
	runConcurrent(t, 1000, func(t *testing.T) datastore.Backend {
		b, err := etcd.New(t.Context(), etcd.Config{Endpoints: srv.Endpoint})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestConcurrentKubernetes: N is 250 per worker here (2000 addresses), not
// 1000: every allocation is several API round trips (and a List of every
// BlockAffinity, the backend having no label selector), about 34
// allocations/s in all on a test apiserver, so N = 1000 passes too but
// takes four minutes.
func TestConcurrentKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a kube-apiserver")
	}
	env := kubeapi.Start(t)
	runConcurrent(t, 250, func(t *testing.T) datastore.Backend {
		b, err := kubernetes.NewForConfig(env.RestConfig)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// runConcurrent has nodes×workersPerNode workers, each with its own
// Client and store connection, allocate perWorker addresses one pod at a
// time, all at once; then checks that no address was handed out twice and
// the store is consistent, releases everything the same way and checks
// again.
func runConcurrent(t *testing.T, perWorker int, connect func(*testing.T) datastore.Backend) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	admin := connect(t)
	defer admin.Close()
	load(t, admin, mkPool("big", "10.0.0.0/16", 26))

	type worker struct {
		node string
		c    *Client
		ips  map[string]netip.Addr // handle → address
	}
	var workers []*worker
	for n := range nodes {
		b := connect(t) // one connection per node, as calico-node has
		defer b.Close()
		for range workersPerNode {
			workers = append(workers, &worker{node: fmt.Sprintf("node-%d", n), c: New(b), ips: map[string]netip.Addr{}})
		}
	}
	run := func(what string, fn func(w *worker, i int) error) {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, len(workers))
		for wi, w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					if err := fn(w, wi*perWorker+i); err != nil {
						errs <- fmt.Errorf("%s %s #%d: %w", what, w.node, i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		total := len(workers) * perWorker
		d := time.Since(start)
		t.Logf("%s: %d addresses in %s (%.0f/s)", what, total, d.Round(time.Millisecond), float64(total)/d.Seconds())
	}

	run("assign", func(w *worker, i int) error {
		h := fmt.Sprintf("k8s-pod-network.%s-%d", w.node, i)
		ips, err := w.c.AutoAssign(ctx, AssignArgs{Node: w.node, Handle: h, Num4: 1, Attrs: map[string]string{"pod": fmt.Sprint("pod-", i)}})
		if err == nil {
			w.ips[h] = ips[0]
		}
		return err
	})
	seen := map[netip.Addr]string{}
	for _, w := range workers {
		for h, ip := range w.ips {
			if other, dup := seen[ip]; dup {
				t.Errorf("%s handed out to %s and %s", ip, other, h)
			}
			seen[ip] = h
		}
	}
	if want := len(workers) * perWorker; len(seen) != want {
		t.Fatalf("%d distinct addresses, want %d", len(seen), want)
	}
	stored := storedAllocations(t, admin)
	for ip, h := range seen {
		if stored[ip] != h {
			t.Errorf("%s is stored for %q, was handed to %s", ip, stored[ip], h)
		}
	}
	c := New(admin)
	mustCheckCtx(t, ctx, c)
	u, err := c.Usage(ctx)
	if err != nil || u[0].Used != len(seen) {
		t.Fatalf("usage %+v, %v", u, err)
	}
	t.Logf("%d blocks for %d nodes", u[0].Blocks, nodes)

	handles := make([][]string, len(workers))
	for wi, w := range workers {
		for h := range w.ips {
			handles[wi] = append(handles[wi], h)
		}
	}
	run("release", func(w *worker, i int) error {
		wi, k := i/perWorker, i%perWorker
		n, err := w.c.ReleaseByHandle(ctx, handles[wi][k])
		if err == nil && n != 1 {
			err = fmt.Errorf("released %d addresses of %s", n, handles[wi][k])
		}
		return err
	})
	mustCheckCtx(t, ctx, c)
	if left := storedAllocations(t, admin); len(left) != 0 {
		t.Errorf("%d addresses still allocated", len(left))
	}
	if objs, _, _ := admin.List(ctx, datastore.KindIPAMHandle); len(objs) != 0 {
		t.Errorf("%d handles left", len(objs))
	}
}

func mustCheckCtx(t *testing.T, ctx context.Context, c *Client) {
	t.Helper()
	r, err := c.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("Check: %s", r)
	}
}
