package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// The BFD and LLGR tests: petrel at .1 of a /24 per peer, the peer at .2
// in AS 65001 (eBGP: BIRD runs single-hop BFD only for direct sessions),
// advertising 10.94.0.0/24, whose 10.94.0.1 every peer answers on lo.
const (
	bfdPrefix = "10.94.0.0/24"
	bfdTarget = "10.94.0.1"
	pingFrom  = "10.93.0.1" // on petrel's lo: pings hash on it, peers route it back
	fastBFD   = "bfd: {minimumRecvInterval: 100ms, minimumSendInterval: 100ms}"
)

// bfdBird is BIRD in AS 65001 with fast BFD toward petrel at net.1; extra
// goes into its protocol bgp.
func bfdBird(t *testing.T, n *harness.Node, net, extra string) *harness.Bird {
	return bfdBirdMode(t, n, net, extra, "bfd on;")
}

// bfdBirdMode is bfdBird with BIRD's BFD mode for the session ("bfd on;",
// "bfd graceful;").
func bfdBirdMode(t *testing.T, n *harness.Node, net, extra, mode string) *harness.Bird {
	return harness.StartBird(t, n, fmt.Sprintf(`log stderr all;
router id %[1]s.2;
protocol device { scan time 1; }
protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
protocol static { ipv4; route %[2]s blackhole; }
protocol bgp petrel {
  local as 65001;
  neighbor %[1]s.1 as 64512;
  connect retry time 1; connect delay time 1; error wait time 1, 5;
  hold time 30;
  %[4]s
  %[3]s
  ipv4 { import all; export all; };
}
`, net, bfdPrefix, extra, mode))
}

// bfdFRR is FRR in AS 65001 with bfdd; bfd false leaves BFD off and sets
// a 3 s hold time instead.
func bfdFRR(t *testing.T, n *harness.Node, net string, bfd bool) *harness.FRR {
	timers, nb := "timers bgp 10 30", fmt.Sprintf(" neighbor %s.1 bfd profile fast\n", net)
	if !bfd {
		timers, nb = "timers bgp 1 3", ""
	}
	return harness.StartFRR(t, n, fmt.Sprintf(`frr defaults traditional
hostname frr
ip route %[2]s blackhole
!
router bgp 65001
 bgp router-id %[1]s.2
 no bgp ebgp-requires-policy
 %[3]s
 neighbor %[1]s.1 remote-as 64512
 neighbor %[1]s.1 timers connect 1
%[4]s address-family ipv4 unicast
  network %[2]s
 exit-address-family
!
bfd
 profile fast
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
!
`, net, bfdPrefix, timers, nb), "bfdd")
}

// peerLab is a lab of petrel at net.1 and one peer node at net.2.
func peerLab(t *testing.T, peer, net string) (lab *harness.Lab, p, n *harness.Node) {
	harness.RequireRoot(t)
	lab = harness.New(t)
	p, n = lab.Node("petrel"), lab.Node(peer)
	lab.Link(p, "eth1", net+".1/24", n, "eth1", net+".2/24")
	return lab, p, n
}

// anycastTarget gives the peer node bfdTarget on lo and a route back to
// petrel's ping source.
func anycastTarget(t *testing.T, n *harness.Node, net string) {
	n.MustRun(t, "ip", "addr", "add", bfdTarget+"/32", "dev", "lo")
	n.MustRun(t, "ip", "route", "add", pingFrom+"/32", "via", net+".1")
}

// fibNextHops lists the next hops of prefix in node's kernel table.
func fibNextHops(n *harness.Node, prefix string) ([]string, error) {
	out, err := n.Run("ip", "-4", "route", "show", prefix)
	if err != nil {
		return nil, err
	}
	var hops []string
	fields := strings.Fields(out)
	for i, f := range fields {
		if f == "via" && i+1 < len(fields) {
			hops = append(hops, fields[i+1])
		}
	}
	return hops, nil
}

