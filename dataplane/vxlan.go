package dataplane

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/petrel-net/petrel/internal/nlretry"
)

// VXLAN defaults, Calico's. A node has one device per family of pools,
// each on that family's underlay: vxlan.calico over IPv4, vxlan-v6.calico
// over IPv6, with the same VNI and port.
const (
	VXLANDevice     = "vxlan.calico"
	VXLANDeviceV6   = "vxlan-v6.calico"
	VXLANVNI        = 4096
	VXLANPort       = 4789
	VXLANOverhead   = 50 // IPv4 underlay
	VXLANOverheadV6 = 70 // IPv6 underlay: a 40-byte header instead of 20
	// RouteProtocol marks the dataplane's routes (workload /32s, VXLAN
	// routes), as felix's 80 does: distinct from kernel sync's 12, so each
	// owner only ever touches its own.
	RouteProtocol = 80
)

// VTEPMAC is Calico's VXLAN MAC for a node: 0x66 then the first five bytes
// of sha1(node name). Deterministic, so a restarted node keeps its MAC.
func VTEPMAC(node string) net.HardwareAddr {
	sum := sha1.Sum([]byte(node))
	return net.HardwareAddr{0x66, sum[0], sum[1], sum[2], sum[3], sum[4]}
}

// VTEPMACV6 is Calico's MAC for a node's IPv6 VXLAN device (Felix's
// vtepMACForHost): VTEPMAC of "<node>-v6", so the two devices differ.
func VTEPMACV6(node string) net.HardwareAddr { return VTEPMAC(node + "-v6") }

// VXLANDeviceFor is the device that carries pools of underlay's family.
func VXLANDeviceFor(underlay netip.Addr) string {
	if underlay.Is6() {
		return VXLANDeviceV6
	}
	return VXLANDevice
}

// Encapsulate says whether traffic to a node at remote goes through the
// tunnel for a pool's vxlanMode or ipipMode: Always, CrossSubnet (only when
// remote is outside our subnet), or Never.
func Encapsulate(mode string, ourSubnet netip.Prefix, remote netip.Addr) bool {
	switch mode {
	case "Always":
		return true
	case "CrossSubnet":
		return !ourSubnet.Masked().Contains(remote)
	}
	return false
}

// VXLANConfig is this node's tunnel endpoint for one family.
type VXLANConfig struct {
	// Underlay is the node's own address: the VTEP source, and it decides
	// the parent interface and the family: an IPv6 underlay makes
	// vxlan-v6.calico, whose tunnel address and remotes are IPv6 too.
	Underlay   netip.Addr
	TunnelAddr netip.Addr
	MAC        net.HardwareAddr
	MTU        int // 0 = parent MTU - 50 (IPv4), - 70 (IPv6)
}

// Remote is another node reached through the tunnel, with the blocks that
// are routed to it through the tunnel.
type Remote struct {
	Node       string
	Underlay   netip.Addr
	TunnelAddr netip.Addr
	MAC        net.HardwareAddr
	Blocks     []netip.Prefix
}

// VXLAN owns one VXLAN device (vxlan.calico, or vxlan-v6.calico for an
// IPv6 underlay) and, for every remote node, its neighbour entry, its FDB
// entry and the routes of its blocks (`via <tunnel IP> dev <device>
// onlink`, protocol 80). Sync is a reconciler: it computes what should
// exist, diffs against the kernel and changes only the difference.
type VXLAN struct {
	h      *netlink.Handle
	w      tunnelWriter // h; a counter in tests
	cfg    VXLANConfig
	device string
	family int // of the underlay, the tunnel address and the routes
}

// tunnelWriter is what Sync writes the remotes' entries and routes through.
type tunnelWriter interface {
	NeighSet(*netlink.Neigh) error
	NeighDel(*netlink.Neigh) error
	RouteReplace(*netlink.Route) error
	RouteDel(*netlink.Route) error
}

