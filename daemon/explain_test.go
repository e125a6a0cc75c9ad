package daemon

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/ipam"
	"github.com/petrel-net/petrel/kernelsync"
	petrelpb "github.com/petrel-net/petrel/proto"
)

func TestAssembleExplain(t *testing.T) {
	own := netip.MustParsePrefix("192.168.1.0/26")
	remote := netip.MustParsePrefix("192.168.2.0/26")
	n2, n3 := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	mesh := bgp.PeerConfig{Address: n2, ASN: 64512, Name: "Mesh_10_0_0_2", Type: bgp.PeerTypeMesh}
	tor := bgp.PeerConfig{Address: netip.MustParseAddr("10.0.0.200"), ASN: 65001, Name: "Node_10_0_0_200", Type: bgp.PeerTypeNodeSpecific}
	up := bgp.StateEstablished
	hole := []kernelsync.NextHop{{Blackhole: true}}
	ecmp := []kernelsync.NextHop{{Gateway: n2, Interface: "eth1"}, {Gateway: n3, Interface: "eth1"}}
	for _, tc := range []struct {
		name    string
		x       explainParts
		verdict petrelpb.ExplainResponse_Verdict
		owner   string
		finding string
	}{{
		name: "local block: originated, blackhole, exported",
		x: explainParts{
			bgp: bgp.PrefixReport{Prefix: own, Paths: []bgp.Path{{Local: true}}, Sources: []string{bgp.SourceOriginate},
				Exports: []bgp.PeerExport{{Peer: mesh, State: up, ExportDecision: bgp.ExportDecision{Exported: true, Rule: bgp.RuleOriginated}}}},
			fib:    &kernelsync.FIBEntry{Prefix: own, Blackhole: true, Desired: hole, Installed: hole, IsInstalled: true, Kernel: []kernelsync.KernelRoute{{Protocol: 12, Type: "blackhole", NextHops: hole}}},
			origin: ipam.Origin{Block: own, Affinity: "node1", AffinityState: "confirmed"},
		},
		verdict: petrelpb.ExplainResponse_INSTALLED, owner: "kernel sync (block blackhole)",
	}, {
		name: "remote block: learned, ECMP, installed",
		x: explainParts{
			bgp: bgp.PrefixReport{Prefix: remote, Paths: []bgp.Path{{Peer: n2, NextHop: n2}, {Peer: n3, NextHop: n3}}},
			fib: &kernelsync.FIBEntry{Prefix: remote, Gateways: []netip.Addr{n2, n3}, Desired: ecmp, Installed: ecmp, IsInstalled: true,
				Kernel: []kernelsync.KernelRoute{{Protocol: 12, Type: "unicast", NextHops: ecmp}}},
		},
		verdict: petrelpb.ExplainResponse_INSTALLED, owner: "kernel sync",
	}, {
		name: "own block rejected towards the ToR",
		x: explainParts{
			bgp: bgp.PrefixReport{Prefix: own, Paths: []bgp.Path{{Local: true}}, Exports: []bgp.PeerExport{
				{Peer: tor, State: up, ExportDecision: bgp.ExportDecision{Rule: `BGPFilter "edge": spec.exportV4[0] (Reject)`, ByFilter: true}}}},
		},
		verdict: petrelpb.ExplainResponse_NOT_INSTALLED, finding: `not sent to 10.0.0.200 (Node_10_0_0_200): BGPFilter "edge": spec.exportV4[0] (Reject)`,
	}, {
		name: "a foreign route holds the prefix",
		x: explainParts{
			bgp: bgp.PrefixReport{Prefix: remote, Paths: []bgp.Path{{Peer: n2, NextHop: n2}}},
			fib: &kernelsync.FIBEntry{Prefix: remote, Gateways: []netip.Addr{n2}, Desired: ecmp[:1],
				Kernel: []kernelsync.KernelRoute{{Protocol: 4, Type: "unicast", NextHops: []kernelsync.NextHop{{Gateway: n3, Interface: "eth1"}}}}},
		},
		verdict: petrelpb.ExplainResponse_NOT_INSTALLED, owner: "foreign (protocol static)", finding: "not in the FIB: a foreign route (protocol static, unicast) holds the prefix",
	}, {
		name: "a learned kernel route outside the pools stays home by design",
		x: explainParts{
			bgp: bgp.PrefixReport{Prefix: netip.MustParsePrefix("10.9.0.0/24"), Paths: []bgp.Path{{Local: true}}, Sources: []string{bgp.SourceKernel},
				Exports: []bgp.PeerExport{{Peer: mesh, State: up, ExportDecision: bgp.ExportDecision{Rule: bgp.RuleOutsidePools}}}},
		},
		verdict: petrelpb.ExplainResponse_INSTALLED,
	}, {
		name:    "unknown",
		x:       explainParts{bgp: bgp.PrefixReport{Prefix: netip.MustParsePrefix("10.99.0.0/24")}, fib: &kernelsync.FIBEntry{}},
		verdict: petrelpb.ExplainResponse_UNKNOWN, finding: "unknown",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.x.protocol, tc.x.localASN = 12, 64512
			resp := assembleExplain("q", tc.x)
			if resp.Verdict != tc.verdict {
				t.Errorf("verdict %v, want %v (%v)", resp.Verdict, tc.verdict, resp.Summary)
			}
			if tc.owner != "" && resp.Fib.GetOwner() != tc.owner {
				t.Errorf("owner %q, want %q", resp.Fib.GetOwner(), tc.owner)
			}
			if tc.finding != "" && (len(resp.Summary) == 0 || !strings.HasPrefix(resp.Summary[0], tc.finding)) {
				t.Errorf("findings %q, want one starting %q", resp.Summary, tc.finding)
			}
		})
	}
}

func TestLongestMatch(t *testing.T) {
	ps := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("192.168.1.0/26"), netip.MustParsePrefix("192.168.1.5/32")}
	for addr, want := range map[string]string{"192.168.1.5": "192.168.1.5/32", "192.168.1.6": "192.168.1.0/26", "192.168.9.1": "192.168.0.0/16", "10.0.0.1": ""} {
		got, ok := longestMatch(netip.MustParseAddr(addr), ps)
		if (want == "" && ok) || (want != "" && got.String() != want) {
			t.Errorf("%s: %v %v, want %q", addr, got, ok, want)
		}
	}
}

func TestKernelOwner(t *testing.T) {
	for want, r := range map[string]kernelsync.KernelRoute{
		"VXLAN":                     {Protocol: 80, NextHops: []kernelsync.NextHop{{Interface: "vxlan.calico"}}},
		"workload":                  {Protocol: 80, NextHops: []kernelsync.NextHop{{Interface: "cali1234567890a"}}},
		"kernel sync":               {Protocol: 12, Type: "unicast"},
		"foreign (protocol static)": {Protocol: 4},
	} {
		if got := kernelOwner(r, 12); got != want {
			t.Errorf("%+v: %q, want %q", r, got, want)
		}
	}
}
