package datastore

import (
	"fmt"
	"net"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/petrel-net/petrel/selector"
)

// nameRE is what Calico (and Kubernetes) accept as a resource name.
var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// invalid builds the error every validation failure returns:
// `IPPool "default-ipv4-ippool": spec.cidr: "x" is not a CIDR`.
func invalid(o Object, field string, value any, problem string) error {
	if s, ok := value.(string); ok {
		value = strconv.Quote(s)
	}
	return fmt.Errorf("%s %q: %s: %v %s", o.Kind(), o.GetName(), field, value, problem)
}

func validateName(o Object) error {
	if n := o.GetName(); n == "" || len(n) > 253 || !nameRE.MatchString(n) {
		return invalid(o, "metadata.name", n, "is not a valid name (lower-case letters, digits, '-' and '.')")
	}
	return nil
}

func oneOf(o Object, field, value string, allowed ...string) error {
	if value == "" || slices.Contains(allowed, value) {
		return nil
	}
	return invalid(o, field, value, "must be one of "+strings.Join(allowed, ", "))
}

// firstError returns the first non-nil error: validation reports one
// problem at a time, the first in field order.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func checkCIDR(o Object, field, s string, wantMasked bool) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, invalid(o, field, s, "is not a CIDR")
	}
	if wantMasked && p != p.Masked() {
		return p, invalid(o, field, s, fmt.Sprintf("has host bits set (did you mean %s?)", p.Masked()))
	}
	return p, nil
}

func checkASN(o Object, field string, asn *uint32) error {
	if asn != nil && *asn == 0 {
		return invalid(o, field, 0, "is not an AS number (1-4294967295)")
	}
	return nil
}

func (n *Node) Validate() error {
	if err := validateName(n); err != nil {
		return err
	}
	if b := n.Spec.BGP; b != nil {
		if b.IPv4Address != "" {
			if p, err := parseAddrOrCIDR(b.IPv4Address); err != nil || !p.Addr().Is4() {
				return invalid(n, "spec.bgp.ipv4Address", b.IPv4Address, "is not an IPv4 address in CIDR form (like 10.0.0.5/24)")
			}
		}
		if b.IPv6Address != "" {
			if p, err := parseAddrOrCIDR(b.IPv6Address); err != nil || p.Addr().Is4() {
				return invalid(n, "spec.bgp.ipv6Address", b.IPv6Address, "is not an IPv6 address in CIDR form")
			}
		}
		if err := checkASN(n, "spec.bgp.asNumber", b.ASNumber); err != nil {
			return err
		}
		if id := b.RouteReflectorClusterID; id != "" {
			if a, err := netip.ParseAddr(id); err != nil || !a.Is4() {
				return invalid(n, "spec.bgp.routeReflectorClusterID", id, "is not a cluster id in IPv4 form (like 224.0.0.1)")
			}
		}
	}
	if s := n.Spec.IPv4VXLANTunnelAddr; s != "" {
		if a, err := netip.ParseAddr(s); err != nil || !a.Is4() {
			return invalid(n, "spec.ipv4VXLANTunnelAddr", s, "is not an IPv4 address")
		}
	}
	if s := n.Spec.IPv6VXLANTunnelAddr; s != "" {
		if a, err := netip.ParseAddr(s); err != nil || !a.Is6() || a.Is4In6() {
			return invalid(n, "spec.ipv6VXLANTunnelAddr", s, "is not an IPv6 address")
		}
	}
	for field, s := range map[string]string{"spec.vxlanTunnelMACAddr": n.Spec.VXLANTunnelMACAddr, "spec.vxlanTunnelMACAddrV6": n.Spec.VXLANTunnelMACAddrV6} {
		if _, err := net.ParseMAC(s); s != "" && err != nil {
			return invalid(n, field, s, "is not a MAC address")
		}
	}
	return nil
}

