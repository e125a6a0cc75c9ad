package cni

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/petrel-net/petrel/workload"
)

// TestResultDualStack: the plugin's result has both addresses with their
// gateways and a default route of each family, and an IPAM result must
// hold every family the config asks for.
func TestResultDualStack(t *testing.T) {
	addrs := workload.Addrs{IPv4: netip.MustParseAddr("10.244.0.5"), IPv6: netip.MustParseAddr("fd00:244::5")}
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	res := result("cali123", mac, "/var/run/netns/p", addrs)
	if len(res.IPs) != 2 || len(res.Routes) != 2 {
		t.Fatalf("result: %+v", res)
	}
	for i, want := range []struct{ addr, gw, dst string }{
		{"10.244.0.5/32", "169.254.1.1", "0.0.0.0/0"},
		{"fd00:244::5/128", "fe80::ecee:eeff:feee:eeee", "::/0"},
	} {
		ip, r := res.IPs[i], res.Routes[i]
		if ip.Address.String() != want.addr || ip.Gateway.String() != want.gw || *ip.Interface != 1 {
			t.Errorf("IP %d: %s via %s", i, ip.Address.String(), ip.Gateway)
		}
		if r.Dst.String() != want.dst || r.GW.String() != want.gw {
			t.Errorf("route %d: %s via %s", i, r.Dst.String(), r.GW)
		}
	}
	// Round trip through an IPAM result.
	ipamRes := &types100.Result{CNIVersion: "1.0.0", IPs: res.IPs}
	if got, err := resultAddrs(ipamRes, workload.DualStack); err != nil || got != addrs {
		t.Errorf("resultAddrs = %+v, %v", got, err)
	}
	ipamRes.IPs = ipamRes.IPs[:1]
	if _, err := resultAddrs(ipamRes, workload.DualStack); err == nil || !strings.Contains(err.Error(), "IPv4 and IPv6") {
		t.Errorf("resultAddrs without IPv6: %v", err)
	}
	if got, err := resultAddrs(ipamRes, workload.IPv4Only); err != nil || got.IPv4 != addrs.IPv4 {
		t.Errorf("resultAddrs IPv4 only = %+v, %v", got, err)
	}
}
