package bench

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
	"github.com/petrel-net/petrel/lab"
)

const (
	mesh20Nodes = 20
	mesh20Lab   = "mesh20" // the name in deploy/lab/mesh20.clab.yml
	// mesh20Wait bounds start -> converged for either contender.
	mesh20Wait = 90 * time.Second
	// mesh20Poll is the resolution of the convergence time.
	mesh20Poll = 50 * time.Millisecond
)

// mesh20Topology is the petrel side's topology, relative to this package.
var mesh20Topology = filepath.Join("..", "..", "deploy", "lab", "mesh20.clab.yml")

// mesh20Pool is where the BIRD side's per-node blocks come from, as the
// lab's default IPPool (192.168.0.0/16, blockSize 26) is for petrel's.
var mesh20Pool = netip.MustParsePrefix("192.168.0.0/16")

// BenchmarkMesh20Convergence: 20 nodes on one L2 segment in a full iBGP
// mesh (190 sessions), each originating one /26. The clock starts when the
// topology starts being built and stops when every node's main table holds
// all 20 blocks with protocol 12 (its own blackhole and the 19 others via
// their nodes): the cluster's time to full reachability from nothing.
//
//   - petrel: `petrel lab up deploy/lab/mesh20.clab.yml` (package lab,
//     in-process, the daemons being PETREL_BIN): namespaces, bridge, etcd,
//     default resources, 20 petrel daemons in datastore mode started one
//     after the other (each waited for on its API socket), then one pod per
//     node. The block needs no pod: with the seed pool's vxlanMode
//     CrossSubnet each daemon assigns itself a VXLAN tunnel address from
//     IPAM as it starts (as calico-node does), which claims the node's /26;
//     the node programs it as a blackhole and advertises it. Convergence is
//     reached before `up` creates the pods (the log shows both times); the
//     benchmark then waits for `up` to finish (a failed `up` fails it).
//   - bird: the same segment built with e2e/harness (a bridge in a hub
//     namespace, 20 nodes attached to it with 10.0.0.N/24), one BIRD 2
//     per node with calico-node's bird.cfg shape (birdNodeConfig: device and
//     kernel scan 2 s, kernel learn/persist/merge paths, direct without
//     cali*, calico's BGP timers, export filter on the pool) plus a static
//     blackhole /26 per node, as calico's bird_aggr.cfg does for the node's
//     blocks. No datastore: BIRD's config is written up front.
//
// Per node, read from /proc of the 20 daemons at the moment of convergence:
// CPU seconds (utime+stime, in 10 ms ticks: BIRD's figures are at the
// resolution's edge) used since the daemon started, mean per node; VmRSS,
// mean and max. etcd and the lab's own processes are not counted.
//
// "setup" (start -> first daemon started: namespaces, links, and for petrel
// etcd and the default resources) is reported but not compared; "daemons"
// is converge minus setup; it includes starting the 20 daemons one after
// the other, each waited for (BIRD: birdc answers; petrel: its API socket,
// after its datastore sync and tunnel address assignment).
func BenchmarkMesh20Convergence(b *testing.B) {
	compare(b, fmt.Sprintf("%d-node full mesh: start -> every block in every FIB", mesh20Nodes), birdAndPetrel, mesh20)
}

func mesh20(b *testing.B, kind string) result {
	switch kind {
	case "petrel":
		return mesh20Petrel(b)
	case "bird":
		return mesh20Bird(b)
	}
	b.Fatalf("unknown contender %q", kind)
	return nil
}

// mesh20Fibs watches the main tables of a set of namespaces for protocol-12
// /26 routes. Namespaces that do not exist yet are dialed on a later poll.
type mesh20Fibs struct {
	ns    []string
	conns []*nlConn
}

func (f *mesh20Fibs) Close() {
	for _, c := range f.conns {
		if c != nil {
			c.Close()
		}
	}
}