func (p *IPPool) Validate() error {
	if err := validateName(p); err != nil {
		return err
	}
	cidr, err := checkCIDR(p, "spec.cidr", p.Spec.CIDR, true)
	if err != nil {
		return err
	}
	if bs := p.Spec.BlockSize; bs != 0 {
		lo, hi := 20, 32
		if cidr.Addr().Is6() {
			lo, hi = 116, 128
		}
		if bs < lo || bs > hi {
			return invalid(p, "spec.blockSize", bs, fmt.Sprintf("must be %d-%d for this address family", lo, hi))
		}
		if bs < cidr.Bits() {
			return invalid(p, "spec.blockSize", bs, fmt.Sprintf("is larger than the pool %s", cidr))
		}
	}
	if err := firstError(
		oneOf(p, "spec.vxlanMode", p.Spec.VXLANMode, "Always", "CrossSubnet", "Never"),
		oneOf(p, "spec.ipipMode", p.Spec.IPIPMode, "Always", "CrossSubnet", "Never"),
	); err != nil {
		return err
	}
	if enc := func(m string) bool { return m != "" && m != "Never" }; enc(p.Spec.VXLANMode) && enc(p.Spec.IPIPMode) {
		return invalid(p, "spec.vxlanMode", p.Spec.VXLANMode, "cannot be enabled together with ipipMode "+p.Spec.IPIPMode)
	}
	for i, u := range p.Spec.AllowedUses {
		if err := oneOf(p, fmt.Sprintf("spec.allowedUses[%d]", i), u, "Workload", "Tunnel", "LoadBalancer"); err != nil {
			return err
		}
	}
	// As Calico: a Service address must never also be a pod's or a tunnel's.
	if slices.Contains(p.Spec.AllowedUses, "LoadBalancer") && len(p.Spec.AllowedUses) > 1 {
		return invalid(p, "spec.allowedUses", strings.Join(p.Spec.AllowedUses, ","), "LoadBalancer cannot be combined with another use")
	}
	return nil
}

func (b *IPAMBlock) Validate() error {
	if err := validateName(b); err != nil {
		return err
	}
	cidr, err := checkCIDR(b, "spec.cidr", b.Spec.CIDR, true)
	if err != nil {
		return err
	}
	if a := b.Spec.Affinity; a != nil && *a != "" && !strings.HasPrefix(*a, "host:") && !strings.HasPrefix(*a, "virtual:") {
		return invalid(b, "spec.affinity", *a, `must look like "host:<node>"`)
	}
	size := 1 << (cidr.Addr().BitLen() - cidr.Bits())
	if n := len(b.Spec.Allocations); n != 0 && n != size {
		return invalid(b, "spec.allocations", fmt.Sprintf("%d slots", n), fmt.Sprintf("must have one slot per address of %s (%d)", cidr, size))
	}
	for i, a := range b.Spec.Allocations {
		if a != nil && (*a < 0 || *a >= len(b.Spec.Attributes)) {
			return invalid(b, fmt.Sprintf("spec.allocations[%d]", i), *a, fmt.Sprintf("is not an index into the %d attributes", len(b.Spec.Attributes)))
		}
	}
	for i, o := range b.Spec.Unallocated {
		if o < 0 || o >= size {
			return invalid(b, fmt.Sprintf("spec.unallocated[%d]", i), o, fmt.Sprintf("is not an ordinal of %s (0-%d)", cidr, size-1))
		}
	}
	return nil
}

func (h *IPAMHandle) Validate() error {
	if err := validateName(h); err != nil {
		return err
	}
	if h.Spec.HandleID == "" {
		return invalid(h, "spec.handleID", "", "is required")
	}
	for cidr, n := range h.Spec.Block {
		if _, err := checkCIDR(h, "spec.block", cidr, true); err != nil {
			return err
		}
		if n < 0 {
			return invalid(h, "spec.block["+cidr+"]", n, "is negative")
		}
	}
	return nil
}

func (a *BlockAffinity) Validate() error {
	return firstError(
		validateName(a),
		oneOf(a, "spec.state", a.Spec.State, "pending", "confirmed", "pendingDeletion"),
		func() error {
			if a.Spec.Node == "" {
				return invalid(a, "spec.node", "", "is required")
			}
			return nil
		}(),
		func() error { _, err := checkCIDR(a, "spec.cidr", a.Spec.CIDR, true); return err }(),
		oneOf(a, "spec.deleted", a.Spec.Deleted, "true", "false"),
	)
}

func (c *IPAMConfig) Validate() error {
	if err := validateName(c); err != nil {
		return err
	}
	if c.Spec.MaxBlocksPerHost < 0 {
		return invalid(c, "spec.maxBlocksPerHost", c.Spec.MaxBlocksPerHost, "is negative")
	}
	return nil
}

func (p *BGPPeer) Validate() error {
	if err := validateName(p); err != nil {
		return err
	}
	s := p.Spec
	if s.LocalWorkloadSelector != "" && s.PeerIP == "" && s.PeerSelector == "" {
		return nil // Calico's workload peering has no peerIP; the mesh names it unsupported
	}
	if s.PeerIP == "" && s.PeerSelector == "" {
		return invalid(p, "spec.peerIP", "", "is required (or set spec.peerSelector)")
	}
	if s.PeerIP != "" {
		if _, _, err := ParsePeerIP(s.PeerIP); err != nil {
			return invalid(p, "spec.peerIP", s.PeerIP, "is not an IP address or address:port")
		}
		if s.ASNumber == 0 {
			return invalid(p, "spec.asNumber", 0, "is required with spec.peerIP")
		}
	}
	if s.PeerIP != "" && s.PeerSelector != "" {
		return invalid(p, "spec.peerSelector", s.PeerSelector, "cannot be used together with spec.peerIP")
	}
	if s.Node != "" && s.NodeSelector != "" {
		return invalid(p, "spec.nodeSelector", s.NodeSelector, "cannot be used together with spec.node")
	}
	return firstError(
		checkASN(p, "spec.localASNumber", s.LocalASNumber),
		oneOf(p, "spec.sourceAddress", s.SourceAddress, "UseNodeIP", "None"),
		oneOf(p, "spec.nextHopMode", s.NextHopMode, "Auto", "Self", "Keep"),
		oneOf(p, "spec.reversePeering", s.ReversePeering, "Auto", "Manual"),
		oneOf(p, "spec.failureDetectionMode", s.FailureDetectionMode, failureDetectionModes...),
		oneOf(p, "spec.restartMode", s.RestartMode, restartModes...),
	)
}

