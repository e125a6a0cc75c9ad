package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// birdConfig is BIRD's side of a session with petrel: fast timers so tests
// do not wait on BIRD's defaults, and protocol direct so iBGP next hops on
// the link resolve (BIRD's iBGP default is gateway recursive). Static
// routes and sessions may be of either family: a static IPv6 prefix goes
// into an ipv6 static protocol, and a session whose neighbor (the first
// word of its peers value) is an IPv6 address gets an ipv6 channel.
func birdConfig(routerID string, as uint32, static []string, peers map[string]string) string {
	var b strings.Builder
	b.WriteString("log stderr all;\nrouter id " + routerID + ";\nprotocol device { scan time 1; }\nprotocol direct { ipv4; ipv6; interface \"eth*\"; }\n")
	for _, fam := range []string{"ipv4", "ipv6"} {
		var routes []string
		for _, s := range static {
			if birdFamily(s) == fam {
				routes = append(routes, "  route "+s+" blackhole;\n")
			}
		}
		if len(routes) > 0 {
			name := map[string]string{"ipv4": "blocks", "ipv6": "blocks6"}[fam]
			b.WriteString("protocol static " + name + " { " + fam + ";\n" + strings.Join(routes, "") + "}\n")
		}
	}
	for name, neighbor := range peers {
		b.WriteString("protocol bgp " + name + " {\n  local as " + strconv.FormatUint(uint64(as), 10) + ";\n  neighbor " + neighbor + ";\n" +
			"  connect retry time 1;\n  connect delay time 1;\n  error wait time 1, 5;\n" +
			"  graceful restart on;\n  " + birdFamily(neighbor) + " { import all; export all; add paths on; };\n}\n")
	}
	return b.String()
}

// birdFamily is BIRD's channel for an address or prefix at the start of s:
// "ipv6" if it has a colon before any space, else "ipv4".
func birdFamily(s string) string {
	first, _, _ := strings.Cut(s, " ")
	if strings.Contains(first, ":") {
		return "ipv6"
	}
	return "ipv4"
}

// TestTwoPetrelNodesExchangePrefixes: two daemons in two namespaces peer over
// iBGP and learn each other's originated block, checked through the API.
func TestTwoPetrelNodesExchangePrefixes(t *testing.T) {
	harness.RequireRoot(t)
	lab := harness.New(t)
	a, b := lab.Node("a"), lab.Node("b")
	lab.Link(a, "eth1", "10.0.0.1/24", b, "eth1", "10.0.0.2/24")

	pa := startPetrel(t, lab, a, petrelConfig("a", "10.0.0.1", 64512, []peerSpec{{Address: "10.0.0.2", AS: 64512}}, "192.168.0.192/26"))
	pb := startPetrel(t, lab, b, petrelConfig("b", "10.0.0.2", 64512, []peerSpec{{Address: "10.0.0.1", AS: 64512}}, "192.168.1.0/26"))

	established(t, "a", pa.PeerState, "10.0.0.2")
	established(t, "b", pb.PeerState, "10.0.0.1")
	hasRoute(t, "a", pa.Routes, "192.168.1.0/26", "10.0.0.2")
	hasRoute(t, "b", pb.Routes, "192.168.0.192/26", "10.0.0.1")

	peer, err := pa.peer("10.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	if peer.Type != "node specific" || peer.Info != "Established" || peer.PrefixesReceived != 1 || peer.PrefixesAdvertised != 1 || peer.RouterId != "10.0.0.2" {
		t.Errorf("status row = %+v", peer)
	}
	out := pa.MustRun(t, petrelBin, "status", "--socket", pa.socket)
	for _, want := range []string{"PEER ADDRESS", "10.0.0.2", "node specific", "Established"} {
		if !strings.Contains(out, want) {
			t.Errorf("petrel status lacks %q:\n%s", want, out)
		}
	}
	out = pa.MustRun(t, petrelBin, "routes", "--socket", pa.socket)
	if !strings.Contains(out, "192.168.1.0/26") || !strings.Contains(out, "best") {
		t.Errorf("petrel routes:\n%s", out)
	}
}

