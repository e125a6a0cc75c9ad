package e2e

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/petrel-net/petrel/e2e/harness"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// explain runs `petrel explain -o json` on node p and returns the answer
// and the exit status.
func explain(t *testing.T, p *petrelNode, target string) (*petrelpb.ExplainResponse, int) {
	t.Helper()
	out, err := p.Run(petrelBin, "explain", target, "-o", "json", "--socket", p.socket)
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("explain %s on %s: %v", target, p.Name, err)
	}
	resp := &petrelpb.ExplainResponse{}
	if err := protojson.Unmarshal([]byte(out), resp); err != nil {
		t.Fatalf("explain %s on %s: exit %d, %v\n%s", target, p.Name, code, err, out)
	}
	return resp, code
}

// explainUntil retries explain until check passes (routes take a moment to
// travel), failing with the last answer.
func explainUntil(t *testing.T, p *petrelNode, target string, wantCode int, check func(*petrelpb.ExplainResponse) error) *petrelpb.ExplainResponse {
	t.Helper()
	var last *petrelpb.ExplainResponse
	harness.Eventually(t, 20*time.Second, 250*time.Millisecond, func() error {
		resp, code := explain(t, p, target)
		last = resp
		if code != wantCode {
			return fmt.Errorf("exit %d, want %d: %v", code, wantCode, resp.Summary)
		}
		return check(resp)
	}, "explain %s on %s", target, p.Name)
	return last
}