// Calico Enterprise's BGPPeer modes, also petrel's mesh settings.
var (
	failureDetectionModes = []string{"None", "BFDIfDirectlyConnected"}
	restartModes          = []string{"GracefulRestart", "LongLivedGracefulRestart"}
)

// ParsePeerIP splits Calico's peerIP, "10.0.0.1", "10.0.0.1:1179" or
// "[fd00::1]:1179"; port 0 means the default.
func ParsePeerIP(s string) (netip.Addr, uint16, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, 0, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	return ap.Addr(), ap.Port(), nil
}

func (c *BGPConfiguration) Validate() error {
	if err := validateName(c); err != nil {
		return err
	}
	if n := c.GetName(); n != "default" && !strings.HasPrefix(n, "node.") {
		return invalid(c, "metadata.name", n, `must be "default" or "node.<node name>"`)
	}
	if err := checkASN(c, "spec.asNumber", c.Spec.ASNumber); err != nil {
		return err
	}
	for field, blocks := range map[string][]ServiceIPBlock{
		"spec.serviceClusterIPs": c.Spec.ServiceClusterIPs, "spec.serviceExternalIPs": c.Spec.ServiceExternalIPs,
		"spec.serviceLoadBalancerIPs": c.Spec.ServiceLoadBalancerIPs,
	} {
		for i, b := range blocks {
			if _, err := checkCIDR(c, fmt.Sprintf("%s[%d].cidr", field, i), b.CIDR, false); err != nil {
				return err
			}
		}
	}
	return firstError(
		oneOf(c, "spec.bindMode", c.Spec.BindMode, "None", "NodeIP"),
		oneOf(c, "spec.logSeverityScreen", c.Spec.LogSeverityScreen, "Debug", "Info", "Warning", "Error", "Fatal"),
		oneOf(c, "spec.serviceLoadBalancerAggregation", c.Spec.ServiceLoadBalancerAggregation, "Enabled", "Disabled"),
		oneOf(c, "spec.nodeMeshFailureDetectionMode", c.Spec.NodeMeshFailureDetectionMode, failureDetectionModes...),
		oneOf(c, "spec.nodeMeshRestartMode", c.Spec.NodeMeshRestartMode, restartModes...),
	)
}

// Bounds of BFD timers: below 10 ms a Go timer on a busy node declares
// healthy peers dead; the protocol carries intervals in 32-bit
// microseconds and the multiplier in 8 bits.
const (
	minBFDInterval = 10 * time.Millisecond
	maxBFDInterval = time.Duration(1<<32-1) * time.Microsecond
)

func (c *BFDConfiguration) Validate() error {
	if err := validateName(c); err != nil {
		return err
	}
	if s := c.Spec.NodeSelector; s != "" {
		if _, err := selector.Parse(s); err != nil {
			return invalid(c, "spec.nodeSelector", s, fmt.Sprintf("is not a selector: %v", err))
		}
	}
	for i, in := range c.Spec.Interfaces {
		field := fmt.Sprintf("spec.interfaces[%d]", i)
		if _, err := path.Match(in.MatchPattern, ""); err != nil || in.MatchPattern == "" {
			return invalid(c, field+".matchPattern", in.MatchPattern, `is not an interface pattern (like "eth0", "eth*" or "*")`)
		}
		for _, iv := range []struct {
			name string
			d    *metav1.Duration
		}{{"minimumRecvInterval", in.MinimumRecvInterval}, {"minimumSendInterval", in.MinimumSendInterval}} {
			if name, d := iv.name, iv.d; d != nil && (d.Duration < minBFDInterval || d.Duration > maxBFDInterval) {
				return invalid(c, field+"."+name, d.Duration.String(), fmt.Sprintf("must be %s-%s", minBFDInterval, maxBFDInterval))
			}
		}
		if in.Multiplier < 0 || in.Multiplier > 255 {
			return invalid(c, field+".multiplier", in.Multiplier, "must be 1-255")
		}
	}
	return nil
}