// interopPeer is a foreign BGP daemon under test: how to start it in its
// node, and how to read its own view of the session and its routes.
type interopPeer struct {
	name      string
	as        uint32
	petrelKey string // extra YAML for petrel's peer entry
	// start runs the daemon at l.peer peering with petrel at l.petrel and
	// advertising theirs.
	start func(t *testing.T, n *harness.Node, l interopLink, theirs string) peerView
}

// interopLink is a petrel—daemon link: the two addresses of the session,
// and the daemon's router ID (its IPv4 address, or any IPv4 address on an
// IPv6-only link).
type interopLink struct{ petrel, peer, peerID string }

// peerView reads a daemon's own view: session state by key, and its RIB.
type peerView struct {
	state  func(key string) (string, error)
	key    string
	routes func() (map[string][]string, error)
}

// TestInterop: petrel establishes a session with each daemon users run
// today — BIRD 2 (iBGP, TCP MD5), FRR bgpd (eBGP), Debian's older gobgpd
// (iBGP) — and prefixes flow both ways, checked with the daemon's own CLI
// (birdc, vtysh, gobgp) as well as petrel's API and FIB.
func TestInterop(t *testing.T) {
	runInterop(t, "-4", func(i int) (l interopLink, petrelID, ours, theirs string) {
		net := fmt.Sprintf("10.0.%d", i+1)
		return interopLink{petrel: net + ".1", peer: net + ".2", peerID: net + ".2"}, net + ".1",
			fmt.Sprintf("10.98.%d.0/24", 2*i+1), fmt.Sprintf("10.98.%d.0/24", 2*i+2)
	})
}

// interopPeers are the daemons of TestInterop and TestInteropIPv6.
var interopPeers = []interopPeer{
	{name: "bird", as: 64512, petrelKey: "password: pEtr3l", start: startInteropBird},
	{name: "frr", as: 65002, start: startInteropFRR},
	{name: "gobgpd", as: 64512, start: startInteropGoBGPD},
}

// runInterop runs one subtest per interop peer on a link of one family
// ("-4", "-6"; the addresses have a /64 or /24 on it) that setup gives
// the i-th peer, with petrel's router ID and the prefixes each side
// originates.
func runInterop(t *testing.T, family string, setup func(i int) (l interopLink, petrelID, ours, theirs string)) {
	harness.RequireRoot(t)
	for i, peer := range interopPeers {
		t.Run(peer.name, func(t *testing.T) {
			l, petrelID, ours, theirs := setup(i)
			lab := harness.New(t)
			p, n := lab.Node("petrel"), lab.Node(peer.name)
			bits := map[string]string{"-4": "/24", "-6": "/64"}[family]
			lab.Link(p, "eth1", l.petrel+bits, n, "eth1", l.peer+bits)
			if family == "-6" {
				waitDAD(t, n)
			}

			view := peer.start(t, n, l, theirs)
			pn := startPetrel(t, lab, p, petrelConfig("petrel", petrelID, 64512, []peerSpec{{Address: l.peer, AS: peer.as, Extra: peer.petrelKey}}, ours))

			established(t, peer.name, view.state, view.key)
			established(t, "petrel", pn.PeerState, l.peer)
			hasRoute(t, peer.name, view.routes, ours, l.petrel)
			hasRoute(t, "petrel", pn.Routes, theirs, l.peer)
			list := map[string]func(testing.TB, *harness.Node) map[string]fibRoute{"-4": fib, "-6": fib6}[family]
			waitGateways(t, list, p, theirs, 20*time.Second, l.peer)
		})
	}
}

func startInteropBird(t *testing.T, n *harness.Node, l interopLink, theirs string) peerView {
	bird := harness.StartBird(t, n, birdConfig(l.peerID, 64512, []string{theirs}, map[string]string{"petrel": l.petrel + " as 64512;\n  password \"pEtr3l\""}))
	return peerView{state: bird.ProtocolState, key: "petrel", routes: bird.Routes}
}

