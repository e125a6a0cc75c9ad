package bench

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/bench/feeder"
	"github.com/petrel-net/petrel/e2e/harness"
)

const (
	// mesh500Default is how many neighbours the node under test has;
	// PETREL_BENCH_MESH_PEERS overrides it for a quicker check.
	mesh500Default = 500
	mesh500Wait    = 90 * time.Second
	mesh500Poll    = 50 * time.Millisecond
	// mesh500ClusterID is the reflector's cluster id in the reflector case.
	mesh500ClusterID = "224.0.0.1"
)

var (
	// The segment: the node, then its neighbours from .10 on; a /22 holds
	// 1,000 of them.
	mesh500Link      = netip.MustParsePrefix("10.210.0.0/22")
	mesh500Node      = netip.MustParseAddr("10.210.0.1")
	mesh500FirstPeer = netip.MustParseAddr("10.210.0.10")
	// mesh500Pool is where the neighbours' blocks come from, one /26 each.
	mesh500Pool = netip.MustParsePrefix("192.168.0.0/16")
)

// BenchmarkMesh500: one node of a 500-node calico mesh. The node under
// test peers over iBGP with 500 neighbours, simulated by one process (the
// benchmark itself, package feeder): 500 sessions from 500 addresses on
// one veth in a second namespace, each neighbour advertising one /26 with
// itself as next hop. The clock starts with the node daemon; the result is
// start -> all 500 blocks in the node's FIB (its kernel protocol), and the
// daemon's CPU and peak RSS at that moment.
//
//   - full-mesh: the node is a plain mesh member (calico's bird.cfg
//     shape for BIRD, petrel's standalone config with 500 peers, FRR with a
//     peer group).
//   - reflector: the node is a route reflector with the 500 neighbours as
//     clients (BIRD `rr client; rr cluster id`, FRR
//     `route-reflector-client`); also start -> every client has received
//     the other 499 blocks, and CPU/RSS at that moment. petrel's standalone
//     config cannot make it a reflector (petrelNoReflector), so petrel runs
//     in datastore mode here, as calico-node does, with etcd and the Node
//     resources prepared before the clock starts (preparePetrelReflector);
//     its time includes reading the 501 Nodes.
//
// Who dials: the neighbours do, as soon as the node listens, with at most
// meshHandshakeSlots attempts under way and a retry every meshRetry; they
// do not listen, so the node's own dials are refused. That keeps both
// contenders' connect timers (BIRD's `connect delay time 2`, GoBGP's
// random 1.5-2 s before a first dial) off the clock, so the figure is how
// fast each daemon accepts 500 sessions and ingests their routes.
func BenchmarkMesh500(b *testing.B) {
	n := mesh500Peers(b)
	for _, reflector := range []bool{false, true} {
		name, title := "full-mesh", fmt.Sprintf("one node, %d iBGP mesh neighbours: start -> all blocks in its FIB", n)
		if reflector {
			name, title = "reflector", fmt.Sprintf("route reflector with %d clients: start -> FIB, and -> every client has all other blocks", n)
		}
		b.Run(name, func(b *testing.B) {
			compare(b, title, allContenders, func(b *testing.B, kind string) result {
				return mesh500(b, kind, n, reflector)
			})
		})
	}
}

