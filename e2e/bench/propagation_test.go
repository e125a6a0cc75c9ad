package bench

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

const (
	propagationRoutes = 20
	// propagationWait bounds one route's trip; BIRD learns kernel routes
	// on its 2 s scan at worst.
	propagationWait = 10 * time.Second
	// propagationSetup bounds the warm-up route, which also waits for the
	// session to come up.
	propagationSetup = 60 * time.Second
)

var (
	propagationExport = netip.MustParsePrefix("10.77.0.0/16")
	hostA             = netip.MustParseAddr("10.202.0.2") // the static routes' next hop
)

// BenchmarkPropagation: a static route added to node A's kernel is learned
// by A's daemon, advertised over iBGP to B's daemon and installed in B's
// kernel. The time from the route's addition on A to its arrival in B's
// kernel, 20 times in a row: p50 and max.
//
// petrel exports learned kernel routes inside the ranges of its top-level
// `export` key; a petrel that refuses the key fails the benchmark.
func BenchmarkPropagation(b *testing.B) {
	compare(b, fmt.Sprintf("kernel route on A -> kernel of B over iBGP (%d routes)", propagationRoutes), allContenders, propagation)
}

func propagation(b *testing.B, kind string) result {
	lab := harness.New(b)
	a, bn, host := lab.Node("a"), lab.Node("b"), lab.Node("host-a")
	lab.Link(a, "eth0", "10.201.0.1/24", bn, "eth0", "10.201.0.2/24")
	// A second link gives A's static routes a real next hop.
	lab.Link(a, "eth1", "10.202.0.1/24", host, "eth0", hostA.String()+"/24")

	// Subscribe before anything can arrive.
	watch, err := watchRoutes(bn.NS)
	if err != nil {
		b.Fatal(err)
	}
	defer watch.Close()
	nlA, err := dialNetlink(a.NS, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer nlA.Close()

	da := startNode(b, lab, a, kind, nodeSpec{RouterID: "10.201.0.1", Peers: []string{"10.201.0.2"},
		Export: []netip.Prefix{propagationExport}, LearnKernel: true})
	db := startNode(b, lab, bn, kind, nodeSpec{RouterID: "10.201.0.2", Peers: []string{"10.201.0.1"}})
	if kind == "petrel" {
		if err := waitPetrelAPI(da, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		if err := waitPetrelAPI(db, 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	alive := func() error {
		if err := da.Alive(); err != nil {
			return fmt.Errorf("A: %w", err)
		}
		if err := db.Alive(); err != nil {
			return fmt.Errorf("B: %w", err)
		}
		return nil
	}

	// A warm-up route proves the session and the whole path before the
	// clock matters.
	warm := netip.MustParsePrefix("10.77.255.0/24")
	if err := nlA.AddRoute(warm, hostA, protoStatic); err != nil {
		b.Fatal(err)
	}
	if _, err := watch.Wait(warm, kernelProto(kind), propagationSetup); err != nil {
		b.Fatalf("%s: warm-up route never reached B: %v (%v)", kind, err, alive())
	}

	// BIRD learns kernel routes on its scan timer unless it hears the
	// kernel's notification first; a random pause between routes keeps the
	// additions from locking onto any timer's phase.
	var lat []time.Duration
	for k := range propagationRoutes {
		time.Sleep(100*time.Millisecond + rand.N(400*time.Millisecond))
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, byte(k), 0}), 24)
		start := time.Now()
		if err := nlA.AddRoute(p, hostA, protoStatic); err != nil {
			b.Fatal(err)
		}
		ev, err := watch.Wait(p, kernelProto(kind), propagationWait)
		if err != nil {
			b.Fatalf("%s: route %d: %v (%v)", kind, k, err, alive())
		}
		lat = append(lat, ev.At.Sub(start))
	}
	if err := alive(); err != nil {
		b.Fatal(err)
	}
	sample := strings.TrimSpace(bn.MustRun(b, "ip", "route", "show", "10.77.0.0/24"))
	b.Logf("%s: latencies %v; on B: %s", kind, roundAll(lat, 10*time.Microsecond), sample)
	return result{
		{"p50", "ms", millis(percentile(lat, 50)), false},
		{"max", "ms", millis(percentile(lat, 100)), false},
	}
}

func roundAll(ds []time.Duration, m time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(m)
	}
	return out
}