// TestExplain asks `petrel explain` about each kind of prefix on an etcd
// cluster of three nodes and an eBGP BIRD ToR: node1's own IPAM block
// (originated, blackhole, exported; rejected towards the ToR by a
// BGPFilter rule), the same block on node2 (learned, installed), a block
// two nodes announce (ECMP), a block a foreign kernel route holds, and
// prefixes nobody knows; then the FIB view, dry-runs of a BGPPeer and a
// BGPFilter checked against what applying them does, and the convergence
// metrics after a daemon restart.
func TestExplain(t *testing.T) {
	c := newClusterLab(t, 3, seedPool)
	n1, n2 := c.nodes[0], c.nodes[1]
	const own, ecmp, held = "192.168.50.0/26", "192.168.60.0/26", "192.168.70.0/26"
	// The foreign route is there first: kernel sync must not override it.
	n1.MustRun(t, "ip", "route", "add", held, "dev", "eth1", "proto", "kernel")
	c.petrel(t, "ipam", "allocate", "--handle", "explain-test", "--node", "node1", "--ip", "192.168.50.5")
	for _, n := range c.nodes[1:] {
		n.MustRun(t, "ip", "route", "add", "blackhole", ecmp, "proto", "static")
	}
	c.nodes[2].MustRun(t, "ip", "route", "add", "blackhole", held, "proto", "static")

	t.Run("local block", func(t *testing.T) {
		explainUntil(t, n1, own, 0, func(r *petrelpb.ExplainResponse) error {
			o := r.Origin
			if o.Block != own || o.Affinity != "node1" || o.Pool != "default-ipv4-ippool" || !strings.Contains(strings.Join(o.Sources, ","), "originate") {
				return fmt.Errorf("origin %v", o)
			}
			if r.Fib.GetOwner() != "kernel sync (block blackhole)" || !r.Fib.Installed {
				return fmt.Errorf("kernel %v", r.Fib)
			}
			if len(r.Exports) != 2 {
				return fmt.Errorf("exports %v", r.Exports)
			}
			for _, e := range r.Exports {
				if !e.Exported || !strings.Contains(e.Rule, "originated") {
					return fmt.Errorf("export %v", e)
				}
			}
			return nil
		})
	})
	t.Run("remote block, by address", func(t *testing.T) {
		explainUntil(t, n2, "192.168.50.5", 0, func(r *petrelpb.ExplainResponse) error {
			if r.Prefix != own || len(r.Paths) != 1 || r.Paths[0].Peer != "10.0.0.1" || r.Origin.Affinity != "node1" {
				return fmt.Errorf("prefix %s paths %v origin %v", r.Prefix, r.Paths, r.Origin)
			}
			if f := r.Fib; f.GetOwner() != "kernel sync" || len(f.NextHops) != 1 || f.NextHops[0].Gateway != "10.0.0.1" {
				return fmt.Errorf("kernel %v", f)
			}
			return nil
		})
	})
	t.Run("ECMP", func(t *testing.T) {
		explainUntil(t, n1, ecmp, 0, func(r *petrelpb.ExplainResponse) error {
			if len(r.Paths) != 2 || len(r.Fib.GetNextHops()) != 2 {
				return fmt.Errorf("paths %v, kernel %v", r.Paths, r.Fib)
			}
			return nil
		})
	})
	t.Run("foreign route holds the prefix", func(t *testing.T) {
		explainUntil(t, n1, held, 1, func(r *petrelpb.ExplainResponse) error {
			if f := r.Fib; f.Installed || !f.Wanted || !strings.Contains(f.Reason, "foreign route (protocol kernel") || f.Owner != "foreign (protocol kernel)" {
				return fmt.Errorf("kernel %v", f)
			}
			return nil
		})
	})
	t.Run("unknown", func(t *testing.T) {
		for _, target := range []string{"10.99.0.0/24", "172.31.9.9"} {
			if r, code := explain(t, n1, target); code != 2 || r.Verdict != petrelpb.ExplainResponse_UNKNOWN {
				t.Errorf("%s: exit %d, %v", target, code, r)
			}
		}
	})
	t.Run("rejected by a BGPFilter rule", func(t *testing.T) {
		tor := c.lab.Node("tor")
		c.lab.Attach(c.hub, "br0", tor, "eth1", "10.0.0.200/24")
		c.bird = harness.StartBird(t, tor, birdConfig("10.0.0.200", 65001, nil, map[string]string{"node1": "10.0.0.1 as 64512"}))
		c.apply(t, `apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: edge}
spec:
  exportV4:
  - {action: Accept, matchOperator: Equal, cidr: 192.168.60.0/26}
  - {action: Reject, matchOperator: In, cidr: 192.168.48.0/20}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor-node1}
spec: {node: node1, peerIP: 10.0.0.200, asNumber: 65001, filters: [edge]}
`)
		established(t, "bird", c.bird.ProtocolState, "node1")
		want := `BGPFilter "edge": spec.exportV4[1] (Reject)`
		explainUntil(t, n1, own, 1, func(r *petrelpb.ExplainResponse) error {
			for _, e := range r.Exports {
				if e.Peer == "10.0.0.200" && !e.Exported && e.Rule == want && e.Ebgp {
					return nil
				}
			}
			return fmt.Errorf("no export to the ToR rejected by %s: %v", want, r.Exports)
		})
		// What explain says is what BIRD sees.
		rs, err := c.bird.RoutesFrom("node1")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := rs[own]; ok {
			t.Errorf("BIRD has %s from node1, the filter should keep it home", own)
		}
	})
	t.Run("FIB view", func(t *testing.T) {
		fibView := func(args ...string) map[string]*petrelpb.FIBRoute {
			t.Helper()
			out := n1.MustRun(t, append([]string{petrelBin, "routes", "--fib", "-o", "json", "--socket", n1.socket}, args...)...)
			resp := &petrelpb.ListFIBResponse{}
			if err := protojson.Unmarshal([]byte(out), resp); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			m := map[string]*petrelpb.FIBRoute{}
			for _, r := range resp.Routes {
				m[r.Prefix] = r
			}
			return m
		}
		all := fibView()
		if r := all[own]; r == nil || !r.Installed || r.Owner != "kernel sync (block blackhole)" || len(r.Peers) != 0 {
			t.Errorf("own block: %v", r)
		}
		if r := all[ecmp]; r == nil || !r.Installed || strings.Join(r.Peers, ",") != "10.0.0.2,10.0.0.3" || len(r.NextHops) != 2 {
			t.Errorf("ECMP block: %v", r)
		}
		if r := all[held]; r == nil || r.Installed || !strings.Contains(r.Reason, "foreign route") {
			t.Errorf("held block: %v", r)
		}
		fromN2 := fibView("--peer", "10.0.0.2")
		if _, ok := fromN2[held]; ok || fromN2[ecmp] == nil {
			t.Errorf("--peer 10.0.0.2: %v", fromN2)
		}
		if within := fibView("--within", "192.168.64.0/20"); len(within) != 1 || within[held] == nil {
			t.Errorf("--within: %v", within)
		}
		out := n1.MustRun(t, petrelBin, "routes", "--fib", "--socket", n1.socket)
		t.Logf("petrel routes --fib\n%s", out)
		if y := n1.MustRun(t, petrelBin, "routes", "--fib", "-o", "yaml", "--peer", "10.0.0.3", "--socket", n1.socket); !strings.Contains(y, "prefix: 192.168.70.0/26") {
			t.Errorf("yaml:\n%s", y)
		}
	})
	t.Run("dry-run", func(t *testing.T) { checkDryRun(t, c) })
	t.Run("convergence after a restart", func(t *testing.T) { checkConvergenceAfterRestart(t, n2) })
	t.Run("table output", func(t *testing.T) {
		for _, target := range []string{own, held, "192.168.60.9"} {
			out, _ := n1.Run(petrelBin, "explain", target, "--socket", n1.socket)
			if !strings.Contains(out, "origin:") || !strings.Contains(out, "kernel:") {
				t.Errorf("explain %s:\n%s", target, out)
			}
			t.Logf("petrel explain %s\n%s", target, out)
		}
	})
	t.Run("dry-run of turning the mesh off", func(t *testing.T) { checkDryRunMeshOff(t, c) })
}