// waitFIB waits until prefix has exactly the next hops want in node's FIB.
func waitFIB(t *testing.T, n *harness.Node, prefix string, want ...string) {
	t.Helper()
	harness.Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		hops, err := fibNextHops(n, prefix)
		if err != nil {
			return err
		}
		if strings.Join(hops, ",") != strings.Join(want, ",") {
			return fmt.Errorf("%s via %v, want %v", prefix, hops, want)
		}
		return nil
	}, "%s's FIB has %s via %v", n.Name, prefix, want)
}

// bfdUp waits until petrel's BFD session with addr is Up.
func bfdUp(t *testing.T, p *petrelNode, addr string) {
	t.Helper()
	harness.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		peer, err := p.peer(addr)
		if err != nil {
			return err
		}
		if peer.State != "Established" || peer.BfdState != "Up" {
			return fmt.Errorf("session %s, BFD %q", peer.State, peer.BfdState)
		}
		return nil
	}, "petrel: BFD with %s Up", addr)
}

// timeUntilGone measures how long after start next hop `gone` takes to
// leave prefix in node's FIB, polling every 10 ms for up to limit.
func timeUntilGone(t *testing.T, n *harness.Node, prefix, gone string, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for time.Since(start) < limit {
		hops, err := fibNextHops(n, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(","+strings.Join(hops, ",")+",", ","+gone+",") {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s via %s still in %s's FIB %s after the peer froze", prefix, gone, n.Name, limit)
	return 0
}

// TestBFDDetectsFrozenPeer: a peer whose daemon hangs (SIGSTOP; its
// sockets stay open, so BGP alone notices only at the hold time) leaves
// petrel's FIB within 1 s with BFD on, against BIRD 2 and FRR's bfdd;
// without BFD, FRR's route stays until the (3 s) hold time runs out.
func TestBFDDetectsFrozenPeer(t *testing.T) {
	harness.RequireRoot(t)
	for i, tc := range []struct {
		name     string
		bfd      bool
		start    func(t *testing.T, n *harness.Node, net string) (thaw func() func())
		min, max time.Duration
	}{
		{name: "bird", bfd: true, max: time.Second, start: func(t *testing.T, n *harness.Node, net string) func() func() {
			return bfdBird(t, n, net, "").Proc.Freeze
		}},
		{name: "frr", bfd: true, max: time.Second, start: func(t *testing.T, n *harness.Node, net string) func() func() {
			return bfdFRR(t, n, net, true).Freeze
		}},
		{name: "frr-without-bfd", min: 2 * time.Second, max: 5 * time.Second, start: func(t *testing.T, n *harness.Node, net string) func() func() {
			return bfdFRR(t, n, net, false).Freeze
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net := fmt.Sprintf("10.0.%d", 21+i)
			lab, p, n := peerLab(t, tc.name, net)
			freeze := tc.start(t, n, net)
			extra := "keepaliveTime: 10s\n    " + fastBFD
			if !tc.bfd {
				extra = "keepaliveTime: 1s"
			}
			pn := startPetrel(t, lab, p, petrelConfig("petrel", net+".1", 64512, []peerSpec{{Address: net + ".2", AS: 65001, Extra: extra}}))
			established(t, "petrel", pn.PeerState, net+".2")
			if tc.bfd {
				bfdUp(t, pn, net+".2")
				if out := pn.MustRun(t, petrelBin, "status", "--socket", pn.socket); !strings.Contains(out, "Up 3x100ms") {
					t.Errorf("petrel status lacks the BFD column:\n%s", out)
				}
				metrics := p.MustRun(t, "curl", "-sf", "http://127.0.0.1:9095/metrics")
				for _, want := range []string{`petrel_bfd_peer_up{peer="` + net + `.2"} 1`, `petrel_bfd_peer_detect_seconds{peer="` + net + `.2"} 0.3`} {
					if !strings.Contains(metrics, want) {
						t.Errorf("metrics lack %q", want)
					}
				}
			}
			waitFIB(t, p, bfdPrefix, net+".2")

			start := time.Now()
			thaw := freeze()
			t.Cleanup(thaw)
			took := timeUntilGone(t, p, bfdPrefix, net+".2", start, 10*time.Second)
			t.Logf("%s frozen: route out of petrel's FIB after %s", tc.name, took.Round(time.Millisecond))
			if took < tc.min || took > tc.max {
				t.Fatalf("route left the FIB after %s, want %s-%s", took, tc.min, tc.max)
			}
			if st, _ := pn.PeerState(net + ".2"); st == "Established" {
				t.Errorf("session still Established after the route left")
			}
			thaw()
		})
	}
}

// TestBFDShrinksECMPInPlace: 10.94.0.1 is reachable through BIRD and FRR
// (ECMP). The peer carrying petrel's ping flow hangs and its node stops
// answering: the ECMP route shrinks to the survivor within 1 s, and pings
// lose at most that long, none after.
func TestBFDShrinksECMPInPlace(t *testing.T) {
	harness.RequireRoot(t)
	lab := harness.New(t)
	p, bn, fn := lab.Node("petrel"), lab.Node("bird"), lab.Node("frr")
	lab.Link(p, "eth1", "10.0.31.1/24", bn, "eth1", "10.0.31.2/24")
	lab.Link(p, "eth2", "10.0.32.1/24", fn, "eth1", "10.0.32.2/24")
	p.MustRun(t, "ip", "addr", "add", pingFrom+"/32", "dev", "lo")
	anycastTarget(t, bn, "10.0.31")
	anycastTarget(t, fn, "10.0.32")
	bird := bfdBird(t, bn, "10.0.31", "")
	frr := bfdFRR(t, fn, "10.0.32", true)
	extra := "keepaliveTime: 10s\n    " + fastBFD
	pn := startPetrel(t, lab, p, petrelConfig("petrel", "10.0.31.1", 64512, []peerSpec{
		{Address: "10.0.31.2", AS: 65001, Extra: extra}, {Address: "10.0.32.2", AS: 65001, Extra: extra},
	}))
	bfdUp(t, pn, "10.0.31.2")
	bfdUp(t, pn, "10.0.32.2")
	waitFIB(t, p, bfdPrefix, "10.0.31.2", "10.0.32.2")

	// Kill the next hop the flow uses: freeze its daemons and drop its
	// replies (a hung node, not only a hung daemon).
	out := p.MustRun(t, "ip", "route", "get", bfdTarget, "from", pingFrom)
	dead, dn, freeze, survivor := "10.0.31.2", bn, bird.Proc.Freeze, "10.0.32.2"
	if strings.Contains(out, "via 10.0.32.2") {
		dead, dn, freeze, survivor = "10.0.32.2", fn, frr.Freeze, "10.0.31.2"
	}
	ping := p.Start(t, "ping", "ping", "-n", "-D", "-i", "0.01", "-c", "400", "-W", "0.2", "-I", pingFrom, bfdTarget)
	time.Sleep(time.Second)
	start := time.Now()
	t.Cleanup(freeze())
	dn.MustRun(t, "ip", "route", "replace", "blackhole", pingFrom+"/32")
	took := timeUntilGone(t, p, bfdPrefix, dead, start, 5*time.Second)
	t.Logf("next hop %s dead: ECMP route shrank to %s after %s", dead, survivor, took.Round(time.Millisecond))
	if took > time.Second {
		t.Fatalf("ECMP route shrank after %s, want <= 1s", took)
	}
	if hops, _ := fibNextHops(p, bfdPrefix); len(hops) != 1 || hops[0] != survivor {
		t.Fatalf("%s via %v after the failure, want via %s only", bfdPrefix, hops, survivor)
	}
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		if !ping.Exited() {
			return fmt.Errorf("ping still running")
		}
		return nil
	}, "ping done")
	lost, lastLost := pingLosses(ping.Log())
	t.Logf("pings: %d of 400 lost (%d ms at 10 ms each), last lost seq %d", lost, lost*10, lastLost)
	if lost*10 > 1000 {
		t.Errorf("%d echoes lost: more than 1 s of traffic", lost)
	}
	if lastLost > 0 && lastLost > 100+(int(took/(10*time.Millisecond)))+50 {
		t.Errorf("echo %d lost, well after the route shrank (at ~%d)", lastLost, 100+int(took/(10*time.Millisecond)))
	}
}

// pingLosses reads ping's output: how many of its echoes got no reply and
// the highest sequence number among them.
func pingLosses(out string) (lost, last int) {
	got := map[int]bool{}
	sent := 0
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "icmp_seq="); i >= 0 && strings.Contains(line, "bytes from") {
			var seq int
			fmt.Sscanf(line[i+len("icmp_seq="):], "%d", &seq)
			got[seq] = true
		}
		if strings.Contains(line, "packets transmitted") {
			fmt.Sscanf(strings.TrimSpace(line), "%d", &sent)
		}
	}
	for seq := 1; seq <= sent; seq++ {
		if !got[seq] {
			lost, last = lost+1, seq
		}
	}
	return lost, last
}

