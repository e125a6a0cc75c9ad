package bench

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

const (
	idleVeths   = 2000
	idleWarmup  = 5 * time.Second
	idleMeasure = 30 * time.Second
)

// idleWorkloadBase numbers the workloads' /32 routes, calico-style.
var idleWorkloadBase = netip.MustParseAddr("192.168.0.1")

// BenchmarkIdle2000Veths: a node with 2,000 calico workload interfaces
// (cali* veths with a /32 route each) and one established BGP session, and
// nothing changing: how much CPU does the daemon burn just watching? BIRD's
// 2 s device and kernel scans are the classic cost here.
func BenchmarkIdle2000Veths(b *testing.B) {
	compare(b, fmt.Sprintf("idle with %d workload veths, CPU over %v after %v warm-up", idleVeths, idleMeasure, idleWarmup), birdAndPetrel, idle)
}

func idle(b *testing.B, kind string) result {
	lab := harness.New(b)
	tor, node, wl := lab.Node("tor"), lab.Node("node"), lab.Node("workloads")
	lab.Link(tor, "eth0", "10.200.0.1/24", node, "eth0", "10.200.0.2/24")

	t0 := time.Now()
	if err := addWorkloadVeths(node.NS, wl.NS, idleVeths, idleWorkloadBase); err != nil {
		b.Fatal(err)
	}
	setup := time.Since(t0)
	nl, err := dialNetlink(node.NS, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer nl.Close()
	if n, err := nl.CountRoutes(tableMain, 3 /* RTPROT_BOOT */, 32); err != nil || n != idleVeths {
		b.Fatalf("node has %d workload routes, want %d (err %v)", n, idleVeths, err)
	}
	b.Logf("%s: created %d veth pairs with routes in %v", kind, idleVeths, setup.Round(time.Millisecond))

	torBird := harness.StartBird(b, tor, torBirdConfig("10.200.0.1", []string{"10.200.0.2"}, nil))
	d := startNode(b, lab, node, kind, nodeSpec{RouterID: "10.200.0.2", Peers: []string{"10.200.0.1"}, LearnKernel: true})
	// The session must be up for the idle state to be the real one.
	if err := waitEstablished(b, torBird, "node0", 30*time.Second); err != nil {
		b.Fatalf("%s: %v (%v)", kind, err, d.Alive())
	}

	time.Sleep(idleWarmup)
	requireComm(b, d.Pid(), d.Comm())
	cpu0, err := procCPU(d.Pid())
	if err != nil {
		b.Fatal(err)
	}
	t1 := time.Now()
	time.Sleep(idleMeasure)
	cpu1, err := procCPU(d.Pid())
	elapsed := time.Since(t1)
	if err != nil {
		b.Fatalf("%s: %v (%v)", kind, err, d.Alive())
	}
	if err := d.Alive(); err != nil {
		b.Fatal(err)
	}
	if err := waitEstablished(b, torBird, "node0", 0); err != nil {
		b.Fatalf("%s: session dropped while idle: %v", kind, err)
	}
	rss, err := procStatusBytes(d.Pid(), "VmRSS")
	if err != nil {
		b.Fatal(err)
	}
	pct := 100 * (cpu1 - cpu0).Seconds() / elapsed.Seconds()
	b.Logf("%s: %v CPU in %v = %.2f%% of a core; RSS %.1f MB", kind, cpu1-cpu0, elapsed.Round(time.Millisecond), pct, megabytes(rss))
	return result{
		{"cpu", "pct", pct, false},
		{"rss", "MB", megabytes(rss), false},
		{"setup", "s", seconds(setup), true},
	}
}

// addWorkloadVeths gives node n calico-style workload interfaces: veth
// pairs whose host ends, named cali+11 hex digits, are in node (up, no
// address, a /32 route to the workload each) and whose other ends are in
// the workloads namespace. Two `ip -batch` runs do it all (thousands of
// separate `ip` processes would take minutes).
func addWorkloadVeths(node, workloads string, n int, base netip.Addr) error {
	var links, routes, peers []string
	for i := range n {
		name := caliName(i)
		peer := fmt.Sprintf("w%d", i)
		links = append(links,
			fmt.Sprintf("link add %s type veth peer name %s netns %s", name, peer, workloads),
			fmt.Sprintf("link set %s up", name))
		routes = append(routes, fmt.Sprintf("route add %s/32 dev %s", nthAddr(base, i), name))
		peers = append(peers, fmt.Sprintf("link set %s up", peer))
	}
	// Links before routes: a route needs its device up.
	if err := ipBatch(node, append(links, routes...)); err != nil {
		return err
	}
	return ipBatch(workloads, peers)
}

// caliName returns a unique calico-style interface name, "cali" and 11 hex
// digits (15 characters, the kernel's limit). Multiplying by an odd
// constant modulo 2^44 is a bijection, so names never collide.
func caliName(i int) string {
	return fmt.Sprintf("cali%011x", (uint64(i)*0x9E3779B97F4A7C15)&(1<<44-1))
}
