package dataplane

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Calico's workload plumbing constants.
const (
	// WorkloadVethPrefix starts every host-side workload interface name.
	WorkloadVethPrefix = "cali"
	// WorkloadPodIfName is the pod side of the veth pair.
	WorkloadPodIfName = "eth0"
	// WorkloadDefaultMTU is used when Workload.MTU is 0.
	WorkloadDefaultMTU = 1500
	// WorkloadDefaultRouteProtocol is used when Workload.RouteProtocol is
	// 0: RTPROT_BOOT, what Calico's CNI plugin uses for workload routes.
	WorkloadDefaultRouteProtocol = 3
)

var (
	// WorkloadHostMAC is the MAC of every host-side workload veth. Pods
	// resolve their gateway (169.254.1.1, answered by proxy ARP) to it.
	WorkloadHostMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
	// WorkloadGatewayV4 is the pod's IPv4 next hop; nothing owns it, the
	// host veth answers ARP for it by proxy ARP.
	WorkloadGatewayV4 = netip.MustParseAddr("169.254.1.1")
	// WorkloadGatewayV6 is the pod's IPv6 next hop: the EUI-64 link-local
	// address of the host veth, derived from WorkloadHostMAC.
	WorkloadGatewayV6 = netip.MustParseAddr("fe80::ecee:eeff:feee:eeee")
)

// Workload is one pod's plumbing.
type Workload struct {
	Namespace, Pod string     // Kubernetes namespace and pod name
	NetNS          string     // path of the pod's network namespace (/var/run/netns/X or /proc/PID/ns/net)
	IPv4           netip.Addr // from IPAM (invalid = none)
	IPv6           netip.Addr // optional (invalid = none)
	MTU            int        // 0 = 1500 (the caller passes parent MTU - 50 for VXLAN)
	// RouteProtocol marks the host route; 0 = 3 (Calico's default). petrel
	// passes its dataplane protocol (80).
	RouteProtocol int
}

// HostVethName is Calico's host-side interface name for a pod: "cali" + the
// first 11 hex characters of sha1("<namespace>.<pod>"), 15 characters, the
// kernel's IFNAMSIZ-1 limit.
func HostVethName(namespace, pod string) string {
	sum := sha1.Sum([]byte(namespace + "." + pod))
	return WorkloadVethPrefix + hex.EncodeToString(sum[:])[:11]
}

// normalized checks w and fills in defaults.
func (w Workload) normalized() (Workload, error) {
	if w.Namespace == "" || w.Pod == "" {
		return w, errors.New("workload: namespace and pod are required")
	}
	if w.NetNS == "" {
		return w, fmt.Errorf("workload %s/%s: pod netns path is required", w.Namespace, w.Pod)
	}
	if !w.IPv4.IsValid() && !w.IPv6.IsValid() {
		return w, fmt.Errorf("workload %s/%s: no IP address", w.Namespace, w.Pod)
	}
	if w.IPv4.IsValid() {
		w.IPv4 = w.IPv4.Unmap()
		if !w.IPv4.Is4() || w.IPv4.IsUnspecified() || w.IPv4.IsMulticast() {
			return w, fmt.Errorf("workload %s/%s: bad IPv4 address %s", w.Namespace, w.Pod, w.IPv4)
		}
	}
	if w.IPv6.IsValid() {
		if !w.IPv6.Is6() || w.IPv6.Is4In6() || w.IPv6.IsUnspecified() || w.IPv6.IsMulticast() || w.IPv6.IsLinkLocalUnicast() {
			return w, fmt.Errorf("workload %s/%s: bad IPv6 address %s", w.Namespace, w.Pod, w.IPv6)
		}
		w.IPv6 = w.IPv6.WithZone("")
	}
	if w.MTU == 0 {
		w.MTU = WorkloadDefaultMTU
	}
	if w.MTU < 68 || w.MTU > 65535 {
		return w, fmt.Errorf("workload %s/%s: bad MTU %d", w.Namespace, w.Pod, w.MTU)
	}
	if w.RouteProtocol == 0 {
		w.RouteProtocol = WorkloadDefaultRouteProtocol
	}
	if w.RouteProtocol < 0 || w.RouteProtocol > 255 {
		return w, fmt.Errorf("workload %s/%s: bad route protocol %d", w.Namespace, w.Pod, w.RouteProtocol)
	}
	return w, nil
}

// workloadHostSysctls are the per-interface sysctls Calico sets on the host veth,
// as paths under /proc/sys and their values.
func workloadHostSysctls(ifName string, v4, v6 bool) [][2]string {
	var s [][2]string
	if v4 {
		s = append(s,
			[2]string{"net/ipv4/conf/" + ifName + "/proxy_arp", "1"},
			[2]string{"net/ipv4/neigh/" + ifName + "/proxy_delay", "0"},
			[2]string{"net/ipv4/conf/" + ifName + "/forwarding", "1"},
			[2]string{"net/ipv4/conf/" + ifName + "/route_localnet", "1"},
		)
	}
	if v6 {
		s = append(s,
			[2]string{"net/ipv6/conf/" + ifName + "/proxy_ndp", "1"},
			[2]string{"net/ipv6/conf/" + ifName + "/accept_dad", "0"},
			[2]string{"net/ipv6/conf/" + ifName + "/accept_ra", "0"},
			[2]string{"net/ipv6/conf/" + ifName + "/forwarding", "1"},
		)
	}
	return s
}