// converged reports how many namespaces hold at least want such routes.
func (f *mesh20Fibs) converged(want int) (int, error) {
	if f.conns == nil {
		f.conns = make([]*nlConn, len(f.ns))
	}
	done := 0
	for i, ns := range f.ns {
		if f.conns[i] == nil {
			if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
				continue // not created yet
			}
			c, err := dialNetlink(ns, 0)
			if err != nil {
				continue // created but perhaps not mounted yet
			}
			f.conns[i] = c
		}
		n, err := f.conns[i].CountRoutes(tableMain, protoBird, 26)
		if err != nil {
			return done, fmt.Errorf("%s: %w", ns, err)
		}
		if n >= want {
			done++
		}
	}
	return done, nil
}

// mesh20Usage is the per-daemon /proc figures.
type mesh20Usage struct {
	cpu []time.Duration
	rss []uint64
}

func (u *mesh20Usage) add(b *testing.B, pid int, comm string) {
	b.Helper()
	requireComm(b, pid, comm)
	cpu, err := procCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	rss, err := procStatusBytes(pid, "VmRSS")
	if err != nil {
		b.Fatal(err)
	}
	u.cpu = append(u.cpu, cpu)
	u.rss = append(u.rss, rss)
}

func (u *mesh20Usage) metrics() result {
	var cpuSum time.Duration
	var rssSum, rssMax uint64
	for i := range u.cpu {
		cpuSum += u.cpu[i]
		rssSum += u.rss[i]
		rssMax = max(rssMax, u.rss[i])
	}
	n := len(u.cpu)
	return result{
		{"cpu_node", "s", seconds(cpuSum) / float64(n), false},
		{"rss_node", "MB", megabytes(rssSum) / float64(n), false},
		{"rss_max", "MB", megabytes(rssMax), false},
	}
}

// stampWriter remembers when a line containing each marker was first
// written (lab.Up's progress lines).
type stampWriter struct {
	mu      sync.Mutex
	markers []string
	at      map[string]time.Time
	log     strings.Builder
}

func (w *stampWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.at == nil {
		w.at = map[string]time.Time{}
	}
	for _, m := range w.markers {
		if _, ok := w.at[m]; !ok && strings.Contains(string(p), m) {
			w.at[m] = time.Now()
		}
	}
	w.log.Write(p)
	return len(p), nil
}

func (w *stampWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.String()
}

// since returns when marker was first seen, relative to start (0: never).
func (w *stampWriter) since(marker string, start time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.at[marker]; ok {
		return t.Sub(start)
	}
	return 0
}

// firstLines returns the first n lines of s and how many there are.
func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		return strings.Join(lines[:n], "\n") + fmt.Sprintf("\n... (%d routes)", len(lines))
	}
	return strings.Join(lines, "\n")
}

func mesh20Petrel(b *testing.B) result {
	if lab.Exists(mesh20Lab) {
		b.Fatalf("lab %s exists already: remove it with `petrel lab down %s`", mesh20Lab, mesh20Lab)
	}
	b.Cleanup(func() {
		if err := lab.Down(mesh20Lab, io.Discard); err != nil {
			b.Logf("lab down %s: %v", mesh20Lab, err)
		}
	})
	names := make([]string, mesh20Nodes)
	fibs := &mesh20Fibs{}
	for i := range names {
		names[i] = fmt.Sprintf("node%d", i+1)
		fibs.ns = append(fibs.ns, lab.NSName(mesh20Lab, names[i]))
	}
	defer fibs.Close()

	const (
		mDaemon   = "starting petrel daemon"
		mSessions = "waiting for BGP sessions"
		mPods     = "pod default/"
	)
	out := &stampWriter{markers: []string{mDaemon, mSessions, mPods}}
	upDone := make(chan error, 1)
	start := time.Now()
	go func() {
		upDone <- lab.Up(context.Background(), mesh20Topology, lab.Options{Petrel: petrelBin, Out: out})
	}()

	var upErr error
	upReturned := false
	r, err := pollUntilCount(start, mesh20Wait, mesh20Poll, mesh20Nodes, func() (int, error) {
		return fibs.converged(mesh20Nodes)
	}, func() error {
		if upReturned {
			return nil
		}
		select {
		case upErr = <-upDone:
			upReturned = true
			if upErr != nil {
				return fmt.Errorf("lab up: %w", upErr)
			}
		default:
		}
		return nil
	})
	if err != nil {
		b.Fatalf("petrel: %v\nlab up output:\n%s", err, logTail(out.String(), 30))
	}
	// Usage at convergence, before the lab's pings add their share.
	var use mesh20Usage
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(lab.Dir(mesh20Lab), "pids", n+"-petrel.pid"))
		if err != nil {
			b.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			b.Fatal(err)
		}
		use.add(b, pid, "petrel")
	}
	if !upReturned {
		upErr = <-upDone
	}
	upTime := time.Since(start)
	if upErr != nil {
		b.Fatalf("lab up: %v", upErr)
	}
	first := out.since(mDaemon, start)
	sample := firstLines(harnessRun(b, "ip", "-n", fibs.ns[0], "route", "show", "proto", "bird"), 3)
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	b.Logf("petrel: first daemon %v, all daemons up %v, first pod %v, converged %v, lab up returned %v; node1 FIB:\n%s",
		ms(first), ms(out.since(mSessions, start)), ms(out.since(mPods, start)), ms(r.Done), ms(upTime), sample)
	return append(result{
		{"converge", "s", seconds(r.Done), false},
		{"daemons", "s", seconds(r.Done - first), false},
		{"setup", "s", seconds(first), true},
	}, use.metrics()...)
}

