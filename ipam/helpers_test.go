package ipam

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/memory"
)

// fataler is what the helpers need of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mkPool(name, cidr string, blockSize int, mod ...func(*datastore.IPPoolSpec)) *datastore.IPPool {
	o, _ := datastore.New(datastore.KindIPPool)
	p := o.(*datastore.IPPool)
	p.Name = name
	p.Spec.CIDR = cidr
	p.Spec.BlockSize = blockSize
	for _, m := range mod {
		m(&p.Spec)
	}
	return p
}

func mkConfig(strict, auto bool, maxBlocks int) *datastore.IPAMConfig {
	o, _ := datastore.New(datastore.KindIPAMConfig)
	c := o.(*datastore.IPAMConfig)
	c.Name = "default"
	c.Spec = datastore.IPAMConfigSpec{StrictAffinity: strict, AutoAllocateBlocks: auto, MaxBlocksPerHost: maxBlocks}
	return c
}

func mkNode(name string, labels map[string]string) *datastore.Node {
	o, _ := datastore.New(datastore.KindNode)
	n := o.(*datastore.Node)
	n.Name = name
	n.Labels = labels
	return n
}

// newClient is a Client on a memory store holding objs.
func newClient(t fataler, objs ...datastore.Object) (*Client, datastore.Backend) {
	t.Helper()
	b := memory.New()
	load(t, b, objs...)
	return New(b), b
}

func load(t fataler, b datastore.Backend, objs ...datastore.Object) {
	t.Helper()
	for _, o := range objs {
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Create(context.Background(), o); err != nil {
			t.Fatalf("create %s %s: %v", o.Kind(), o.GetName(), err)
		}
	}
}

func mustAssign(t fataler, c *Client, a AssignArgs) []netip.Addr {
	t.Helper()
	ips, err := c.AutoAssign(context.Background(), a)
	if err != nil {
		t.Fatalf("AutoAssign %+v: %v", a, err)
	}
	return ips
}

// mustCheck fails the test unless Check finds nothing.
func mustCheck(t fataler, c *Client) {
	t.Helper()
	r, err := c.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("Check: %s", r)
	}
}

func getBlock(t fataler, b datastore.Backend, cidr string) *datastore.IPAMBlock {
	t.Helper()
	o, err := b.Get(context.Background(), datastore.KindIPAMBlock, BlockName(netip.MustParsePrefix(cidr)))
	if err != nil {
		t.Fatal(err)
	}
	return o.(*datastore.IPAMBlock)
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}