func startInteropFRR(t *testing.T, n *harness.Node, l interopLink, theirs string) peerView {
	frr := harness.StartFRR(t, n, frrConfig(65002, l.peerID, []string{l.petrel}, theirs))
	return peerView{state: frr.NeighborState, key: l.petrel, routes: frr.Routes}
}

// frrConfig is FRR in AS as with eBGP sessions to petrel (AS 64512) at
// each neighbor, fast timers, and networks (backed by blackhole routes)
// of either family. With anything IPv6 in it, every neighbor is activated
// for IPv6 unicast as well as for IPv4 unicast (FRR's default): FRR then
// offers both families on every session, as a dual-stack router does.
func frrConfig(as uint32, routerID string, neighbors []string, networks ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults traditional\nhostname frr\n")
	v6 := slices.ContainsFunc(append(slices.Clone(neighbors), networks...), func(s string) bool { return strings.Contains(s, ":") })
	for _, p := range networks {
		fmt.Fprintf(&b, "%s route %s blackhole\n", map[string]string{"ipv4": "ip", "ipv6": "ipv6"}[birdFamily(p)], p)
	}
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n timers bgp 3 9\n", as, routerID)
	for _, nb := range neighbors {
		fmt.Fprintf(&b, " neighbor %s remote-as 64512\n neighbor %s timers connect 1\n", nb, nb)
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		if fam == "ipv6" && !v6 {
			continue
		}
		fmt.Fprintf(&b, " address-family %s unicast\n", fam)
		for _, p := range networks {
			if birdFamily(p) == fam {
				fmt.Fprintf(&b, "  network %s\n", p)
			}
		}
		for _, nb := range neighbors {
			if fam == "ipv6" {
				fmt.Fprintf(&b, "  neighbor %s activate\n", nb)
			}
		}
		b.WriteString(" exit-address-family\n")
	}
	return b.String()
}

