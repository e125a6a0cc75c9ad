package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/petrel-net/petrel/e2e/bench/feeder"
	"github.com/petrel-net/petrel/e2e/harness"
	"github.com/petrel-net/petrel/internal/netnsrun"
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
		err = netnsrun.RunPath("/var/run/netns/"+h.peers.NS, func() (err error) {
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

// Raw path attributes (RFC 4271 4.3): flags, type, length, value.
func attr(flags, typ byte, value ...byte) []byte {
	return append([]byte{flags, typ, byte(len(value))}, value...)
}

var (
	origin    = attr(0x40, 1, 0) // IGP
	asPath    = attr(0x40, 2)    // empty: iBGP, originated by the peer
	localPref = attr(0x40, 5, 0, 0, 0, 100)
)

func nextHop(a string) []byte { return attr(0x40, 3, netip.MustParseAddr(a).AsSlice()...) }

// nlri32 encodes p as a /32 NLRI.
func nlri32(p netip.Prefix) []byte { return append([]byte{32}, p.Addr().AsSlice()...) }

// rawUpdate frames an UPDATE: no withdrawals, the attributes, the NLRI.
func rawUpdate(attrs, nlri []byte) []byte {
	body := append([]byte{0, 0, byte(len(attrs) >> 8), byte(len(attrs))}, attrs...)
	return frame(2, append(body, nlri...))
}

// frame adds the 19-byte header (marker, length, type).
func frame(typ byte, body []byte) []byte {
	l := 19 + len(body)
	h := append(bytes.Repeat([]byte{0xff}, 16), byte(l>>8), byte(l), typ)
	return append(h, body...)
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// notification reads messages from r until a NOTIFICATION and returns
// its code and subcode.
func notification(r *bufio.Reader) (string, error) {
	for {
		typ, body, err := feeder.ReadMessage(r)
		if err != nil {
			return "", err
		}
		if typ == 3 {
			return feeder.Describe(typ, body), nil
		}
	}
}

// TestHostileBGPInput: a raw speaker sends each class of malformed UPDATE
// and of bad OPEN to petrel while another peer stays Established with its
// routes in the FIB. GoBGP v4 handles them as RFC 7606 and RFC 4271 say:
// a malformed attribute whose UPDATE can still be parsed (bad length or
// flags of a well-known attribute, a bad next hop, a missing mandatory
// attribute, a malformed AS_PATH) makes the UPDATE a withdrawal of its
// NLRI and the session stays up (an attribute overrunning the block keeps
// the session but withdraws nothing: see kept); an
// UPDATE whose NLRI cannot be located or parsed resets the session with an
// UPDATE Message Error; a bad header with a Message Header Error; bad
// OPENs with the matching OPEN Message Error. petrel stays up throughout.
func TestHostileBGPInput(t *testing.T) {
	const good, twa = "10.0.40.2", "10.0.40.3"
	resets := []string{"10.0.40.8", "10.0.40.9", "10.0.40.10", "10.0.40.11"}
	opens := []string{"10.0.40.4", "10.0.40.5", "10.0.40.6", "10.0.40.7"}
	peers := map[string]string{good: "", twa: ""}
	for _, a := range append(slices.Clone(resets), opens...) {
		peers[a] = ""
	}
	h := newHostileLab(t, peers)
	p := h.petrel
	h.session(t, good, prefixes("10.50.0.0", 20))
	established(t, "p", p.PeerState, good)

	// Treat-as-withdraw: each case first announces its prefix properly,
	// then sends the malformed UPDATE for it: the prefix must leave the
	// FIB and the session must stay up.
	s := h.session(t, twa, nil)
	established(t, "p", p.PeerState, twa)
	inFIB := func(prefix netip.Prefix, want bool) error {
		out := p.MustRun(t, "ip", "-4", "route", "show", prefix.String(), "proto", "12")
		if strings.Contains(out, "via "+twa) != want {
			return fmt.Errorf("%s in the FIB: %v, want %v", prefix, !want, want)
		}
		return nil
	}
	next := prefixes("10.70.0.1", 9)
	for i, tc := range []struct {
		name  string
		attrs []byte
		// kept: GoBGP v4.8.0 logs "treated as withdraw" but its decoder
		// stops at the bad attribute before the NLRI, so nothing is
		// withdrawn and the earlier route stays (RFC 7606 4 wants the NLRI
		// withdrawn). The session still stays up.
		kept bool
	}{
		{name: "ORIGIN of length 2", attrs: concat(attr(0x40, 1, 0, 0), asPath, nextHop(twa), localPref)},
		{name: "ORIGIN with the optional flag", attrs: concat(attr(0xc0, 1, 0), asPath, nextHop(twa), localPref)},
		{name: "NEXT_HOP of length 3", attrs: concat(origin, asPath, attr(0x40, 3, 10, 0, 40), localPref)},
		{name: "NEXT_HOP 0.0.0.0", attrs: concat(origin, asPath, nextHop("0.0.0.0"), localPref)},
		{name: "NEXT_HOP multicast", attrs: concat(origin, asPath, nextHop("224.0.0.5"), localPref)},
		{name: "no NEXT_HOP", attrs: concat(origin, asPath, localPref)},
		{name: "AS_PATH segment longer than the attribute", attrs: concat(origin, attr(0x40, 2, 2, 5, 0, 0, 0xfd, 0xe8), nextHop(twa), localPref)},
		// RFC 7606 4: the NLRI can still be found from the total length.
		{name: "attribute length past the attribute block", attrs: concat(origin, asPath, localPref, []byte{0x40, 3, 40, 10}), kept: true},
	} {
		prefix := next[i]
		good, err := feeder.NewFeed([]netip.Prefix{prefix}, netip.MustParseAddr(twa))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(good.Messages[0]); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		harness.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error { return inFIB(prefix, true) }, "%s: announced properly first", tc.name)
		if err := s.Send(rawUpdate(tc.attrs, nlri32(prefix))); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.kept {
			time.Sleep(300 * time.Millisecond)
			if err := inFIB(prefix, true); err != nil {
				t.Errorf("%s: %v: GoBGP now withdraws it as RFC 7606 says; make this case a plain treat-as-withdraw", tc.name, err)
			}
		} else {
			harness.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error { return inFIB(prefix, false) }, "%s: treated as withdraw", tc.name)
		}
		select {
		case <-s.Done():
			t.Fatalf("%s: session reset (%v), want treat-as-withdraw", tc.name, s.Err())
		default:
		}
	}

	// An attribute flood: every unknown optional transitive type there is,
	// 20 bytes each, in one 4 KB UPDATE, is passed on, not refused.
	var flood []byte
	for typ := byte(100); typ < 255; typ++ {
		flood = append(flood, attr(0xc0, typ, bytes.Repeat([]byte{typ}, 18)...)...)
	}
	floodPrefix := next[8]
	if err := s.Send(rawUpdate(concat(origin, asPath, nextHop(twa), localPref, flood), nlri32(floodPrefix))); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error { return inFIB(floodPrefix, true) }, "the route with 155 unknown attributes is accepted")

	// Session resets: each from a peer of its own (a reset peer waits its
	// idle hold time before it may come back).
	valid := concat(origin, asPath, nextHop(resets[0]), localPref)
	for i, tc := range []struct {
		name, want string
		msg        []byte
	}{
		{"NLRI /33", "NOTIFICATION code 3 subcode 10", rawUpdate(valid, []byte{33, 10, 71, 0, 0, 0})},
		{"NLRI cut short", "NOTIFICATION code 3 subcode 10", rawUpdate(valid, []byte{32, 10, 71})},
		{"attribute block longer than the message", "NOTIFICATION code 3 subcode 1", frame(2, concat([]byte{0, 0, 0, 200}, valid))},
		{"header length below 19", "NOTIFICATION code 1 subcode 2", append(bytes.Repeat([]byte{0xff}, 16), 0, 10, 2)},
	} {
		s := h.session(t, resets[i], nil)
		established(t, "p", p.PeerState, resets[i])
		if err := s.Send(tc.msg); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		select {
		case <-s.Done():
			if err := s.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: session ended with %v, want %s", tc.name, err, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: session still up, want %s", tc.name, tc.want)
		}
	}

	// Bad OPENs, each on a raw connection: petrel answers with a
	// NOTIFICATION naming the error.
	openMsg := func(as uint16, hold uint16, id string) []byte {
		m, err := bgp.NewBGPOpenMessage(as, hold, netip.MustParseAddr(id),
			[]bgp.OptionParameterInterface{bgp.NewOptionParameterCapability([]bgp.ParameterCapabilityInterface{bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC)})})
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	version3 := openMsg(hostileAS, 90, opens[3])
	version3[19] = 3
	for i, tc := range []struct {
		name, want string
		msg        []byte
	}{
		{"wrong AS", "NOTIFICATION code 2 subcode 2", openMsg(65001, 90, opens[0])},
		{"hold time 2", "NOTIFICATION code 2 subcode 6", openMsg(hostileAS, 2, opens[1])},
		{"garbage", "NOTIFICATION code 1 subcode 1", bytes.Repeat([]byte("garbage!"), 8)},
		{"BGP version 3", "NOTIFICATION code 2 subcode 1", version3},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		conn, err := h.dial(opens[i])(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // a failed read reports it
		if _, err := conn.Write(tc.msg); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := notification(bufio.NewReader(conn))
		conn.Close()
		if err != nil || got != tc.want {
			t.Errorf("%s: petrel answered %q (%v), want %s", tc.name, got, err, tc.want)
		}
	}

	// petrel is up, the good peer never noticed.
	if p.proc.Exited() {
		t.Fatalf("petrel exited:\n%s", p.proc.Log())
	}
	peer, err := p.peer(good)
	if err != nil {
		t.Fatal(err)
	}
	if peer.State != "Established" || peer.Flaps != 0 || h.fibVia(t, good) != 20 {
		t.Errorf("the good peer: %s, %d flaps, %d routes in the FIB", peer.State, peer.Flaps, h.fibVia(t, good))
	}
}