// NewVXLAN works in the current network namespace.
func NewVXLAN(cfg VXLANConfig) (*VXLAN, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	return &VXLAN{h: h, w: h, cfg: cfg, device: VXLANDeviceFor(cfg.Underlay), family: familyOf(cfg.Underlay)}, nil
}

func (v *VXLAN) Close() { v.h.Close() }

// Device is the name of the device this VXLAN owns.
func (v *VXLAN) Device() string { return v.device }

// familyOf is a's netlink address family.
func familyOf(a netip.Addr) int {
	if a.Is6() {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// ensureDevice creates or corrects the device and its address.
func (v *VXLAN) ensureDevice() (netlink.Link, error) {
	parent, err := v.parent()
	if err != nil {
		return nil, err
	}
	mtu := v.cfg.MTU
	if mtu == 0 {
		mtu = parent.Attrs().MTU - VXLANOverhead
		if v.family == unix.AF_INET6 {
			mtu = parent.Attrs().MTU - VXLANOverheadV6
		}
	}
	want := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: v.device, MTU: mtu, HardwareAddr: v.cfg.MAC},
		VxlanId:      VXLANVNI,
		VtepDevIndex: parent.Attrs().Index,
		SrcAddr:      v.cfg.Underlay.AsSlice(),
		Port:         VXLANPort,
		Learning:     false,
	}
	link, err := v.h.LinkByName(v.device)
	if err == nil {
		if vx, ok := link.(*netlink.Vxlan); !ok || vx.VxlanId != VXLANVNI || vx.VtepDevIndex != parent.Attrs().Index || vx.Port != VXLANPort {
			// A device with our name but another shape: replace it.
			if err := v.h.LinkDel(link); err != nil {
				return nil, fmt.Errorf("replace %s: %w", v.device, err)
			}
			link = nil
		}
	}
	if link == nil || err != nil {
		if err := v.h.LinkAdd(want); err != nil {
			return nil, fmt.Errorf("create %s: %w", v.device, err)
		}
		if link, err = v.h.LinkByName(v.device); err != nil {
			return nil, err
		}
	}
	if link.Attrs().MTU != mtu {
		if err := v.h.LinkSetMTU(link, mtu); err != nil {
			return nil, err
		}
	}
	if !slices.Equal(link.Attrs().HardwareAddr, v.cfg.MAC) {
		if err := v.h.LinkSetHardwareAddr(link, v.cfg.MAC); err != nil {
			return nil, err
		}
	}
	if err := syncDeviceAddr(v.h, link, v.family, v.cfg.TunnelAddr); err != nil {
		return nil, err
	}
	return link, v.h.LinkSetUp(link)
}

// syncDeviceAddr makes tunnel (as a /32 or /128) the device's only
// address of family; none when tunnel is the zero Addr. IPv6 link-local
// addresses are the kernel's and stay.
func syncDeviceAddr(h *netlink.Handle, link netlink.Link, family int, tunnel netip.Addr) error {
	addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return h.AddrList(link, family) })
	if err != nil {
		return err
	}
	addrs = slices.DeleteFunc(addrs, func(a netlink.Addr) bool { return addrOf(a.IP).IsLinkLocalUnicast() })
	for _, a := range addrs {
		if addrOf(a.IP) != tunnel {
			_ = h.AddrDel(link, &a)
		}
	}
	if !tunnel.IsValid() || slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return addrOf(a.IP) == tunnel }) {
		return nil
	}
	if err := h.AddrAdd(link, hostAddr(tunnel)); err != nil {
		return fmt.Errorf("%s address %s: %w", link.Attrs().Name, tunnel, err)
	}
	return nil
}

// hostAddr is the request for a tunnel address: a /32 or /128 on the
// device; an IPv6 one without duplicate address detection, so it is
// usable as a source at once rather than tentative for a second.
func hostAddr(a netip.Addr) *netlink.Addr {
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}}
	if a.Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	return addr
}

// parent is the interface holding the underlay address.
func (v *VXLAN) parent() (netlink.Link, error) { return parentOf(v.h, v.cfg.Underlay, v.device) }

