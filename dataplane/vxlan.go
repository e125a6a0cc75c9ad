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

// VXLAN defaults, Calico's.
const (
	VXLANDevice   = "vxlan.calico"
	VXLANVNI      = 4096
	VXLANPort     = 4789
	VXLANOverhead = 50 // IPv4 underlay
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

// Encapsulate says whether traffic to a node at remote goes through VXLAN
// for a pool's vxlanMode: Always, CrossSubnet (only when remote is outside
// our subnet), or Never.
func Encapsulate(mode string, ourSubnet netip.Prefix, remote netip.Addr) bool {
	switch mode {
	case "Always":
		return true
	case "CrossSubnet":
		return !ourSubnet.Masked().Contains(remote)
	}
	return false
}

// VXLANConfig is this node's tunnel endpoint.
type VXLANConfig struct {
	// Underlay is the node's own address: the VTEP source, and it decides
	// the parent interface.
	Underlay   netip.Addr
	TunnelAddr netip.Addr
	MAC        net.HardwareAddr
	MTU        int // 0 = parent MTU - 50
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

// VXLAN owns the vxlan.calico device and, for every remote node, its
// neighbour entry, its FDB entry and the routes of its blocks
// (`via <tunnel IP> dev vxlan.calico onlink`, protocol 80). Sync is a
// reconciler: it computes what should exist, diffs against the kernel and
// changes only the difference.
type VXLAN struct {
	h   *netlink.Handle
	w   tunnelWriter // h; a counter in tests
	cfg VXLANConfig
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
	return &VXLAN{h: h, w: h, cfg: cfg}, nil
}

func (v *VXLAN) Close() { v.h.Close() }

// ensureDevice creates or corrects vxlan.calico and its address.
func (v *VXLAN) ensureDevice() (netlink.Link, error) {
	parent, err := v.parent()
	if err != nil {
		return nil, err
	}
	mtu := v.cfg.MTU
	if mtu == 0 {
		mtu = parent.Attrs().MTU - VXLANOverhead
	}
	want := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: VXLANDevice, MTU: mtu, HardwareAddr: v.cfg.MAC},
		VxlanId:      VXLANVNI,
		VtepDevIndex: parent.Attrs().Index,
		SrcAddr:      v.cfg.Underlay.AsSlice(),
		Port:         VXLANPort,
		Learning:     false,
	}
	link, err := v.h.LinkByName(VXLANDevice)
	if err == nil {
		if vx, ok := link.(*netlink.Vxlan); !ok || vx.VxlanId != VXLANVNI || vx.VtepDevIndex != parent.Attrs().Index || vx.Port != VXLANPort {
			// A device with our name but another shape: replace it.
			if err := v.h.LinkDel(link); err != nil {
				return nil, fmt.Errorf("replace %s: %w", VXLANDevice, err)
			}
			link = nil
		}
	}
	if link == nil || err != nil {
		if err := v.h.LinkAdd(want); err != nil {
			return nil, fmt.Errorf("create %s: %w", VXLANDevice, err)
		}
		if link, err = v.h.LinkByName(VXLANDevice); err != nil {
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
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: v.cfg.TunnelAddr.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return v.h.AddrList(link, unix.AF_INET) })
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if !a.IP.Equal(addr.IP) {
			_ = v.h.AddrDel(link, &a)
		}
	}
	if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IP.Equal(addr.IP) }) {
		if err := v.h.AddrAdd(link, addr); err != nil {
			return nil, fmt.Errorf("%s address %s: %w", VXLANDevice, v.cfg.TunnelAddr, err)
		}
	}
	return link, v.h.LinkSetUp(link)
}

// parent is the interface holding the underlay address.
func (v *VXLAN) parent() (netlink.Link, error) {
	addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return v.h.AddrList(nil, unix.AF_INET) })
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == v.cfg.Underlay {
			return v.h.LinkByIndex(a.LinkIndex)
		}
	}
	return nil, fmt.Errorf("vxlan: no interface has the node address %s", v.cfg.Underlay)
}

// Sync makes the tunnel state equal to remotes.
func (v *VXLAN) Sync(remotes []Remote) error {
	link, err := v.ensureDevice()
	if err != nil {
		return err
	}
	idx := link.Attrs().Index
	var errs []error
	wantNeigh, wantFDB := map[string]bool{}, map[string]bool{}
	wantRoutes := map[netip.Prefix]netip.Addr{}
	for _, r := range remotes {
		if !r.TunnelAddr.IsValid() || r.MAC == nil {
			continue
		}
		wantNeigh[r.TunnelAddr.String()] = true
		wantFDB[r.MAC.String()] = true
		// ARP for the remote tunnel address, and where its MAC lives.
		errs = append(errs,
			v.w.NeighSet(&netlink.Neigh{LinkIndex: idx, State: netlink.NUD_PERMANENT, Type: unix.RTN_UNICAST,
				IP: r.TunnelAddr.AsSlice(), HardwareAddr: r.MAC}),
			v.w.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
				Flags: netlink.NTF_SELF, IP: r.Underlay.AsSlice(), HardwareAddr: r.MAC}))
		for _, b := range r.Blocks {
			wantRoutes[b.Masked()] = r.TunnelAddr
		}
	}
	for p, gw := range wantRoutes {
		err := v.w.RouteReplace(&netlink.Route{
			LinkIndex: idx, Dst: ipNet(p), Gw: gw.AsSlice(), Flags: int(netlink.FLAG_ONLINK),
			Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", p, gw, err))
		}
	}
	errs = append(errs, v.prune(link, wantNeigh, wantFDB, wantRoutes))
	return errors.Join(errs...)
}

// prune removes tunnel entries and routes of nodes that are gone.
func (v *VXLAN) prune(link netlink.Link, neigh, fdb map[string]bool, routes map[netip.Prefix]netip.Addr) error {
	var errs []error
	idx := link.Attrs().Index
	if ns, err := nlretry.Dump(func() ([]netlink.Neigh, error) { return v.h.NeighList(idx, unix.AF_INET) }); err == nil {
		for _, n := range ns {
			if n.State == netlink.NUD_PERMANENT && !neigh[n.IP.String()] {
				errs = append(errs, v.w.NeighDel(&n))
			}
		}
	}
	if ns, err := nlretry.Dump(func() ([]netlink.Neigh, error) { return v.h.NeighList(idx, unix.AF_BRIDGE) }); err == nil {
		for _, n := range ns {
			if n.State == netlink.NUD_PERMANENT && n.HardwareAddr != nil && !fdb[n.HardwareAddr.String()] && n.IP != nil {
				errs = append(errs, v.w.NeighDel(&n))
			}
		}
	}
	rs, err := nlretry.Dump(func() ([]netlink.Route, error) {
		return v.h.RouteListFiltered(unix.AF_INET, &netlink.Route{LinkIndex: idx, Protocol: RouteProtocol}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	})
	if err == nil {
		for _, r := range rs {
			if p, ok := prefixOf(r.Dst); ok {
				if _, keep := routes[p]; !keep {
					errs = append(errs, v.w.RouteDel(&r))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Remove deletes the device (and with it every neighbour, FDB entry and
// route through it): the node no longer uses VXLAN.
func (v *VXLAN) Remove() error {
	link, err := v.h.LinkByName(VXLANDevice)
	if err != nil {
		return nil
	}
	return v.h.LinkDel(link)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

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