func mesh500Peers(b *testing.B) int {
	s := os.Getenv("PETREL_BENCH_MESH_PEERS")
	if s == "" {
		return mesh500Default
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 2 || n > 1000 {
		b.Fatalf("PETREL_BENCH_MESH_PEERS=%q: want 2..1000", s)
	}
	return n
}

func mesh500(b *testing.B, kind string, n int, reflector bool) result {
	peers := make([]string, n)
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		addrs[i] = nthAddr(mesh500FirstPeer, i)
		peers[i] = addrs[i].String()
	}
	spec := nodeSpec{RouterID: mesh500Node.String(), Peers: peers, Export: []netip.Prefix{mesh500Pool}, LearnKernel: true}
	if reflector {
		spec.ClusterID = mesh500ClusterID
	}
	petrelReflector := kind == "petrel" && reflector
	if !petrelReflector {
		skipUnsupported(b, kind, spec)
	}
	feeds := mesh500Feeds(b, addrs)
	lab, hood, node := mesh500Topology(b, addrs)
	counter, closeCounter := newRouteCounter(b, node.NS, ipv4Blocks, kernelProto(kind), n)
	defer closeCounter()

	startDaemon := func() *nodeDaemon { return startNode(b, lab, node, kind, spec) }
	if petrelReflector {
		peerPrefixes := make([]netip.Prefix, n)
		for i, a := range addrs {
			peerPrefixes[i] = netip.PrefixFrom(a, mesh500Link.Bits())
		}
		startDaemon = preparePetrelReflector(b, lab, node, netip.PrefixFrom(mesh500Node, mesh500Link.Bits()),
			mesh500ClusterID, peerPrefixes, mesh500Pool)
	}

	start := time.Now()
	d := startDaemon()
	mesh := startMeshPeers(b, hood.NS, node.NS, mesh500Node, addrs, feeds)
	alive := func() error {
		if err := d.Alive(); err != nil {
			return err
		}
		return mesh.Err()
	}
	fib, err := pollUntilCount(start, mesh500Wait, mesh500Poll, n, counter.Count, alive)
	if err != nil {
		up, _ := mesh.established()
		b.Fatalf("%s: %v (%d of %d sessions established, %d blocks in the FIB)", kind, err, up, n, fib.Last)
	}
	res := result{{"fib", "s", seconds(fib.Done), false}, {"first", "s", seconds(fib.First), false}}
	if reflector {
		refl, err := pollUntilCount(start, mesh500Wait, mesh500Poll, n, func() (int, error) {
			return mesh.reflectedTo(n - 1), nil
		}, alive)
		if err != nil {
			b.Fatalf("%s: reflection: %v (%d of %d clients have all other blocks)", kind, err, refl.Last, n)
		}
		res = append(res, metric{"reflected", "s", seconds(refl.Done), false})
	}
	// CPU and memory at the end of the measured work.
	cpu, err := d.CPU()
	if err != nil {
		b.Fatal(err)
	}
	hwm := d.peakRSS(b)
	up, lastUp := mesh.established()
	if up != n {
		b.Fatalf("%s: FIB complete with only %d of %d sessions up?", kind, up, n)
	}
	drops, lastDrop := mesh.dropped()
	b.Logf("%s: last of %d sessions up at %v, first block in the FIB at %v, all at %v; %d sessions dropped and were re-established (last: %v)",
		kind, n, lastUp.Sub(start).Round(time.Millisecond), fib.First.Round(time.Millisecond), fib.Done.Round(time.Millisecond), drops, lastDrop)
	return append(res,
		metric{"sessions", "s", seconds(lastUp.Sub(start)), false},
		metric{"drops", "n", float64(drops), true},
		metric{"cpu", "s", seconds(cpu), false},
		metric{"rss", "MB", megabytes(hwm), false})
}

// mesh500Feeds encodes each neighbour's announcement: one block of the
// pool, next hop the neighbour itself.
func mesh500Feeds(b *testing.B, addrs []netip.Addr) []*feeder.Feed {
	blocks, err := genPrefixes(mesh500Pool, 26, len(addrs))
	if err != nil {
		b.Fatal(err)
	}
	feeds := make([]*feeder.Feed, len(addrs))
	for i := range feeds {
		if feeds[i], err = feeder.NewFeed(blocks[i:i+1], addrs[i]); err != nil {
			b.Fatal(err)
		}
	}
	return feeds
}

// mesh500Topology builds the node's namespace and the neighbours' ("peers"),
// joined by one veth that carries all the neighbours' addresses.
func mesh500Topology(b *testing.B, addrs []netip.Addr) (lab *harness.Lab, hood, node *harness.Node) {
	lab = harness.New(b)
	hood, node = lab.Node("peers"), lab.Node("node")
	bits := "/" + strconv.Itoa(mesh500Link.Bits())
	lab.Link(hood, "eth0", addrs[0].String()+bits, node, "eth0", mesh500Node.String()+bits)
	cmds := make([]string, 0, len(addrs)-1)
	for _, a := range addrs[1:] {
		cmds = append(cmds, "addr add "+a.String()+bits+" dev eth0")
	}
	if err := ipBatch(hood.NS, cmds); err != nil {
		b.Fatal(err)
	}
	return lab, hood, node
}
