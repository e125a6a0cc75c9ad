package harness

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/internal/netnsbuild"
)

// TestMain fails the run if any test leaked a namespace of this process:
// that is the harness's main promise, and it must hold for every test
// including failing ones.
func TestMain(m *testing.M) {
	code := m.Run()
	if os.Geteuid() == 0 {
		if leaked := ourNamespaces(""); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "harness: leaked namespaces: %v\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// ourNamespaces lists namespaces whose name starts with this process's
// prefix plus extra.
func ourNamespaces(extra string) []string {
	out, _ := exec.Command("ip", "netns", "list").Output()
	prefix := fmt.Sprintf("%s%d-%s", namePrefix, os.Getpid(), extra)
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			found = append(found, f[0])
		}
	}
	return found
}

func TestLinkPing(t *testing.T) {
	lab := New(t)
	a, b := lab.Node("a"), lab.Node("b")
	lab.Link(a, "eth1", "10.0.0.1/24", b, "eth1", "10.0.0.2/24")

	a.MustRun(t, "ping", "-c1", "-W1", "10.0.0.2")
	b.MustRun(t, "ping", "-c1", "-W1", "10.0.0.1")

	if got := strings.TrimSpace(a.MustRun(t, "sysctl", "-n", "net.ipv4.ip_forward")); got != "1" {
		t.Errorf("ip_forward in %s = %q, want 1", a.NS, got)
	}
	if _, err := a.Run("ping", "-c1", "-W1", "10.0.0.99"); err == nil {
		t.Error("ping to an absent address succeeded")
	}
}

func TestProcess(t *testing.T) {
	lab := New(t)
	n := lab.Node("p")
	lab.Link(n, "eth1", "10.0.0.1/24", lab.Node("q"), "eth1", "")

	// The process runs inside the namespace: it sees the node's link.
	p := n.Start(t, "sh", "sh", "-c", "ip -br link show eth1; echo ready; exec sleep 60")
	Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(p.Log(), "ready") {
			return fmt.Errorf("log so far: %q", p.Log())
		}
		return nil
	}, "sh writes its log")
	if !strings.Contains(p.Log(), "eth1") {
		t.Errorf("process does not see the node's eth1; log:\n%s", p.Log())
	}
	if p.Exited() {
		t.Fatal("sleep exited early")
	}
	if err := p.Stop(2 * time.Second); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if !p.Exited() {
		t.Error("not exited after Stop")
	}
	p.Kill() // idempotent

	// A process ignoring SIGTERM is killed after the timeout.
	stubborn := n.Start(t, "stubborn", "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done")
	Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(stubborn.Log(), "ready") {
			return fmt.Errorf("not ready")
		}
		return nil
	}, "stubborn starts")
	if err := stubborn.Stop(300 * time.Millisecond); err == nil {
		t.Error("Stop of a process ignoring SIGTERM returned nil")
	}
	if !stubborn.Exited() {
		t.Error("stubborn process survived Stop")
	}
}

// TestCleanup runs a Lab in a subtest, so that its cleanup has run when the
// subtest returns, and checks that nothing of it is left.
func TestCleanup(t *testing.T) {
	RequireRoot(t)
	var pids []int
	var ns []string
	t.Run("lab", func(t *testing.T) {
		lab := New(t)
		a, b := lab.Node("a"), lab.Node("b")
		lab.Link(a, "eth1", "10.0.0.1/24", b, "eth1", "10.0.0.2/24")
		pids = append(pids, a.Start(t, "sleep", "sleep", "60").Cmd.Process.Pid)
		// A process not started through the Lab must go too.
		out := b.MustRun(t, "sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!")
		pid, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
		ns = []string{a.NS, b.NS}
	})
	for _, name := range ns {
		if slices.Contains(ourNamespaces(""), name) {
			t.Errorf("namespace %s left behind", name)
		}
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d still alive", pid)
		}
	}
}

// alive reports whether pid runs. A killed orphan stays a zombie until init
// gets round to reaping it, which counts as dead here.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || !strings.HasPrefix(string(stat[i+1:]), " Z")
}

// TestSweepStale fakes the namespace of a test binary that died without
// cleanup, with a process still in it, and checks that New removes both.
func TestSweepStale(t *testing.T) {
	RequireRoot(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("%s%d-1-x", namePrefix, dead.Process.Pid)
	if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = netnsbuild.Delete(stale) }) // in case the sweep fails
	orphan := exec.Command("ip", "netns", "exec", stale, "sleep", "60")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	orphanDone := make(chan error, 1)
	go func() { orphanDone <- orphan.Wait() }()

	New(t)

	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), stale) {
		t.Errorf("stale namespace %s not swept", stale)
	}
	select {
	case <-orphanDone:
	case <-time.After(5 * time.Second):
		_ = orphan.Process.Kill()
		t.Error("process in stale namespace not killed")
	}
}

