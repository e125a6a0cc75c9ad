package config

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
)

// RouterID resolves calico-node's CALICO_ROUTER_ID: empty means the node's
// IPv4 address (fallback), "hash" a stable ID derived from the node name
// (for nodes without IPv4), anything else must be an IPv4 address.
func RouterID(setting, nodeName string, fallback netip.Addr) (netip.Addr, error) {
	switch setting {
	case "":
		if !fallback.Is4() {
			// As calico-node: its BIRD config would have no router ID.
			return netip.Addr{}, fmt.Errorf("CALICO_ROUTER_ID: unset, and the node has no IPv4 address to use as its BGP router ID (4 bytes, IPv6 sessions too); on an IPv6-only node set CALICO_ROUTER_ID=hash or an IPv4 address")
		}
		return fallback, nil
	case "hash":
		return HashRouterID(nodeName), nil
	}
	a, err := netip.ParseAddr(setting)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("CALICO_ROUTER_ID: %q is neither an IPv4 address nor \"hash\"", setting)
	}
	return a, nil
}

// HashRouterID is Calico's router ID for CALICO_ROUTER_ID=hash: the first
// four bytes of the SHA-256 of the node name, moved out of the multicast
// and reserved ranges (224.0.0.0 and up) that BGP refuses, so a node keeps
// the same ID as under calico-node.
func HashRouterID(nodeName string) netip.Addr {
	sum := sha256.Sum256([]byte(nodeName))
	b := [4]byte(sum[:4])
	if b[0] > 223 {
		b[0] -= 32
	}
	return netip.AddrFrom4(b)
}
