package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/cli"
	"github.com/petrel-net/petrel/e2e/harness"
)

// benchAS is the one AS of every lab: all sessions are iBGP, as between
// calico nodes and their top-of-rack router.
const benchAS = 64512

// nodeSpec is what a node daemon (any contender) is configured with.
type nodeSpec struct {
	RouterID string
	Peers    []string // iBGP neighbors, all of one family
	// Export lists the ranges inside which routes learned from the kernel
	// are advertised to the peers.
	Export []netip.Prefix
	// LearnKernel makes BIRD import kernel routes into its table, as
	// calico-node's `protocol kernel { learn; import all; }` does. (petrel
	// learns kernel routes by default.) Off for pure ingest, where the
	// kernel protocol should only program routes.
	LearnKernel bool
	// ClusterID, when set, makes the node a route reflector with every
	// peer as its client, in this cluster (an IPv4-style id), as calico
	// configures a node with routeReflectorClusterID. A reflector keeps the
	// clients' next hops (no `next hop self`).
	ClusterID string
}

// torBirdConfig is a BIRD top-of-rack router that advertises static
// blackhole routes to its neighbors over iBGP. It is passive so that the
// node daemon under test opens the session: the time to get going is then
// the node's own, not the tor's retry timer. Routes and sessions are of
// the neighbors' family (birdChannel).
func torBirdConfig(routerID string, neighbors []string, static []netip.Prefix) string {
	var b strings.Builder
	b.Grow(len(static)*34 + 1024)
	channel := birdChannel(neighbors)
	fmt.Fprintf(&b, "router id %s;\nprotocol device { scan time 10; }\n", routerID)
	if len(static) > 0 {
		b.WriteString("protocol static bench_routes {\n  " + channel + ";\n")
		for _, p := range static {
			b.WriteString("  route ")
			b.WriteString(p.String())
			b.WriteString(" blackhole;\n")
		}
		b.WriteString("}\n")
	}
	for i, n := range neighbors {
		fmt.Fprintf(&b, "protocol bgp node%d {\n  local as %d;\n  neighbor %s as %d;\n  passive on;\n"+
			"  %s { import none; export all; next hop self; };\n}\n", i, benchAS, n, benchAS, channel)
	}
	return b.String()
}

// birdChannel is BIRD's channel for sessions with peers: "ipv6" when the
// first is an IPv6 address, else "ipv4". A benchmark's lab is of one
// family.
func birdChannel(peers []string) string {
	if len(peers) > 0 && strings.Contains(peers[0], ":") {
		return "ipv6"
	}
	return "ipv4"
}

// birdNodeConfig is BIRD as calico-node runs it (its bird.cfg template):
// kernel and device scans every 2 s, routes programmed with protocol 12,
// workload interfaces (cali*) excluded from protocol direct, iBGP with
// recursive next-hop resolution through the link routes protocol direct
// provides, and calico's BGP timers (connect delay 2 s, connect retry 5 s,
// error wait 5-30 s) — petrel's GoBGP waits a random 1-2 s before its first
// connect, so both contenders pay their real start-up delay. Channels are
// of the peers' family (birdChannel), as in confd's bird6.cfg for IPv6.
func birdNodeConfig(s nodeSpec) string {
	var b strings.Builder
	channel := birdChannel(s.Peers)
	fmt.Fprintf(&b, "router id %s;\n", s.RouterID)
	fmt.Fprintf(&b, `protocol device { scan time 2; }
protocol direct { %s; interface -"cali*", "*"; }
`, channel)
	kernelImport := "none"
	if s.LearnKernel {
		kernelImport = "all"
	}
	fmt.Fprintf(&b, `protocol kernel {
  learn; persist; scan time 2; graceful restart; merge paths on;
  %s { import %s; export all; };
}
`, channel, kernelImport)
	b.WriteString("filter bench_export {\n")
	if len(s.Export) > 0 {
		ranges := make([]string, len(s.Export))
		for i, p := range s.Export {
			ranges[i] = p.String() + "+"
		}
		fmt.Fprintf(&b, "  if net ~ [ %s ] then accept;\n", strings.Join(ranges, ", "))
	}
	b.WriteString("  reject;\n}\n")
	reflect, nextHop := "", " next hop self;"
	if s.ClusterID != "" {
		reflect, nextHop = fmt.Sprintf("  rr client;\n  rr cluster id %s;\n", s.ClusterID), ""
	}
	for i, p := range s.Peers {
		fmt.Fprintf(&b, `protocol bgp peer%d {
  local as %d;
  neighbor %s as %d;
%s  connect delay time 2;
  connect retry time 5;
  error wait time 5, 30;
  graceful restart;
  %s { import all; export filter bench_export;%s gateway recursive; add paths on; };
}
`, i, benchAS, p, benchAS, reflect, channel, nextHop)
	}
	return b.String()
}

