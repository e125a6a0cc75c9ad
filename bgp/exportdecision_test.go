package bgp

import (
	"net/netip"
	"strings"
	"testing"
)

func TestDecideExport(t *testing.T) {
	pool := netip.MustParsePrefix("192.168.0.0/16")
	own := netip.MustParsePrefix("192.168.1.0/26")
	remote := netip.MustParsePrefix("192.168.2.0/26")
	mesh := PeerConfig{Address: netip.MustParseAddr("10.0.0.2"), ASN: 64512}
	tor := PeerConfig{Address: netip.MustParseAddr("10.0.0.200"), ASN: 65001}
	client := PeerConfig{Address: netip.MustParseAddr("10.0.0.3"), ASN: 64512, RouteReflectorClient: true}
	local := Path{Local: true}
	learned := Path{Peer: mesh.Address, NextHop: mesh.Address, PeerASN: 64512}
	fromTor := Path{Peer: tor.Address, NextHop: tor.Address, PeerASN: 65001, ASPath: []uint32{65001}}
	reject := FilterRule{Origin: `BGPFilter "edge": spec.exportV4[0]`, Prefix: own, Op: MatchEqual, Reject: true}
	accept := FilterRule{Origin: `BGPFilter "edge": spec.exportV4[1]`, Prefix: pool, Op: MatchIn}

	base := ExportInput{LocalASN: 64512, Exportable: []netip.Prefix{pool}, Originated: []netip.Prefix{own}}
	for _, tc := range []struct {
		name     string
		change   func(*ExportInput)
		exported bool
		rule     string
	}{
		{"own block to the mesh", func(in *ExportInput) { in.Prefix, in.Best, in.Peer = own, local, mesh }, true, RuleOriginated},
		{"own block rejected by a filter", func(in *ExportInput) {
			in.Prefix, in.Best, in.Peer, in.Rules = own, local, tor, []FilterRule{reject, accept}
		}, false, `BGPFilter "edge": spec.exportV4[0] (Reject)`},
		{"accept leaves the decision to the leak-proof rule", func(in *ExportInput) {
			in.Prefix, in.Best, in.Peer, in.Rules = remote, learned, tor, []FilterRule{reject, accept}
			in.FromIBGP = true
		}, true, RuleGateway},
		{"local route outside the pools", func(in *ExportInput) {
			in.Prefix, in.Best, in.Peer = netip.MustParsePrefix("10.9.0.0/24"), local, mesh
		}, false, RuleOutsidePools},
		{"kernel route inside a pool", func(in *ExportInput) {
			in.Prefix, in.Best, in.Peer = netip.MustParsePrefix("192.168.7.0/24"), local, mesh
		}, true, RuleLocalInPool},
		{"iBGP route to an iBGP peer", func(in *ExportInput) {
			in.Prefix, in.Best, in.Peer, in.FromIBGP = remote, learned, client, true
			in.Peer.RouteReflectorClient = false
		}, false, RuleIBGPToIBGP},
		{"back to where it came from", func(in *ExportInput) { in.Prefix, in.Best, in.Peer = remote, learned, mesh }, false, RuleSplitHorizon},
		{"eBGP route never leaves", func(in *ExportInput) { in.Prefix, in.Best, in.Peer = remote, fromTor, mesh }, false, RuleFromEBGP},
		{"reflector passes pool routes to a client", func(in *ExportInput) {
			in.Prefix, in.Best, in.Peer, in.FromIBGP, in.Reflectable = remote, learned, client, true, []netip.Prefix{pool}
		}, true, RuleReflected},
		{"non-reflector to a client", func(in *ExportInput) {
			in.Prefix, in.Best, in.Peer, in.FromIBGP = remote, learned, client, true
		}, false, RuleNotReflecting},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			tc.change(&in)
			d := DecideExport(in)
			if d.Exported != tc.exported || d.Rule != tc.rule || d.ByFilter != strings.HasPrefix(tc.rule, "BGPFilter") {
				t.Errorf("got %v, want exported=%v by %q", d, tc.exported, tc.rule)
			}
		})
	}
}

func TestFilterRuleMatches(t *testing.T) {
	p := netip.MustParsePrefix("192.168.1.0/26")
	in := FilterRule{Prefix: netip.MustParsePrefix("192.168.0.0/16"), Op: MatchIn, MaxLen: 24}
	notIn := in
	notIn.Op = MatchNotIn
	comm := FilterRule{Community: "65000:7"}
	path := FilterRule{ASPathPrefix: []uint32{65001}}
	for _, tc := range []struct {
		r    FilterRule
		path Path
		as   []uint32
		want bool
	}{
		{in, Path{}, nil, false}, // /26 is longer than MaxLen
		{notIn, Path{}, nil, true},
		{comm, Path{Communities: []string{"65000:7"}}, nil, true},
		{comm, Path{}, nil, false},
		{path, Path{}, []uint32{65001, 64512}, true},
		{path, Path{}, []uint32{64512}, false},
		{FilterRule{FromPeers: true}, Path{Local: true}, nil, false},
		{FilterRule{Never: true}, Path{}, nil, false},
		{FilterRule{IPv6: true}, Path{}, nil, false},
	} {
		if got := tc.r.Matches(p, tc.path, tc.as); got != tc.want {
			t.Errorf("%s matches %v/%v = %v, want %v", strings.TrimSpace(tc.r.key()), tc.path, tc.as, got, tc.want)
		}
	}
}