// llgrStale reports whether petrel's path for prefix via nextHop is kept by
// long-lived graceful restart; ok is false when petrel has no such path.
func llgrStale(p *petrelNode, prefix, nextHop string) (stale, ok bool, err error) {
	routes, err := withClient(p, func(c *clientT) ([]*petrelpb.Route, error) { return c.Routes(bg(), prefix) })
	for _, r := range routes {
		for _, path := range r.Paths {
			if r.Prefix == prefix && path.NextHop == nextHop {
				return path.LlgrStale, true, err
			}
		}
	}
	return false, false, err
}

// TestLongLivedGracefulRestart: BIRD (graceful restart time 2 s, LLGR stale
// time 6 s, BFD on) dies. petrel keeps its route through graceful restart
// and then as LLGR-stale (shown by petrel routes) while traffic keeps
// flowing, and drops it when the stale time ends. BFD going silent after
// the session closed changes none of that.
func TestLongLivedGracefulRestart(t *testing.T) {
	lab, p, bn := peerLab(t, "bird", "10.0.41")
	p.MustRun(t, "ip", "addr", "add", pingFrom+"/32", "dev", "lo")
	anycastTarget(t, bn, "10.0.41")
	bird := bfdBird(t, bn, "10.0.41", "graceful restart on; graceful restart time 2;\n  long lived graceful restart on; long lived stale time 6;")
	pn := startPetrel(t, lab, p, petrelConfig("petrel", "10.0.41.1", 64512, []peerSpec{
		{Address: "10.0.41.2", AS: 65001, Extra: "longLivedStaleTime: 60s\n    " + fastBFD},
	}))
	bfdUp(t, pn, "10.0.41.2")
	waitFIB(t, p, bfdPrefix, "10.0.41.2")

	bird.Proc.Kill()
	killed := time.Now()
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		stale, ok, err := llgrStale(pn, bfdPrefix, "10.0.41.2")
		if err != nil || !ok || !stale {
			return fmt.Errorf("path kept %v, LLGR-stale %v (%v)", ok, stale, err)
		}
		return nil
	}, "petrel keeps BIRD's route as LLGR-stale")
	t.Logf("route LLGR-stale %s after BIRD died", time.Since(killed).Round(time.Millisecond))
	if out := pn.MustRun(t, petrelBin, "routes", "--socket", pn.socket); !strings.Contains(out, "llgr-stale") {
		t.Errorf("petrel routes does not show the LLGR-stale path:\n%s", out)
	}
	waitFIB(t, p, bfdPrefix, "10.0.41.2")
	if out, err := p.Run("ping", "-n", "-q", "-c", "20", "-i", "0.05", "-W", "1", "-I", pingFrom, bfdTarget); err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Errorf("traffic over the LLGR-stale route: %v\n%s", err, out)
	}

	gone := timeUntilGone(t, p, bfdPrefix, "10.0.41.2", killed, 15*time.Second)
	t.Logf("route out of the FIB %s after BIRD died (restart time 2 s + stale time 6 s)", gone.Round(time.Millisecond))
	if gone < 7*time.Second {
		t.Errorf("route removed after %s, before the 2 s + 6 s BIRD asked for", gone)
	}
	if _, ok, _ := llgrStale(pn, bfdPrefix, "10.0.41.2"); ok {
		t.Errorf("route still in petrel's RIB after the stale time")
	}
}

