package bench

import (
	"fmt"
	"strings"
)

// frrLibexec is where Debian's frr package puts the daemons that
// harness.StartFRR runs.
const frrLibexec = "/usr/lib/frr"

// frrNodeConfig is FRR configured like the BIRD node (birdNodeConfig): iBGP
// to every peer with graceful restart and calico's connect retry, routes
// installed into the kernel by zebra (protocol bgp, 186), and only kernel
// routes inside s.Export advertised (`redistribute kernel` through a
// prefix list, as BIRD's `learn` plus its export filter), with next hop
// self; or, with s.ClusterID, a route reflector keeping its clients' next
// hops. The peers share one peer group so that 500 of them stay readable.
func frrNodeConfig(hostname string, s nodeSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults traditional\nhostname %s\nno ipv6 forwarding\n", hostname)
	if len(s.Export) > 0 {
		for i, p := range s.Export {
			fmt.Fprintf(&b, "ip prefix-list bench_export seq %d permit %s le 32\n", (i+1)*5, p)
		}
		b.WriteString("route-map bench_export permit 10\n match ip address prefix-list bench_export\nexit\n")
	}
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp network import-check\n bgp graceful-restart\n", benchAS, s.RouterID)
	if s.ClusterID != "" {
		fmt.Fprintf(&b, " bgp cluster-id %s\n", s.ClusterID)
	}
	fmt.Fprintf(&b, " neighbor peers peer-group\n neighbor peers remote-as %d\n neighbor peers timers connect 5\n", benchAS)
	for _, p := range s.Peers {
		fmt.Fprintf(&b, " neighbor %s peer-group peers\n", p)
	}
	b.WriteString(" address-family ipv4 unicast\n")
	if len(s.Export) > 0 {
		b.WriteString("  redistribute kernel route-map bench_export\n")
	}
	if s.ClusterID != "" {
		b.WriteString("  neighbor peers route-reflector-client\n")
	} else {
		b.WriteString("  neighbor peers next-hop-self\n")
	}
	b.WriteString(" exit-address-family\nexit\n")
	return b.String()
}