// parentOf is the interface holding the node's underlay address: a
// tunnel device's MTU is that interface's less the encapsulation.
func parentOf(h *netlink.Handle, underlay netip.Addr, device string) (netlink.Link, error) {
	addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return h.AddrList(nil, familyOf(underlay)) })
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == underlay {
			return h.LinkByIndex(a.LinkIndex)
		}
	}
	return nil, fmt.Errorf("%s: no interface has the node address %s", device, underlay)
}

// Sync makes the tunnel state equal to remotes. It reads what the kernel
// holds on the device and writes only the difference: an entry or route
// that is already right is left alone, one that is missing or wrong (also
// when removed or changed behind petrel's back) is written, and one that no
// remote needs any more is removed.
func (v *VXLAN) Sync(remotes []Remote) error {
	link, err := v.ensureDevice()
	if err != nil {
		return err
	}
	idx := link.Attrs().Index
	want := desiredTunnel(remotes)
	return errors.Join(v.syncARP(idx, want.arp), v.syncFDB(idx, want.fdb), v.syncRoutes(idx, want.routes))
}

// tunnelState is what Sync keeps on the device for the remotes.
type tunnelState struct {
	arp    map[netip.Addr]net.HardwareAddr // remote tunnel address -> its VTEP MAC (ARP or NDP)
	fdb    map[string]vtep                 // VTEP MAC -> where it lives
	routes map[netip.Prefix]netip.Addr     // remote block -> tunnel address via
}

type vtep struct {
	mac      net.HardwareAddr
	underlay netip.Addr
}

func desiredTunnel(remotes []Remote) tunnelState {
	want := tunnelState{arp: map[netip.Addr]net.HardwareAddr{}, fdb: map[string]vtep{}, routes: map[netip.Prefix]netip.Addr{}}
	for _, r := range remotes {
		if !r.TunnelAddr.IsValid() || r.MAC == nil {
			continue
		}
		want.arp[r.TunnelAddr] = r.MAC
		want.fdb[r.MAC.String()] = vtep{mac: r.MAC, underlay: r.Underlay}
		for _, b := range r.Blocks {
			want.routes[b.Masked()] = r.TunnelAddr
		}
	}
	return want
}

// syncARP keeps a permanent neighbour entry (ARP, or NDP on the IPv6
// device) for each remote tunnel address.
func (v *VXLAN) syncARP(idx int, want map[netip.Addr]net.HardwareAddr) error {
	have, _ := nlretry.Dump(func() ([]netlink.Neigh, error) { return v.h.NeighList(idx, v.family) })
	return applyDiff(want, have,
		func(n netlink.Neigh) (netip.Addr, bool) { return addrOf(n.IP), n.State == netlink.NUD_PERMANENT },
		func(mac net.HardwareAddr, n netlink.Neigh) bool { return slices.Equal(n.HardwareAddr, mac) },
		func(ip netip.Addr, mac net.HardwareAddr) error {
			return v.w.NeighSet(&netlink.Neigh{LinkIndex: idx, State: netlink.NUD_PERMANENT, Type: unix.RTN_UNICAST,
				IP: ip.AsSlice(), HardwareAddr: mac})
		},
		v.w.NeighDel)
}

// syncFDB keeps a permanent FDB entry for each remote VTEP MAC: the
// underlay address its frames are sent to.
func (v *VXLAN) syncFDB(idx int, want map[string]vtep) error {
	have, _ := nlretry.Dump(func() ([]netlink.Neigh, error) { return v.h.NeighList(idx, unix.AF_BRIDGE) })
	return applyDiff(want, have,
		func(n netlink.Neigh) (string, bool) {
			return n.HardwareAddr.String(), n.State == netlink.NUD_PERMANENT && n.HardwareAddr != nil && n.IP != nil
		},
		func(w vtep, n netlink.Neigh) bool { return addrOf(n.IP) == w.underlay },
		func(_ string, w vtep) error {
			return v.w.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
				Flags: netlink.NTF_SELF, IP: w.underlay.AsSlice(), HardwareAddr: w.mac})
		},
		v.w.NeighDel)
}