// checkDryRunMeshOff: a BGPConfiguration that turns the mesh off removes
// exactly the sessions dry-run names.
func checkDryRunMeshOff(t *testing.T, c *clusterLab) {
	off := writeTemp(t, c, "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n")
	out := c.petrel(t, "apply", "--dry-run", "-f", off)
	t.Logf("petrel apply --dry-run (BGPConfiguration)\n%s", out)
	want := map[int][]string{}
	for i, n := range c.nodes {
		have := peerAddrs(t, n)
		for _, a := range have {
			if slices.Contains(others(i+1, 1, 2, 3), a) {
				// a mesh peer: dry-run must name its removal
				name := "Mesh_" + strings.ReplaceAll(a, ".", "_")
				if line := fmt.Sprintf("session removed            %s (%s, node-to-node mesh)", a, name); !strings.Contains(out, line) {
					t.Errorf("%s: dry-run lacks %q", n.Name, line)
				}
				continue
			}
			want[i] = append(want[i], a)
		}
	}
	stops := exportStops(out, "node1")
	if len(stops) == 0 {
		t.Error("dry-run names no prefix node1 stops sending the ToR")
	}
	c.petrel(t, "apply", "-f", off)
	harness.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		for i, n := range c.nodes {
			if got := peerAddrs(t, n); !sameSet(got, want[i]) {
				return fmt.Errorf("%s: peers %v, want %v", n.Name, got, want[i])
			}
		}
		rs, err := c.bird.RoutesFrom("node1")
		if err != nil {
			return err
		}
		for _, p := range stops {
			if _, ok := rs[p]; ok {
				return fmt.Errorf("the ToR still has %s from node1", p)
			}
		}
		return nil
	}, "sessions and exports as dry-run said")
}

// exportStops reads the prefixes a dry-run says node stops exporting.
func exportStops(out, node string) []string {
	var stops []string
	in := false
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, " ") {
			in = strings.HasPrefix(line, node+":")
			continue
		}
		if f := strings.Fields(line); in && len(f) > 2 && f[0] == "export" && f[1] == "stops" {
			stops = append(stops, f[2])
		}
	}
	return stops
}

// metricValue reads one sample of the node's /metrics ("name{labels}").
func metricValue(p *petrelNode, sample string) (float64, error) {
	out, err := p.Run("curl", "-sf", "http://127.0.0.1:9095/metrics")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			_, err := fmt.Sscan(rest, &v)
			return v, err
		}
	}
	return 0, fmt.Errorf("no sample %s", sample)
}