// TestBFDPeerRestartsGracefully: a BFD peer that restarts (BIRD killed and
// started again) is a graceful restart, not a failure: its route stays in
// petrel's FIB throughout, and the BFD timeout that follows the session's
// end must not reset the next session (GoBGP would send the reset it
// queued the moment that session came up; BIRD then drops its BFD session,
// the next timeout queues another reset, and so on).
func TestBFDPeerRestartsGracefully(t *testing.T) {
	lab, p, bn := peerLab(t, "bird", "10.0.42")
	gr := "graceful restart on; graceful restart time 30;"
	bird := bfdBird(t, bn, "10.0.42", gr)
	pn := startPetrel(t, lab, p, petrelConfig("petrel", "10.0.42.1", 64512, []peerSpec{
		{Address: "10.0.42.2", AS: 65001, Extra: fastBFD},
	}))
	bfdUp(t, pn, "10.0.42.2")
	waitFIB(t, p, bfdPrefix, "10.0.42.2")

	bird.Proc.Kill()
	time.Sleep(time.Second) // well past BFD's 300 ms detection time
	if hops, _ := fibNextHops(p, bfdPrefix); len(hops) != 1 {
		rib, _ := pn.Routes()
		t.Fatalf("graceful restart did not keep the route: %s via %v (RIB %v)", bfdPrefix, hops, rib)
	}
	bird = bfdBird(t, bn, "10.0.42", gr)
	bfdUp(t, pn, "10.0.42.2")
	before, err := pn.peer("10.0.42.2")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	after, err := pn.peer("10.0.42.2")
	if err != nil || after.State != "Established" || after.Flaps != before.Flaps || after.BfdState != "Up" {
		t.Fatalf("session after BIRD came back: %+v (flaps before %d)", after, before.Flaps)
	}
	if st, _ := bird.ProtocolState("petrel"); st != "Established" {
		t.Fatalf("BIRD's session is %s", st)
	}
	waitFIB(t, p, bfdPrefix, "10.0.42.2")
}