// petrelConfig is petrel's standalone config: the defaults (kernel sync
// with protocol 12 into the main table) plus the peers, and `export` only
// when ranges are given so that the plain config keeps working with a
// petrel that does not know the key.
func petrelConfig(name string, s nodeSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "nodeName: %s\nrouterID: %s\nasNumber: %d\nlogLevel: info\npeers:\n", name, s.RouterID, benchAS)
	for _, p := range s.Peers {
		fmt.Fprintf(&b, "  - address: %s\n    asNumber: %d\n", p, benchAS)
	}
	if len(s.Export) > 0 {
		ranges := make([]string, len(s.Export))
		for i, p := range s.Export {
			ranges[i] = p.String()
		}
		fmt.Fprintf(&b, "export: [%s]\n", strings.Join(ranges, ", "))
	}
	return b.String()
}

// kernelProto is the route protocol number a contender's node installs
// its BGP routes with: 12 (RTPROT_BIRD) for BIRD as calico-node configures
// it and for petrel by default; FRR's zebra uses RTPROT_BGP (186).
func kernelProto(kind string) uint8 {
	if kind == "frr" {
		return protoZebraBGP
	}
	return protoBird
}

// nodeDaemon is a contender's daemon running in a lab node.
type nodeDaemon struct {
	Kind string // "bird", "frr" or "petrel"
	// Procs are the processes whose CPU and memory are the contender's:
	// the daemon itself, or FRR's zebra and bgpd (staticd, which has
	// nothing to do in a benchmark, is left out).
	Procs  []*harness.Process
	Bird   *harness.Bird // BIRD only
	FRR    *harness.FRR  // FRR only
	Socket string        // petrel only: its API socket
}

// Pid is the pid of the daemon's first process (see requireComm).
func (d *nodeDaemon) Pid() int { return d.Procs[0].Cmd.Process.Pid }

// Comm is the command name the daemon's first process must have.
func (d *nodeDaemon) Comm() string { return d.Procs[0].Name }

// Alive returns an error with a process's log tail once one has exited.
func (d *nodeDaemon) Alive() error {
	for _, p := range d.Procs {
		if p.Exited() {
			return fmt.Errorf("%s (%s) exited; log:\n%s", d.Kind, p.Name, logTail(p.Log(), 30))
		}
	}
	return nil
}

// requireComm checks that every measured pid runs the daemon it names
// (see the package-level requireComm).
func (d *nodeDaemon) requireComm(b *testing.B) {
	b.Helper()
	for _, p := range d.Procs {
		requireComm(b, p.Cmd.Process.Pid, p.Name)
	}
}

// CPU is the user+system time the daemon's processes have used so far.
func (d *nodeDaemon) CPU() (time.Duration, error) {
	var sum time.Duration
	for _, p := range d.Procs {
		cpu, err := procCPU(p.Cmd.Process.Pid)
		if err != nil {
			return 0, err
		}
		sum += cpu
	}
	return sum, nil
}