// checkConvergenceAfterRestart kills node2's daemon and starts it again:
// every peer's convergence (session up -> End-of-RIB -> FIB) is measured
// and logged, and graceful restart removed nothing from the FIB.
func checkConvergenceAfterRestart(t *testing.T, p *petrelNode) {
	p.proc.Kill()
	p.start()
	var toEoR, toFIB float64
	harness.Eventually(t, 30*time.Second, 250*time.Millisecond, func() error {
		var err error
		if toEoR, err = metricValue(p, `petrel_bgp_peer_convergence_seconds{peer="10.0.0.1",phase="end_of_rib"}`); err != nil {
			return err
		}
		toFIB, err = metricValue(p, `petrel_bgp_peer_convergence_seconds{peer="10.0.0.1",phase="fib"}`)
		return err
	}, "convergence metrics on %s", p.Name)
	if toEoR < 0 || toFIB < toEoR || toFIB > 30 {
		t.Errorf("implausible convergence: End-of-RIB after %.3fs, FIB after %.3fs", toEoR, toFIB)
	}
	if v, err := metricValue(p, "petrel_graceful_restart_fib_removals_total"); err != nil || v != 0 {
		t.Errorf("routes removed from the FIB during graceful restart: %v %v", v, err)
	}
	// The routes adopted at start needed no write: the FIB's last change
	// may be 0 (none since start); the RIB's is the peers' updates.
	if at, err := metricValue(p, "petrel_rib_last_change_timestamp_seconds"); err != nil || at == 0 {
		t.Errorf("RIB last change: %v %v", at, err)
	}
	if _, err := metricValue(p, "petrel_fib_last_change_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(p.proc.Log(), "peer converged") {
		t.Error("no log line at convergence")
	}
	t.Logf("node2 after a restart: session up -> End-of-RIB %.3fs -> FIB %.3fs", toEoR, toFIB)
}

// peerAddrs lists the peers a node has configured, in any state.
func peerAddrs(t *testing.T, p *petrelNode) []string {
	t.Helper()
	resp, err := withClient(p, func(cl *clientT) (*petrelpb.ListPeersResponse, error) {
		return cl.ListPeers(bg(), &petrelpb.ListPeersRequest{})
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, peer := range resp.Peers {
		out = append(out, peer.Address)
	}
	return out
}

// checkDryRun: `apply --dry-run` of a BGPPeer and of a BGPFilter change
// says what then happens when they are applied, and writes nothing.
func checkDryRun(t *testing.T, c *clusterLab) {
	before := map[int][]string{}
	for i, n := range c.nodes {
		before[i] = peerAddrs(t, n)
	}
	peer := writeTemp(t, c, "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor-node2}\nspec: {node: node2, peerIP: 10.0.0.200, asNumber: 65001}\n")
	out := c.petrel(t, "apply", "--dry-run", "-f", peer)
	t.Logf("petrel apply --dry-run (BGPPeer)\n%s", out)
	for _, want := range []string{"node1: no change", "node2:\n  session added              10.0.0.200 (Node_10_0_0_200, node specific)", "node3: no change"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q", want)
		}
	}
	if _, err := c.petrelErr("get", "bgppeer", "tor-node2"); err == nil {
		t.Fatal("dry-run wrote the BGPPeer")
	}
	c.petrel(t, "apply", "-f", peer)
	harness.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		for i, n := range c.nodes {
			want := before[i]
			if i == 1 {
				want = append(slices.Clone(want), "10.0.0.200")
			}
			if got := peerAddrs(t, n); !sameSet(got, want) {
				return fmt.Errorf("%s: peers %v, want %v", n.Name, got, want)
			}
		}
		return nil
	}, "sessions as dry-run said")

	filter := writeTemp(t, c, `apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: edge}
spec:
  exportV4:
  - {action: Accept, matchOperator: In, cidr: 192.168.48.0/20}
`)
	out = c.petrel(t, "apply", "--dry-run", "-f", filter)
	t.Logf("petrel apply --dry-run (BGPFilter)\n%s", out)
	if want := "export starts              192.168.50.0/26 -> 10.0.0.200 (Node_10_0_0_200): leak-proof: originated by this node"; !strings.Contains(out, want) {
		t.Errorf("dry-run output lacks %q", want)
	}
	c.petrel(t, "apply", "-f", filter)
	harness.Eventually(t, 15*time.Second, 200*time.Millisecond, func() error {
		rs, err := c.bird.RoutesFrom("node1")
		if err != nil {
			return err
		}
		if _, ok := rs["192.168.50.0/26"]; !ok {
			return fmt.Errorf("BIRD has no 192.168.50.0/26 from node1: %v", rs)
		}
		return nil
	}, "export started as dry-run said")
}
