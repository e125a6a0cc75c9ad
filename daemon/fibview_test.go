package daemon

import (
	"net/netip"
	"testing"

	petrelpb "github.com/petrel-net/petrel/proto"
)

func TestFIBFilter(t *testing.T) {
	f, err := parseFIBFilter(&petrelpb.ListFIBRequest{Within: "192.168.0.0/16", Peer: "10.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	n2, n3 := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	block := netip.MustParsePrefix("192.168.1.0/26")
	for _, tc := range []struct {
		p     netip.Prefix
		peers []netip.Addr
		want  bool
	}{
		{block, []netip.Addr{n3, n2}, true},
		{block, []netip.Addr{n3}, false},
		{block, nil, false},
		{netip.MustParsePrefix("10.1.0.0/24"), []netip.Addr{n2}, false},
		{netip.MustParsePrefix("192.0.0.0/8"), []netip.Addr{n2}, false}, // wider than within
	} {
		if got := f.admits(tc.p, tc.peers); got != tc.want {
			t.Errorf("%s from %v: %v, want %v", tc.p, tc.peers, got, tc.want)
		}
	}
	if _, err := parseFIBFilter(&petrelpb.ListFIBRequest{Peer: "node2"}); err == nil {
		t.Error("a peer that is not an address was accepted")
	}
}