func startInteropGoBGPD(t *testing.T, n *harness.Node, l interopLink, theirs string) peerView {
	gobgp := harness.StartGoBGPD(t, n, fmt.Sprintf(`
[global.config]
  as = 64512
  router-id = "%[1]s"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "%[2]s"
    peer-as = 64512
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
`, l.peerID, l.petrel))
	if out, err := gobgp.CLI("global", "rib", "add", theirs, "-a", birdFamily(theirs)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return peerView{state: gobgp.NeighborState, key: l.petrel, routes: gobgp.Routes}
}

// TestNoLeakAcrossNodes: BIRD (AS 65001) -- petrel p1 -- petrel p2 (iBGP,
// AS 64512) -- FRR (AS 65003). Plain BGP would pass BIRD's eBGP-learned
// prefix from p1 to p2 over iBGP and on to FRR, and FRR's back the other
// way. petrel passes on nothing it learned; each side sees only the two
// petrel nodes' own blocks.
func TestNoLeakAcrossNodes(t *testing.T) {
	harness.RequireRoot(t)
	lab := harness.New(t)
	bn, n1, n2, fn := lab.Node("bird"), lab.Node("p1"), lab.Node("p2"), lab.Node("frr")
	lab.Link(bn, "eth1", "10.0.4.1/24", n1, "eth1", "10.0.4.2/24")
	lab.Link(n1, "eth2", "10.0.5.1/24", n2, "eth1", "10.0.5.2/24")
	lab.Link(n2, "eth2", "10.0.6.1/24", fn, "eth1", "10.0.6.2/24")

	bird := harness.StartBird(t, bn, birdConfig("10.0.4.1", 65001, []string{"10.97.1.0/24"}, map[string]string{"p1": "10.0.4.2 as 64512"}))
	frr := harness.StartFRR(t, fn, `
frr defaults traditional
hostname frr
ip route 10.97.4.0/24 blackhole
router bgp 65003
 bgp router-id 10.0.6.2
 no bgp ebgp-requires-policy
 timers bgp 3 9
 neighbor 10.0.6.1 remote-as 64512
 neighbor 10.0.6.1 timers connect 1
 address-family ipv4 unicast
  network 10.97.4.0/24
 exit-address-family
`)
	p1 := startPetrel(t, lab, n1, petrelConfig("p1", "10.0.4.2", 64512, []peerSpec{{Address: "10.0.4.1", AS: 65001}, {Address: "10.0.5.2", AS: 64512}}, "10.97.2.0/24"))
	p2 := startPetrel(t, lab, n2, petrelConfig("p2", "10.0.5.2", 64512, []peerSpec{{Address: "10.0.5.1", AS: 64512}, {Address: "10.0.6.2", AS: 65003}}, "10.97.3.0/24"))

	established(t, "bird", bird.ProtocolState, "p1")
	established(t, "frr", frr.NeighborState, "10.0.6.1")
	established(t, "p1", p1.PeerState, "10.0.5.2")

	// Each petrel learns from its external neighbour and from the other
	// petrel: proof that updates flow on every session.
	hasRoute(t, "p1", p1.Routes, "10.97.1.0/24", "10.0.4.1")
	hasRoute(t, "p2", p2.Routes, "10.97.4.0/24", "10.0.6.2")
	hasRoute(t, "p1", p1.Routes, "10.97.3.0/24", "10.0.5.2")
	hasRoute(t, "p2", p2.Routes, "10.97.2.0/24", "10.0.5.1")
	hasRoute(t, "bird", bird.Routes, "10.97.2.0/24", "")
	hasRoute(t, "frr", frr.Routes, "10.97.3.0/24", "")
	time.Sleep(2 * time.Second) // give a leak every chance to show up

	lacksRoute(t, "p2", p2.Routes, "10.97.1.0/24")     // BIRD's, via p1
	lacksRoute(t, "p1", p1.Routes, "10.97.4.0/24")     // FRR's, via p2
	lacksRoute(t, "frr", frr.Routes, "10.97.1.0/24")   // BIRD's, via p1 and p2
	lacksRoute(t, "bird", bird.Routes, "10.97.4.0/24") // FRR's, via p2 and p1
	lacksRoute(t, "bird", bird.Routes, "10.97.3.0/24") // p2's own block reaches p1 only
	lacksRoute(t, "frr", frr.Routes, "10.97.2.0/24")   // p1's own block reaches p2 only
}

// TestReloadAddsPeerWithoutResettingOthers: with a session to BIRD up,
// adding an FRR peer to the file and sending SIGHUP brings FRR up and
// leaves BIRD's session alone (BIRD's "since" does not move).
func TestReloadAddsPeerWithoutResettingOthers(t *testing.T) {
	harness.RequireRoot(t)
	lab := harness.New(t)
	p, bn, fn := lab.Node("petrel"), lab.Node("bird"), lab.Node("frr")
	lab.Link(p, "eth1", "10.0.7.1/24", bn, "eth1", "10.0.7.2/24")
	lab.Link(p, "eth2", "10.0.8.1/24", fn, "eth1", "10.0.8.2/24")

	bird := harness.StartBird(t, bn, birdConfig("10.0.7.2", 64512, nil, map[string]string{"petrel": "10.0.7.1 as 64512"}))
	frr := harness.StartFRR(t, fn, `
frr defaults traditional
hostname frr
router bgp 64512
 bgp router-id 10.0.8.2
 timers bgp 3 9
 neighbor 10.0.8.1 remote-as 64512
 neighbor 10.0.8.1 timers connect 1
`)
	one := []peerSpec{{Address: "10.0.7.2", AS: 64512}}
	pn := startPetrel(t, lab, p, petrelConfig("petrel", "10.0.7.1", 64512, one, "10.96.1.0/24"))
	established(t, "bird", bird.ProtocolState, "petrel")
	// BIRD prints "since" to the second; make sure a reset would show.
	time.Sleep(1100 * time.Millisecond)
	before, err := bird.ProtocolSince("petrel")
	if err != nil {
		t.Fatal(err)
	}

	pn.writeConfig(petrelConfig("petrel", "10.0.7.1", 64512, append(one, peerSpec{Address: "10.0.8.2", AS: 64512}), "10.96.1.0/24", "10.96.2.0/24"))
	if err := pn.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	established(t, "frr", frr.NeighborState, "10.0.8.1")
	hasRoute(t, "bird", bird.Routes, "10.96.2.0/24", "10.0.7.1")
	hasRoute(t, "frr", frr.Routes, "10.96.2.0/24", "10.0.8.1")

	after, err := bird.ProtocolSince("petrel")
	if err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Fatalf("BIRD's session was reset by the reload: since %q -> %q", before, after)
	}
	if st, _ := bird.ProtocolState("petrel"); st != "Established" {
		t.Fatalf("BIRD's session is %q after reload", st)
	}
	if peer, _ := pn.peer("10.0.7.2"); peer == nil || peer.Flaps != 0 {
		t.Fatalf("petrel counts a flap on the BIRD session: %+v", peer)
	}

	// A broken file on reload is refused and changes nothing.
	pn.writeConfig("routerID: 10.0.7.1\npeers: [{address: 10.0.7.2}]\n")
	if err := pn.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 5*time.Second, 100*time.Millisecond, func() error {
		if !strings.Contains(pn.proc.Log(), "reload refused") {
			return os.ErrNotExist
		}
		return nil
	}, "reload of a broken file refused in the log")
	established(t, "frr", frr.NeighborState, "10.0.8.1")
	if after2, _ := bird.ProtocolSince("petrel"); after2 != before {
		t.Fatalf("broken reload reset BIRD's session")
	}
}

