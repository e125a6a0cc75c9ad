package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/internal/coalesce"
)

type fakeConvSpeaker struct{ routes []bgp.Route }

func (f *fakeConvSpeaker) SubscribePeers() (*coalesce.Queue[netip.Addr, bgp.PeerEvent], func()) {
	return coalesce.New[netip.Addr, bgp.PeerEvent](), func() {}
}
func (f *fakeConvSpeaker) PrefixesFrom(peer netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range f.routes {
		if slices.ContainsFunc(r.Paths, func(p bgp.Path) bool { return p.Peer == peer }) {
			out = append(out, r.Prefix)
		}
	}
	return out
}

type fakeConvKernel struct{ unsettled map[netip.Prefix]bool }

func (f *fakeConvKernel) Unsettled(_ context.Context, ps []netip.Prefix) (int, error) {
	n := 0
	for _, p := range ps {
		if f.unsettled[p] {
			n++
		}
	}
	return n, nil
}

func TestConvergence(t *testing.T) {
	peer := netip.MustParseAddr("10.0.0.2")
	block := netip.MustParsePrefix("192.168.2.0/26")
	sp := &fakeConvSpeaker{routes: []bgp.Route{
		{Prefix: block, Paths: []bgp.Path{{Peer: peer}}},
		{Prefix: netip.MustParsePrefix("192.168.3.0/26"), Paths: []bgp.Path{{Peer: netip.MustParseAddr("10.0.0.3")}}},
	}}
	k := &fakeConvKernel{unsettled: map[netip.Prefix]bool{block: true}}
	c := newConvergence(sp, k, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t0 := time.Unix(1000, 0)
	c.now = func() time.Time { return t0.Add(3 * time.Second) }

	c.onPeer(peer, bgp.PeerEvent{State: bgp.StateEstablished, At: t0})
	c.onPeer(peer, bgp.PeerEvent{State: bgp.StateEstablished, EndOfRIB: true, At: t0.Add(time.Second)})
	c.checkFIB(context.Background())
	if len(c.results) != 0 {
		t.Fatalf("converged while a route is not in the FIB: %+v", c.results)
	}
	k.unsettled[block] = false
	c.checkFIB(context.Background())
	r, ok := c.results[peer]
	if !ok || r.toEndOfRIB != time.Second || r.toFIB != 3*time.Second || r.routes != 1 {
		t.Fatalf("result %+v %v", r, ok)
	}

	// A session that goes down is forgotten; its next one is measured anew.
	c.onPeer(peer, bgp.PeerEvent{State: bgp.StateIdle, At: t0.Add(10 * time.Second)})
	if len(c.peers) != 0 {
		t.Errorf("down peer still tracked: %+v", c.peers)
	}
	// Coalesced events: up and End-of-RIB in one, the session's own
	// start still counts.
	c.onPeer(peer, bgp.PeerEvent{State: bgp.StateEstablished, StateSince: t0, EndOfRIB: true, At: t0.Add(2 * time.Second)})
	c.checkFIB(context.Background())
	if r := c.results[peer]; r.toEndOfRIB != 2*time.Second {
		t.Errorf("coalesced: %+v", r)
	}
}