func mesh20Bird(b *testing.B) result {
	blocks, err := genPrefixes(mesh20Pool, 26, mesh20Nodes*4)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	l := harness.New(b)
	hub := l.Node("sw")
	l.Bridge(hub, "br0", "")
	nodes := make([]*harness.Node, mesh20Nodes)
	addrs := make([]string, mesh20Nodes)
	fibs := &mesh20Fibs{}
	defer fibs.Close()
	for i := range nodes {
		nodes[i] = l.Node(fmt.Sprintf("node%d", i+1))
		addrs[i] = fmt.Sprintf("10.0.0.%d", i+1)
		l.Attach(hub, "br0", nodes[i], "eth1", addrs[i]+"/24")
		fibs.ns = append(fibs.ns, nodes[i].NS)
	}
	// Dial every FIB before the clock matters for the daemons.
	if _, err := fibs.converged(mesh20Nodes); err != nil {
		b.Fatal(err)
	}
	first := time.Since(start)
	daemons := make([]*nodeDaemon, mesh20Nodes)
	for i, n := range nodes {
		var peers []string
		for j, a := range addrs {
			if j != i {
				peers = append(peers, a)
			}
		}
		spec := nodeSpec{RouterID: addrs[i], Peers: peers, Export: []netip.Prefix{mesh20Pool}, LearnKernel: true}
		// Spread the blocks over the pool like IPAM does, not adjacent.
		block := blocks[i*4]
		conf := birdNodeConfig(spec) + fmt.Sprintf("protocol static blocks {\n  ipv4;\n  route %s blackhole;\n}\n", block)
		bd := harness.StartBird(b, n, conf)
		daemons[i] = &nodeDaemon{Kind: "bird", Procs: []*harness.Process{bd.Proc}, Bird: bd}
	}
	alive := func() error {
		for i, d := range daemons {
			if err := d.Alive(); err != nil {
				return fmt.Errorf("node%d: %w", i+1, err)
			}
		}
		return nil
	}
	r, err := pollUntilCount(start, mesh20Wait, mesh20Poll, mesh20Nodes, func() (int, error) {
		return fibs.converged(mesh20Nodes)
	}, alive)
	if err != nil {
		b.Fatalf("bird: %v", err)
	}
	var use mesh20Usage
	for _, d := range daemons {
		use.add(b, d.Pid(), "bird")
	}
	sample := firstLines(nodes[0].MustRun(b, "ip", "route", "show", "proto", "bird"), 3)
	b.Logf("bird: first daemon %v, converged %v; node1 FIB:\n%s",
		first.Round(time.Millisecond), r.Done.Round(time.Millisecond), sample)
	return append(result{
		{"converge", "s", seconds(r.Done), false},
		{"daemons", "s", seconds(r.Done - first), false},
		{"setup", "s", seconds(first), true},
	}, use.metrics()...)
}

// harnessRun runs a command on the host and returns its output, failing b.
func harnessRun(b *testing.B, name string, args ...string) string {
	b.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