// TestPetrelRestartKeepsRoutesAtBIRD: petrel stops (SIGTERM, no Cease);
// its BFD stops with it. BIRD configured as docs/bfd-llgr.md says (`bfd
// graceful;`) keeps petrel's route under graceful restart throughout.
// (With `bfd on;` BIRD drops it ~0.3 s after petrel exits: BFD down is a
// failure to BIRD even during graceful restart.)
func TestPetrelRestartKeepsRoutesAtBIRD(t *testing.T) {
	lab, p, bn := peerLab(t, "bird", "10.0.43")
	bird := bfdBirdMode(t, bn, "10.0.43", "graceful restart on; graceful restart time 30;", "bfd graceful;")
	pn := startPetrel(t, lab, p, petrelConfig("petrel", "10.0.43.1", 64512, []peerSpec{{Address: "10.0.43.2", AS: 65001, Extra: fastBFD}}, "10.92.0.0/24"))
	bfdUp(t, pn, "10.0.43.2")
	hasRoute(t, "bird", bird.Routes, "10.92.0.0/24", "")
	if err := pn.proc.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if rs, err := bird.Routes(); err != nil || rs["10.92.0.0/24"] == nil {
			t.Fatalf("BIRD dropped petrel's route while petrel was down (%v): %v", err, rs)
		}
	}
	pn.start()
	bfdUp(t, pn, "10.0.43.2")
	hasRoute(t, "bird", bird.Routes, "10.92.0.0/24", "10.0.43.1")
}
