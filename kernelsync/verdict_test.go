package kernelsync

import (
	"net/netip"
	"strings"
	"testing"
)

func TestVerdict(t *testing.T) {
	gw := netip.MustParseAddr("10.0.0.2")
	via := []NextHop{{Gateway: gw, Interface: "eth1"}}
	for _, tc := range []struct {
		name            string
		e               FIBEntry
		wanted, install bool
		reason          string
	}{
		{"installed", FIBEntry{Gateways: []netip.Addr{gw}, Desired: via, Installed: via, IsInstalled: true}, true, true, ""},
		{"foreign route holds it", FIBEntry{Gateways: []netip.Addr{gw}, Desired: via,
			Kernel: []KernelRoute{{Protocol: 4, Type: "unicast"}}}, true, false, "a foreign route (protocol static, unicast) holds the prefix"},
		{"write failing", FIBEntry{Desired: via, Failing: true}, true, false, "the last kernel write failed"},
		{"next hop unreachable", FIBEntry{Gateways: []netip.Addr{gw}, Unusable: []UnusableGateway{{gw, "no route to it"}}},
			false, false, "next hop unreachable (10.0.0.2: no route to it)"},
		{"excluded", FIBEntry{Gateways: []netip.Addr{gw}, Excluded: true}, false, false, "excluded: the VXLAN dataplane"},
		{"stale", FIBEntry{Desired: via, Installed: via, IsInstalled: true, Stale: true, GracefulRestart: true}, true, true, "graceful-restart stale"},
		{"nothing", FIBEntry{}, false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.e.Verdict(12)
			if v.Wanted != tc.wanted || v.Installed != tc.install || !strings.HasPrefix(v.Reason, tc.reason) || (tc.reason == "" && v.Reason != "") {
				t.Errorf("got %+v, want wanted=%v installed=%v reason %q...", v, tc.wanted, tc.install, tc.reason)
			}
		})
	}
}