// Memory sums a /proc/PID/status figure ("VmHWM", "VmRSS") over the
// daemon's processes.
func (d *nodeDaemon) Memory(field string) (uint64, error) {
	var sum uint64
	for _, p := range d.Procs {
		n, err := procStatusBytes(p.Cmd.Process.Pid, field)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// peakRSS is the daemon's VmHWM (summed over its processes), after
// checking that the pids are the daemon's own.
func (d *nodeDaemon) peakRSS(b *testing.B) uint64 {
	b.Helper()
	d.requireComm(b)
	hwm, err := d.Memory("VmHWM")
	if err != nil {
		b.Fatal(err)
	}
	return hwm
}

// startNode starts kind's daemon in n configured by s and returns as soon as
// it runs: BIRD once birdc answers (harness.StartBird), FRR once bgpd
// answers vtysh (harness.StartFRR), petrel right away. Use waitPetrelAPI to
// wait for petrel's readiness where it matters.
func startNode(b *testing.B, lab *harness.Lab, n *harness.Node, kind string, s nodeSpec) *nodeDaemon {
	b.Helper()
	skipUnsupported(b, kind, s)
	switch kind {
	case "bird":
		bd := harness.StartBird(b, n, birdNodeConfig(s))
		return &nodeDaemon{Kind: kind, Procs: []*harness.Process{bd.Proc}, Bird: bd}
	case "frr":
		f := harness.StartFRR(b, n, frrNodeConfig(n.Name, s))
		d := &nodeDaemon{Kind: kind, FRR: f}
		for _, p := range f.Procs {
			if p.Name != "staticd" {
				d.Procs = append(d.Procs, p)
			}
		}
		return d
	case "petrel":
		cfg := filepath.Join(lab.Dir(), n.Name+".yaml")
		if err := os.WriteFile(cfg, []byte(petrelConfig(n.Name, s)), 0o644); err != nil {
			b.Fatal(err)
		}
		sock := filepath.Join(lab.Dir(), n.Name+".sock")
		p := n.Start(b, "petrel", petrelBin, "daemon", "--config", cfg, "--socket", sock)
		return &nodeDaemon{Kind: kind, Procs: []*harness.Process{p}, Socket: sock}
	}
	b.Fatalf("unknown contender %q", kind)
	return nil
}

// skipUnsupported skips b if kind cannot be configured as s asks.
func skipUnsupported(b *testing.B, kind string, s nodeSpec) {
	if kind == "petrel" && s.ClusterID != "" {
		b.Skip(petrelNoReflector)
	}
	if kind == "frr" && birdChannel(s.Peers) == "ipv6" {
		b.Skip("frrNodeConfig configures IPv4 unicast only")
	}
}

// petrelNoReflector is why a standalone petrel cannot be a route
// reflector (BenchmarkMesh500 runs petrel in datastore mode instead).
const petrelNoReflector = "petrel's standalone config has no route-reflector keys: bgp.PeerConfig's " +
	"RouteReflectorClient/ClusterID are only set by mesh/ in datastore mode (a Node with " +
	"routeReflectorClusterID), and only daemon/datastore.go turns reflection on (Speaker.SetReflect)"

// waitPetrelAPI waits until petrel's API socket answers, or returns the
// daemon's log if it exits first (a config it rejects, say).
func waitPetrelAPI(d *nodeDaemon, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := d.Alive(); err != nil {
			return err
		}
		if c, err := cli.Dial(context.Background(), d.Socket); err == nil {
			c.Close()
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("petrel API not up after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitBirdRoutes waits until BIRD's tables hold at least want routes in
// all (`show route count`), e.g. until a tor has loaded its static routes.
func waitBirdRoutes(b *testing.B, bd *harness.Bird, want int, timeout time.Duration) {
	b.Helper()
	harness.Eventually(b, timeout, 100*time.Millisecond, func() error {
		out, err := bd.Cmd("show", "route", "count")
		if err != nil {
			return err
		}
		n, err := birdRouteCount(out)
		if err != nil {
			return err
		}
		if n < want {
			return fmt.Errorf("%d of %d routes", n, want)
		}
		return nil
	}, "BIRD on %s has %d routes", bd.Node.Name, want)
}

// birdRouteCount sums the per-table lines of `show route count`:
//
//	0 of 0 routes for 0 networks in table master4
//	100000 of 100000 routes for 100000 networks in table master6
//	Total: 100000 of 100000 routes for 100000 networks in 2 tables
func birdRouteCount(out string) (int, error) {
	sum, tables := 0, 0
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.Contains(line, " in table ") {
			continue
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			return 0, fmt.Errorf("unexpected output %q", out)
		}
		sum += n
		tables++
	}
	if tables == 0 {
		return 0, fmt.Errorf("unexpected output %q", out)
	}
	return sum, nil
}

// waitEstablished waits until BIRD's BGP protocol name is Established.
func waitEstablished(b *testing.B, bd *harness.Bird, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		state, err := bd.ProtocolState(name)
		if err == nil && state == "Established" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("BGP %s on %s not Established after %v: state %q, err %v", name, bd.Node.Name, timeout, state, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func logTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