// TestBadInput: an invalid file stops the daemon at start with a message
// naming key and value; an unreachable peer shows Active/Connect with a
// reason while the good session stays Established.
func TestBadInput(t *testing.T) {
	harness.RequireRoot(t)
	lab := harness.New(t)
	p, bn := lab.Node("petrel"), lab.Node("bird")
	lab.Link(p, "eth1", "10.0.9.1/24", bn, "eth1", "10.0.9.2/24")

	bad := lab.Dir() + "/bad.yaml"
	if err := os.WriteFile(bad, []byte("routerID: 10.0.9.1\npeers:\n- address: 10.0.9.300\n  asNumber: 64512\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(petrelBin, "daemon", "--config", bad, "--socket", lab.Dir()+"/bad.sock").CombinedOutput()
	if err == nil {
		t.Fatalf("daemon accepted a bad config:\n%s", out)
	}
	if want := `peers[0].address: "10.0.9.300" is not an IP address`; !strings.Contains(string(out), want) {
		t.Fatalf("error output %q lacks %q", out, want)
	}

	bird := harness.StartBird(t, bn, birdConfig("10.0.9.2", 64512, nil, map[string]string{"petrel": "10.0.9.1 as 64512"}))
	// 10.0.9.3 is on the link but nobody has it: connects fail (no ARP
	// answer); 10.0.9.2 port 1179: BIRD refuses the connection.
	pn := startPetrel(t, lab, p, petrelConfig("petrel", "10.0.9.1", 64512, []peerSpec{
		{Address: "10.0.9.2", AS: 64512},
		{Address: "10.0.9.3", AS: 64512},
	}, "10.95.1.0/24"))
	established(t, "petrel", pn.PeerState, "10.0.9.2")
	established(t, "bird", bird.ProtocolState, "petrel")
	harness.Eventually(t, 15*time.Second, 200*time.Millisecond, func() error {
		peer, err := pn.peer("10.0.9.3")
		if err != nil {
			return err
		}
		if peer.State != "Active" && peer.State != "Connect" {
			return fmt.Errorf("unreachable peer is %s", peer.State)
		}
		if !strings.Contains(peer.Info, "Socket:") {
			return fmt.Errorf("unreachable peer's info %q gives no reason", peer.Info)
		}
		return nil
	}, "unreachable peer shows Active/Connect with a reason")
	if st, _ := pn.PeerState("10.0.9.2"); st != "Established" {
		t.Fatalf("good session is %s", st)
	}
	out2 := pn.MustRun(t, petrelBin, "status", "--socket", pn.socket)
	if !strings.Contains(out2, "10.0.9.3") || !strings.Contains(out2, "start") {
		t.Errorf("status does not show the failing peer:\n%s", out2)
	}
}
