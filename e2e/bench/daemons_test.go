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

// nodeSpec is what a node daemon (either contender) is configured with.
type nodeSpec struct {
	RouterID string
	Peers    []string // iBGP neighbors
	// Export lists the ranges inside which routes learned from the kernel
	// are advertised to the peers.
	Export []netip.Prefix
	// LearnKernel makes BIRD import kernel routes into its table, as
	// calico-node's `protocol kernel { learn; import all; }` does. (petrel
	// learns kernel routes by default.) Off for pure ingest, where the
	// kernel protocol should only program routes.
	LearnKernel bool
}

// torBirdConfig is a BIRD top-of-rack router that advertises static
// blackhole routes to its neighbors over iBGP. It is passive so that the
// node daemon under test opens the session: the time to get going is then
// the node's own, not the tor's retry timer.
func torBirdConfig(routerID string, neighbors []string, static []netip.Prefix) string {
	var b strings.Builder
	b.Grow(len(static)*34 + 1024)
	fmt.Fprintf(&b, "router id %s;\nprotocol device { scan time 10; }\n", routerID)
	if len(static) > 0 {
		b.WriteString("protocol static bench_routes {\n  ipv4;\n")
		for _, p := range static {
			b.WriteString("  route ")
			b.WriteString(p.String())
			b.WriteString(" blackhole;\n")
		}
		b.WriteString("}\n")
	}
	for i, n := range neighbors {
		fmt.Fprintf(&b, "protocol bgp node%d {\n  local as %d;\n  neighbor %s as %d;\n  passive on;\n"+
			"  ipv4 { import none; export all; next hop self; };\n}\n", i, benchAS, n, benchAS)
	}
	return b.String()
}

// birdNodeConfig is BIRD as calico-node runs it (its bird.cfg template):
// kernel and device scans every 2 s, routes programmed with protocol 12,
// workload interfaces (cali*) excluded from protocol direct, iBGP with
// recursive next-hop resolution through the link routes protocol direct
// provides, and calico's BGP timers (connect delay 2 s, connect retry 5 s,
// error wait 5-30 s) — petrel's GoBGP waits a random 1-2 s before its first
// connect, so both contenders pay their real start-up delay.
func birdNodeConfig(s nodeSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "router id %s;\n", s.RouterID)
	b.WriteString(`protocol device { scan time 2; }
protocol direct { ipv4; interface -"cali*", "*"; }
`)
	kernelImport := "none"
	if s.LearnKernel {
		kernelImport = "all"
	}
	fmt.Fprintf(&b, `protocol kernel {
  learn; persist; scan time 2; graceful restart; merge paths on;
  ipv4 { import %s; export all; };
}
`, kernelImport)
	b.WriteString("filter bench_export {\n")
	if len(s.Export) > 0 {
		ranges := make([]string, len(s.Export))
		for i, p := range s.Export {
			ranges[i] = p.String() + "+"
		}
		fmt.Fprintf(&b, "  if net ~ [ %s ] then accept;\n", strings.Join(ranges, ", "))
	}
	b.WriteString("  reject;\n}\n")
	for i, p := range s.Peers {
		fmt.Fprintf(&b, `protocol bgp peer%d {
  local as %d;
  neighbor %s as %d;
  connect delay time 2;
  connect retry time 5;
  error wait time 5, 30;
  graceful restart;
  ipv4 { import all; export filter bench_export; next hop self; gateway recursive; add paths on; };
}
`, i, benchAS, p, benchAS)
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

// nodeDaemon is a contender's daemon running in a lab node.
type nodeDaemon struct {
	Kind   string // "bird" or "petrel"
	Proc   *harness.Process
	Bird   *harness.Bird // BIRD only
	Socket string        // petrel only: its API socket
}

// Pid is the daemon's own pid (see requireComm).
func (d *nodeDaemon) Pid() int { return d.Proc.Cmd.Process.Pid }

// Comm is the command name the daemon's process must have.
func (d *nodeDaemon) Comm() string { return d.Kind }

// Alive returns an error with the daemon's log tail once it has exited.
func (d *nodeDaemon) Alive() error {
	if d.Proc.Exited() {
		return fmt.Errorf("%s exited; log:\n%s", d.Kind, logTail(d.Proc.Log(), 30))
	}
	return nil
}

// startNode starts kind's daemon in n configured by s and returns as soon as
// it runs: BIRD once birdc answers (harness.StartBird), petrel right away.
// Use waitPetrelAPI to wait for petrel's readiness where it matters.
func startNode(b *testing.B, lab *harness.Lab, n *harness.Node, kind string, s nodeSpec) *nodeDaemon {
	b.Helper()
	switch kind {
	case "bird":
		bd := harness.StartBird(b, n, birdNodeConfig(s))
		return &nodeDaemon{Kind: kind, Proc: bd.Proc, Bird: bd}
	case "petrel":
		cfg := filepath.Join(lab.Dir(), n.Name+".yaml")
		if err := os.WriteFile(cfg, []byte(petrelConfig(n.Name, s)), 0o644); err != nil {
			b.Fatal(err)
		}
		sock := filepath.Join(lab.Dir(), n.Name+".sock")
		p := n.Start(b, "petrel", petrelBin, "daemon", "--config", cfg, "--socket", sock)
		return &nodeDaemon{Kind: kind, Proc: p, Socket: sock}
	}
	b.Fatalf("unknown contender %q", kind)
	return nil
}

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

// waitBirdRoutes waits until BIRD's master4 table holds at least want routes
// (`show route count`), e.g. until a tor has loaded its static routes.
func waitBirdRoutes(b *testing.B, bd *harness.Bird, want int, timeout time.Duration) {
	b.Helper()
	harness.Eventually(b, timeout, 100*time.Millisecond, func() error {
		out, err := bd.Cmd("show", "route", "count")
		if err != nil {
			return err
		}
		// "100000 of 100000 routes for 100000 networks in table master4"
		f := strings.Fields(out)
		if len(f) == 0 {
			return fmt.Errorf("unexpected output %q", out)
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			return fmt.Errorf("unexpected output %q", out)
		}
		if n < want {
			return fmt.Errorf("%d of %d routes", n, want)
		}
		return nil
	}, "BIRD on %s has %d routes", bd.Node.Name, want)
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