// syncRoutes keeps `<block> via <tunnel IP> dev <device> onlink`
// (protocol 80) for each remote block.
func (v *VXLAN) syncRoutes(idx int, want map[netip.Prefix]netip.Addr) error {
	return syncOnlinkRoutes(v.h, v.w, idx, v.family, want)
}

// ipv6DefaultMetric is the metric the kernel gives an IPv6 route added
// without one (IP6_RT_PRIO_USER); an IPv4 route keeps 0.
const ipv6DefaultMetric = 1024

// syncOnlinkRoutes keeps `<prefix> via <gw> dev <idx> onlink` (protocol
// 80) for each entry of want, and removes the device's other protocol-80
// routes of family: the route shape of every tunnel.
func syncOnlinkRoutes(h *netlink.Handle, w tunnelWriter, idx, family int, want map[netip.Prefix]netip.Addr) error {
	have, _ := nlretry.Dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(family, &netlink.Route{LinkIndex: idx, Protocol: RouteProtocol}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	})
	return applyDiff(want, have,
		prefixOfRoute,
		func(gw netip.Addr, r netlink.Route) bool {
			defaultMetric := r.Priority == 0 || family == unix.AF_INET6 && r.Priority == ipv6DefaultMetric
			return addrOf(r.Gw) == gw && r.Flags&int(netlink.FLAG_ONLINK) != 0 && defaultMetric
		},
		func(p netip.Prefix, gw netip.Addr) error {
			if err := w.RouteReplace(onlinkRoute(idx, p, gw)); err != nil {
				return fmt.Errorf("route %s via %s: %w", p, gw, err)
			}
			return nil
		},
		w.RouteDel)
}

// onlinkRoute is the request for `<p> via <gw> dev <idx> onlink proto 80`
// in the main table: the gateway is the far end of a tunnel, not a
// neighbour on a subnet of the device, hence onlink.
func onlinkRoute(idx int, p netip.Prefix, gw netip.Addr) *netlink.Route {
	return &netlink.Route{
		LinkIndex: idx, Dst: ipNet(p), Gw: gw.AsSlice(), Flags: int(netlink.FLAG_ONLINK),
		Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN,
	}
}

// applyDiff makes the kernel's entries of one kind (have, from a dump;
// empty when the dump failed, and then everything wanted is written)
// equal to want. key names an entry and says whether it is Sync's to
// manage at all; right says whether it already is what its key wants.
// Missing and wrong entries are set first, then the unwanted ones deleted.
func applyDiff[K comparable, V, E any](want map[K]V, have []E, key func(E) (K, bool), right func(V, E) bool,
	set func(K, V) error, del func(*E) error) error {
	done := map[K]bool{}
	var stale []E
	for _, e := range have {
		k, ours := key(e)
		if !ours {
			continue
		}
		if v, wanted := want[k]; !wanted {
			stale = append(stale, e)
		} else if right(v, e) {
			done[k] = true
		}
	}
	var errs []error
	for k, v := range want {
		if !done[k] {
			errs = append(errs, set(k, v))
		}
	}
	for i := range stale {
		errs = append(errs, del(&stale[i]))
	}
	return errors.Join(errs...)
}

// Remove deletes the device (and with it every neighbour, FDB entry and
// route through it): the node no longer uses VXLAN.
func (v *VXLAN) Remove() error {
	link, err := v.h.LinkByName(v.device)
	if err != nil {
		return nil
	}
	return v.h.LinkDel(link)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// addrOf is ip as a netip.Addr (IPv4 unmapped); the zero Addr if none.
func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// prefixOfRoute is r's destination; false when it has none (a default).
func prefixOfRoute(r netlink.Route) (netip.Prefix, bool) { return prefixOf(r.Dst) }

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}
