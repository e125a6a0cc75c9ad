package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/bench/feeder"
	"github.com/petrel-net/petrel/e2e/harness"
)

// hostileLab is a petrel node (10.0.40.1) and a "peers" node holding the
// addresses raw BGP speakers (feeder) use: good peers and bad ones.
type hostileLab struct {
	lab    *harness.Lab
	peers  *harness.Node
	petrel *petrelNode
}

const hostileAS = 64512

// newHostileLab starts petrel with one passive iBGP peer per entry of
// peers (address -> extra config keys).
func newHostileLab(t *testing.T, peers map[string]string) *hostileLab {
	harness.RequireRoot(t)
	lab := harness.New(t)
	pn, other := lab.Node("p"), lab.Node("peers")
	lab.Link(pn, "eth1", "10.0.40.1/24", other, "eth1", "10.0.40.2/24")
	var specs []peerSpec
	for addr, extra := range peers {
		if addr != "10.0.40.2" {
			other.MustRun(t, "ip", "addr", "add", addr+"/24", "dev", "eth1")
		}
		specs = append(specs, peerSpec{Address: addr, AS: hostileAS, Extra: "passive: true" + extra})
	}
	h := &hostileLab{lab: lab, peers: other}
	h.petrel = startPetrel(t, lab, pn, petrelConfig("p", "10.0.40.1", hostileAS, specs, "192.168.40.0/26"))
	return h
}

// dial connects from local (in the peers node) to petrel's port 179.
func (h *hostileLab) dial(local string) func(context.Context) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 2 * time.Second}
	return func(ctx context.Context) (c net.Conn, err error) {
		err = inNamespace("/var/run/netns/"+h.peers.NS, func() (err error) {
			c, err = d.DialContext(ctx, "tcp", "10.0.40.1:179")
			return err
		})
		return c, err
	}
}

// session establishes an iBGP session from local and announces prefixes
// with local as next hop.
func (h *hostileLab) session(t *testing.T, local string, prefixes []netip.Prefix) *feeder.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	sp := feeder.Speaker{AS: hostileAS, RouterID: netip.MustParseAddr(local)}
	s, err := sp.Dial(ctx, h.dial(local), 200*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("session from %s: %v", local, err)
	}
	t.Cleanup(s.Close)
	feed, err := feeder.NewFeed(prefixes, netip.MustParseAddr(local))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(feed.Stream()); err != nil {
		t.Fatal(err)
	}
	return s
}

// fibVia counts petrel's kernel routes through nextHop.
func (h *hostileLab) fibVia(t *testing.T, nextHop string) int {
	t.Helper()
	out := h.petrel.MustRun(t, "ip", "-4", "route", "show", "proto", "12")
	return strings.Count(out, "via "+nextHop+" ")
}

// prefixes returns n /32s counting up from first.
func prefixes(first string, n int) []netip.Prefix {
	a := netip.MustParseAddr(first)
	out := make([]netip.Prefix, n)
	for i := range out {
		out[i] = netip.PrefixFrom(a, 32)
		a = a.Next()
	}
	return out
}

// vmHWM is the peak resident set of pid, in MiB.
func vmHWM(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return kb / 1024
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// rssBoundMiB is what petrel may peak at while a peer floods it with
// 200k prefixes against a limit of 1,000: the binary's file-backed pages
// (up to ~60 MB), debug logging of the flood and 1,000 routes. Accepted,
// the flood would peak near 400 MB (~200 MB per 100k routes,
// docs/BENCHMARKS.md). Measured: 72 MiB.
const rssBoundMiB = 120

// TestPrefixLimit: a peer announcing more prefixes than its maxPrefixes is
// sent Cease (maximum number of prefixes reached), its routes leave the
// RIB and the FIB, status, metrics and the log say why, and it stays
// down; another peer stays Established with its routes in the FIB; petrel's
// RSS stays under rssBoundMiB although the flood is 200 times the limit.
func TestPrefixLimit(t *testing.T) {
	const good, bad = "10.0.40.2", "10.0.40.3"
	h := newHostileLab(t, map[string]string{good: "", bad: "\n    maxPrefixes: 1000"})
	p := h.petrel
	h.session(t, good, prefixes("10.50.0.0", 20))
	established(t, "p", p.PeerState, good)
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		if n := h.fibVia(t, good); n != 20 {
			return fmt.Errorf("%d routes via %s in the FIB, want 20", n, good)
		}
		return nil
	}, "the good peer's routes in the FIB")

	// First under the limit: accepted.
	flood := prefixes("10.60.0.0", 200_000)
	s := h.session(t, bad, flood[:900])
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		if n := h.fibVia(t, bad); n != 900 {
			return fmt.Errorf("%d routes via %s in the FIB, want 900", n, bad)
		}
		return nil
	}, "900 routes under the limit in the FIB")
	// Then far over it.
	rest, err := feeder.NewFeed(flood[900:], netip.MustParseAddr(bad))
	if err != nil {
		t.Fatal(err)
	}
	s.Send(rest.Stream()) //nolint:errcheck // petrel may close the session before it is all written
	select {
	case <-s.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("petrel did not end the session of the peer over its limit")
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "NOTIFICATION code 6 subcode 1") {
		t.Errorf("the peer over its limit saw: %v; want a Cease NOTIFICATION, maximum number of prefixes", err)
	}
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		if n := h.fibVia(t, bad); n != 0 {
			return fmt.Errorf("%d routes via %s still in the FIB", n, bad)
		}
		return nil
	}, "the routes of the peer over its limit leave the FIB")

	peer, err := p.peer(bad)
	if err != nil {
		t.Fatal(err)
	}
	if peer.State == "Established" || !strings.Contains(peer.Info, "Prefix limit 1000 exceeded") {
		t.Errorf("status of the peer over its limit: %s %q", peer.State, peer.Info)
	}
	if st, _ := p.PeerState(good); st != "Established" || h.fibVia(t, good) != 20 {
		t.Errorf("the good peer: %s with %d routes in the FIB", st, h.fibVia(t, good))
	}
	metrics := p.MustRun(t, "curl", "-sf", "http://127.0.0.1:9095/metrics")
	if want := `petrel_bgp_peer_prefix_limit_exceeded_total{peer="` + bad + `"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "prefix_limit"))
	}
	if log, _ := os.ReadFile(p.proc.LogPath); !strings.Contains(string(log), "more prefixes than its limit") {
		t.Error("the log does not say the peer went over its limit")
	}
	// It stays down: a new session from it is refused.
	time.Sleep(time.Second)
	if st, _ := p.PeerState(bad); st == "Established" {
		t.Error("the peer over its limit came back")
	}
	rss := vmHWM(t, p.proc.Cmd.Process.Pid)
	t.Logf("petrel peak RSS %d MiB after a %d-prefix flood against a limit of 1000", rss, len(flood))
	if rss > rssBoundMiB {
		t.Errorf("petrel peaked at %d MiB, over the %d MiB bound", rss, rssBoundMiB)
	}
}
