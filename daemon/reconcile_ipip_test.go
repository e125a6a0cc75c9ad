package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/petrel-net/petrel/dataplane"
)

// fakeIPIP stands in for *dataplane.IPIP; ensureErr fails Ensure.
type fakeIPIP struct {
	calls     *calls
	ensureErr error
}

func (f *fakeIPIP) Ensure(tunnel netip.Addr) error {
	f.calls.add("Ensure " + tunnel.String())
	return f.ensureErr
}

func (f *fakeIPIP) Sync(tunnel netip.Addr, routes map[netip.Prefix]netip.Addr) error {
	f.calls.add(fmt.Sprintf("Sync %s %d routes", tunnel, len(routes)))
	return nil
}

// excludedKernel records every excluded set kernel sync is given.
type excludedKernel struct{ sets [][]netip.Prefix }

func (k *excludedKernel) SetExcluded(_ context.Context, p []netip.Prefix) error {
	k.sets = append(k.sets, p)
	return nil
}

func newTestIPIPReconciler(c *calls, tun *fakeIPIP, kernel excludeTarget) *ipipReconciler {
	return &ipipReconciler{
		kernel: kernel, log: slog.New(slog.DiscardHandler),
		deps: &ipipDeps{
			address: func(_ context.Context, pools []netip.Prefix) (netip.Addr, error) {
				c.add(fmt.Sprintf("address %v", pools))
				if len(pools) == 0 {
					return netip.Addr{}, nil
				}
				return pools[0].Addr().Next(), nil
			},
			open: func() (ipipTunnel, error) { c.add("open"); return tun, nil },
		},
	}
}

var ipipOn = desired{IPIP: ipipPlan{
	Pools: pfx("10.5.0.0/16"), Names: []string{"pods (Always)"},
	Routes:   map[netip.Prefix]netip.Addr{netip.MustParsePrefix("10.5.1.0/26"): netip.MustParseAddr("172.16.0.2")},
	Excluded: pfx("10.5.1.0/26"),
}}

// Where tunl0 cannot exist the reconciler never hands a block to it:
// kernel sync keeps routing the pool natively, and status names the pool.
func TestIPIPReconcilerFailsSoftWithoutTunl0(t *testing.T) {
	var c calls
	kernel := &excludedKernel{}
	r := newTestIPIPReconciler(&c, &fakeIPIP{calls: &c, ensureErr: fmt.Errorf("%w: operation not supported", dataplane.ErrNoIPIP)}, kernel)
	d := ipipOn
	d.Problems = []string{"an earlier problem"}
	if err := r.Reconcile(t.Context(), &d); err != nil {
		t.Fatalf("a kernel without IPIP is a problem for status, not an error: %v", err)
	}
	if len(d.Problems) != 2 || !strings.HasPrefix(d.Problems[1], "IPPool pods (Always): spec.ipipMode: tunl0 does not exist") ||
		!strings.Contains(d.Problems[1], "routed natively") {
		t.Errorf("problems %q, want the IPIP pool named, with what happens to its blocks", d.Problems)
	}
	for _, call := range c {
		if strings.HasPrefix(call, "Sync") {
			t.Errorf("routes written through a tunl0 that cannot exist: %v", c)
		}
	}
	for _, set := range kernel.sets {
		if len(set) > 0 {
			t.Errorf("kernel sync was told to leave %v to tunl0", set)
		}
	}
	if c[0] != "address [10.5.0.0/16]" {
		t.Errorf("calls %v: the tunnel address is still published (calico-node does it whatever the kernel)", c)
	}
}

// With tunl0 the blocks are handed over from kernel sync before tunl0's
// routes are written; an unchanged pass only re-checks tunl0; when the
// IPIP pools go, the address is released and the routes and hand-off
// undone; a cluster that never had an IPIP pool never touches tunl0.
func TestIPIPReconcilerHandsBlocksToTunl0(t *testing.T) {
	var c calls
	kernel := &excludedKernel{}
	r := newTestIPIPReconciler(&c, &fakeIPIP{calls: &c}, kernel)
	if got := reconcileTwice(t, &c, r, desired{}, desired{}); len(got) != 0 || len(c) != 0 {
		t.Errorf("no IPIP pool: calls %v, want none (no tunl0)", got)
	}
	if err := r.Reconcile(t.Context(), &ipipOn); err != nil {
		t.Fatal(err)
	}
	want := calls{"address [10.5.0.0/16]", "open", "Ensure 10.5.0.1", "Sync 10.5.0.1 1 routes"}
	if !slices.Equal(c, want) || len(kernel.sets) != 1 || !slices.Equal(kernel.sets[0], pfx("10.5.1.0/26")) {
		t.Errorf("calls %v, excluded %v; want %v with 10.5.1.0/26 handed over before Sync", c, kernel.sets, want)
	}
	if got := reconcileTwice(t, &c, r, ipipOn, ipipOn); !slices.Equal(got, calls{"Ensure 10.5.0.1", "Sync 10.5.0.1 1 routes"}) {
		t.Errorf("unchanged: calls %v, want only Ensure and Sync (they repair tunl0)", got)
	}
	c = nil
	if err := r.Reconcile(t.Context(), &desired{}); err != nil {
		t.Fatal(err)
	}
	want = calls{"address []", "Ensure invalid IP", "Sync invalid IP 0 routes"}
	if !slices.Equal(c, want) || len(kernel.sets[len(kernel.sets)-1]) != 0 {
		t.Errorf("pools gone: calls %v, last excluded %v; want %v and nothing excluded", c, kernel.sets[len(kernel.sets)-1], want)
	}
}

// Kernel sync has one excluded set: both tunnels' blocks, each tunnel
// changing only its own.
func TestExcludeUnionKeepsBothTunnelsBlocks(t *testing.T) {
	kernel := &excludedKernel{}
	u := &excludeUnion{kernel: kernel}
	vx, ipip := u.owner("VXLAN"), u.owner("IPIP")
	for _, step := range []struct {
		owner excludeTarget
		set   []netip.Prefix
		want  []netip.Prefix
	}{
		{vx, pfx("10.1.0.0/26"), pfx("10.1.0.0/26")},
		{ipip, pfx("10.5.1.0/26", "10.5.0.0/26"), pfx("10.1.0.0/26", "10.5.0.0/26", "10.5.1.0/26")},
		{vx, nil, pfx("10.5.0.0/26", "10.5.1.0/26")},
		{ipip, nil, nil},
	} {
		if err := step.owner.SetExcluded(t.Context(), step.set); err != nil {
			t.Fatal(err)
		}
		if got := kernel.sets[len(kernel.sets)-1]; !slices.Equal(got, step.want) {
			t.Errorf("after %v: kernel sync excludes %v, want %v", step.set, got, step.want)
		}
	}
}