func TestBirdFRR(t *testing.T) {
	lab := New(t)
	birdNode, frrNode := lab.Node("bird"), lab.Node("frr")
	lab.Link(birdNode, "eth1", "10.0.0.1/24", frrNode, "eth1", "10.0.0.2/24")

	bird := StartBird(t, birdNode, birdConf("10.0.0.1", map[string]string{"frr": "10.0.0.2"}))
	frr := StartFRR(t, frrNode, `
frr defaults traditional
hostname frr
ip route 10.99.2.0/24 blackhole
router bgp 64512
 bgp router-id 10.0.0.2
 bgp log-neighbor-changes
 timers bgp 3 9
 neighbor 10.0.0.1 remote-as 64512
 neighbor 10.0.0.1 timers connect 1
 address-family ipv4 unicast
  network 10.99.2.0/24
 exit-address-family
`)

	Eventually(t, 15*time.Second, 200*time.Millisecond, func() error {
		return wantStates(bird.ProtocolState, "frr", frr.NeighborState, "10.0.0.1")
	}, "BIRD-FRR session established")
	Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		if err := wantRoute(bird.Routes, "10.99.2.0/24", "10.0.0.2"); err != nil {
			return fmt.Errorf("BIRD: %w", err)
		}
		if err := wantRoute(frr.Routes, "10.99.1.0/24", "10.0.0.1"); err != nil {
			return fmt.Errorf("FRR: %w", err)
		}
		return nil
	}, "prefixes exchanged")

	// The "session was not reset" checks: stable Since, growing uptime.
	since1, err := bird.ProtocolSince("frr")
	if err != nil {
		t.Fatal(err)
	}
	up1, err := frr.NeighborUptime("10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	since2, _ := bird.ProtocolSince("frr")
	up2, _ := frr.NeighborUptime("10.0.0.1")
	if since1 == "" || since1 != since2 {
		t.Errorf("BIRD Since changed without reset: %q -> %q", since1, since2)
	}
	if up2 <= up1 {
		t.Errorf("FRR uptime did not grow: %v -> %v", up1, up2)
	}
	nb, err := frr.NeighborJSON("10.0.0.1")
	if err != nil || nb["connectionsDropped"] != 0.0 {
		t.Errorf("FRR NeighborJSON: connectionsDropped = %v, err %v", nb["connectionsDropped"], err)
	}
	if _, err := frr.NeighborState("10.0.0.77"); err == nil {
		t.Error("FRR NeighborState of an unknown neighbor: no error")
	}
	if _, err := bird.ProtocolState("nosuch"); err == nil {
		t.Error("BIRD ProtocolState of an unknown protocol: no error")
	}

	// Stopping BIRD takes the session down on the FRR side.

	bird.Stop()
	Eventually(t, 15*time.Second, 200*time.Millisecond, func() error {
		if s, err := frr.NeighborState("10.0.0.1"); err != nil || s == "Established" {
			return fmt.Errorf("state %q, err %v", s, err)
		}
		return nil
	}, "FRR notices BIRD is gone")
}

func TestBirdGoBGPD(t *testing.T) {
	lab := New(t)
	birdNode, gobgpNode := lab.Node("bird"), lab.Node("gobgp")
	lab.Link(birdNode, "eth1", "10.0.1.1/24", gobgpNode, "eth1", "10.0.1.2/24")

	bird := StartBird(t, birdNode, birdConf("10.0.1.1", map[string]string{"gobgp": "10.0.1.2"}))
	gobgp := StartGoBGPD(t, gobgpNode, `
[global.config]
  as = 64512
  router-id = "10.0.1.2"

[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.0.1.1"
    peer-as = 64512
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
`)
	if out, err := gobgp.CLI("global", "rib", "add", "10.99.3.0/24", "-a", "ipv4"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	Eventually(t, 15*time.Second, 200*time.Millisecond, func() error {
		return wantStates(bird.ProtocolState, "gobgp", gobgp.NeighborState, "10.0.1.1")
	}, "BIRD-gobgpd session established")
	Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		if err := wantRoute(bird.Routes, "10.99.3.0/24", "10.0.1.2"); err != nil {
			return fmt.Errorf("BIRD: %w", err)
		}
		if err := wantRoute(gobgp.Routes, "10.99.1.0/24", "10.0.1.1"); err != nil {
			return fmt.Errorf("gobgpd: %w", err)
		}
		return nil
	}, "prefixes exchanged")

	routes, err := gobgp.Routes()
	if err != nil {
		t.Fatal(err)
	}
	if hops, ok := routes["10.99.3.0/24"]; !ok || len(hops) != 0 {
		t.Errorf("gobgpd's own prefix: next hops %v (present %v), want none", hops, ok)
	}
	if up, err := gobgp.NeighborUptime("10.0.1.1"); err != nil || up < 0 || up > time.Minute {
		t.Errorf("gobgpd NeighborUptime = %v, %v", up, err)
	}
}

// birdConf is a BIRD 2 config for an iBGP speaker in AS 64512 that exports
// the static blackhole 10.99.1.0/24 to each of peers (protocol name ->
// neighbor address). protocol direct puts the links into the table, which
// BIRD needs to resolve the iBGP next hops it receives; without it they show
// as unreachable.
func birdConf(routerID string, peers map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `log stderr all;
router id %s;
protocol device { scan time 1; }
protocol direct { ipv4; interface "eth*"; }
protocol static { ipv4; route 10.99.1.0/24 blackhole; }
`, routerID)
	for name, addr := range peers {
		fmt.Fprintf(&b, `protocol bgp %s {
  local as 64512;
  neighbor %s as 64512;
  connect retry time 1;
  connect delay time 1;
  error wait time 1, 5;
  hold time 9;
  ipv4 { import all; export all; };
}
`, name, addr)
	}
	return b.String()
}

// wantStates checks that both ends of a session report Established.
func wantStates(birdState func(string) (string, error), proto string, peerState func(string) (string, error), peerAddr string) error {
	bs, err := birdState(proto)
	if err != nil {
		return err
	}
	ps, err := peerState(peerAddr)
	if err != nil {
		return err
	}
	if bs != "Established" || ps != "Established" {
		return fmt.Errorf("BIRD %q, peer %q", bs, ps)
	}
	return nil
}

// wantRoute checks that routes has prefix via nextHop.
func wantRoute(routes func() (map[string][]string, error), prefix, nextHop string) error {
	r, err := routes()
	if err != nil {
		return err
	}
	if !slices.Contains(r[prefix], nextHop) {
		return fmt.Errorf("%s via %s not in %v", prefix, nextHop, r)
	}
	return nil
}
