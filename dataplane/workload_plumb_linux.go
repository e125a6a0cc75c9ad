//go:build linux

package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/petrel-net/petrel/internal/nlretry"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Add plumbs w, Calico's way, and returns the host-side interface name.
// It is idempotent: what is already right is left alone, what differs (an
// address, a route, the MTU) is fixed. If it fails, what this call created
// is removed again.
func (p *Plumber) Add(ctx context.Context, w Workload) (string, error) {
	w, err := w.normalized()
	if err != nil {
		return "", err
	}
	hostIf := HostVethName(w.Namespace, w.Pod)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("workload %s/%s: %w", w.Namespace, w.Pod, err)
	}
	pod, err := p.openPodNS(w.NetNS)
	if err != nil {
		return "", fmt.Errorf("workload %s/%s: %w", w.Namespace, w.Pod, err)
	}
	defer pod.close()

	a := &workloadAdd{p: p, w: w, hostIf: hostIf, pod: pod}
	if err := a.run(ctx); err != nil {
		a.undo()
		return "", fmt.Errorf("workload %s/%s (%s): %w", w.Namespace, w.Pod, hostIf, err)
	}
	return hostIf, nil
}

// workloadAdd is one Add call: what it has done so far, to undo on failure.
type workloadAdd struct {
	p      *Plumber
	w      Workload
	hostIf string
	pod    *workloadPodNS

	created     bool            // the veth pair is new
	addedRoutes []netlink.Route // host routes added to a pre-existing veth
}

func (a *workloadAdd) step(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if a.p.failpoint != nil {
		return a.p.failpoint(name)
	}
	return nil
}

func (a *workloadAdd) run(ctx context.Context) error {
	hl, pl, err := a.ensureVeth()
	if err != nil {
		return err
	}
	if err := a.step(ctx, "veth"); err != nil {
		return err
	}
	if err := a.configureHostLink(hl); err != nil {
		return err
	}
	if err := a.step(ctx, "host-link"); err != nil {
		return err
	}
	if err := a.configurePod(pl); err != nil {
		return err
	}
	if err := a.step(ctx, "pod"); err != nil {
		return err
	}
	if err := a.ensureHostRoutes(hl); err != nil {
		return err
	}
	return a.step(ctx, "host-routes")
}

// ensureVeth finds this workload's veth pair, or creates it. A host veth of
// this name whose peer is not the pod's eth0 is stale (a previous sandbox of
// the same pod) and is replaced, as Calico does.
func (a *workloadAdd) ensureVeth() (netlink.Link, netlink.Link, error) {
	p := a.p
	hl, err := workloadLinkByName(p.host, a.hostIf)
	if err != nil {
		return nil, nil, err
	}
	pl, err := workloadLinkByName(a.pod.h, WorkloadPodIfName)
	if err != nil {
		return nil, nil, err
	}
	if hl != nil {
		if pl != nil && p.isPair(a.pod, hl, pl) {
			return hl, pl, nil
		}
		if _, ok := hl.(*netlink.Veth); !ok {
			return nil, nil, fmt.Errorf("host link %s exists and is a %s, not a veth", a.hostIf, hl.Type())
		}
		p.log.Info("replacing stale host veth", "namespace", a.w.Namespace, "pod", a.w.Pod, "ifname", a.hostIf)
		if err := p.host.LinkDel(hl); err != nil {
			return nil, nil, fmt.Errorf("delete stale host veth %s: %w", a.hostIf, err)
		}
		if pl, err = workloadLinkByName(a.pod.h, WorkloadPodIfName); err != nil {
			return nil, nil, err
		}
	}
	if pl != nil {
		return nil, nil, fmt.Errorf("pod netns %s already has an %s that is not this workload's veth", a.w.NetNS, WorkloadPodIfName)
	}

	la := netlink.NewLinkAttrs()
	la.Name = a.hostIf
	la.MTU = a.w.MTU
	la.HardwareAddr = WorkloadHostMAC
	veth := netlink.NewVeth(la)
	veth.PeerName = WorkloadPodIfName
	veth.PeerNamespace = netlink.NsFd(a.pod.ns)
	if err := p.host.LinkAdd(veth); err != nil {
		return nil, nil, fmt.Errorf("create veth %s/%s: %w", a.hostIf, WorkloadPodIfName, err)
	}
	a.created = true
	if hl, err = workloadLinkByName(p.host, a.hostIf); err == nil && hl == nil {
		err = fmt.Errorf("host veth %s vanished after creation", a.hostIf)
	}
	if err != nil {
		return nil, nil, err
	}
	if pl, err = workloadLinkByName(a.pod.h, WorkloadPodIfName); err == nil && pl == nil {
		err = fmt.Errorf("pod %s vanished after creation", WorkloadPodIfName)
	}
	if err != nil {
		return nil, nil, err
	}
	return hl, pl, nil
}

func (a *workloadAdd) configureHostLink(hl netlink.Link) error {
	h := a.p.host
	if !bytes.Equal(hl.Attrs().HardwareAddr, WorkloadHostMAC) {
		if err := h.LinkSetHardwareAddr(hl, WorkloadHostMAC); err != nil {
			return fmt.Errorf("set MAC of %s: %w", a.hostIf, err)
		}
	}
	if hl.Attrs().MTU != a.w.MTU {
		if err := h.LinkSetMTU(hl, a.w.MTU); err != nil {
			return fmt.Errorf("set MTU of %s: %w", a.hostIf, err)
		}
	}
	// Sysctls before the link comes up, so IPv6 never runs DAD or takes
	// router advertisements on it.
	if err := a.p.writeSysctls(workloadHostSysctls(a.hostIf, a.w.IPv4.IsValid(), a.w.IPv6.IsValid())); err != nil {
		return err
	}
	if hl.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(hl); err != nil {
			return fmt.Errorf("set %s up: %w", a.hostIf, err)
		}
	}
	return nil
}

func (a *workloadAdd) configurePod(pl netlink.Link) error {
	h := a.pod.h
	lo, err := workloadLinkByName(h, "lo")
	if err != nil {
		return err
	}
	if lo != nil && lo.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set pod lo up: %w", err)
		}
	}
	if pl.Attrs().MTU != a.w.MTU {
		if err := h.LinkSetMTU(pl, a.w.MTU); err != nil {
			return fmt.Errorf("set MTU of pod %s: %w", WorkloadPodIfName, err)
		}
	}
	if pl.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(pl); err != nil {
			return fmt.Errorf("set pod %s up: %w", WorkloadPodIfName, err)
		}
	}
	if err := workloadEnsureAddr(h, pl, netlink.FAMILY_V4, a.w.IPv4); err != nil {
		return err
	}
	if err := workloadEnsureAddr(h, pl, netlink.FAMILY_V6, a.w.IPv6); err != nil {
		return err
	}
	return a.ensurePodRoutes(pl)
}

// workloadEnsureAddr makes want (if valid) the only global address of its
// family on the pod's eth0: IPv4 /32, IPv6 /128 without DAD.
func workloadEnsureAddr(h *netlink.Handle, pl netlink.Link, family int, want netip.Addr) error {
	addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return h.AddrList(pl, family) })
	if err != nil {
		return fmt.Errorf("list pod addresses: %w", err)
	}
	have := false
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLinkLocalUnicast() {
			continue // fe80::/64, the kernel's
		}
		ones, bits := ad.Mask.Size()
		if want.IsValid() && ip == want && ones == bits && ones == want.BitLen() {
			have = true
			continue
		}
		if err := h.AddrDel(pl, &ad); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove old pod address %s: %w", ad.IPNet, err)
		}
	}
	if have || !want.IsValid() {
		return nil
	}
	addr := &netlink.Addr{IPNet: workloadHostNet(want)}
	if want.Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(pl, addr); err != nil {
		return fmt.Errorf("add pod address %s: %w", addr.IPNet, err)
	}
	return nil
}

// ensurePodRoutes installs `169.254.1.1 dev eth0 scope link` and `default
// via 169.254.1.1 dev eth0` (IPv6: `default via fe80::ecee:eeff:feee:eeee
// dev eth0`), and drops the default route of a family the workload no
// longer has.
func (a *workloadAdd) ensurePodRoutes(pl netlink.Link) error {
	h := a.pod.h
	routes, err := a.pod.routesVia(pl)
	if err != nil {
		return err
	}
	for _, want := range workloadPodRoutes(pl.Attrs().Index, a.w) {
		if workloadFindRoute(routes, want, false) {
			continue
		}
		if err := h.RouteReplace(&want); err != nil {
			return fmt.Errorf("add pod route %s: %w", workloadRouteString(want), err)
		}
	}
	for _, r := range routes {
		if !workloadIsDefault(r.Dst) || r.Gw == nil {
			continue
		}
		gw, _ := netip.AddrFromSlice(r.Gw)
		gw = gw.Unmap()
		if (gw == WorkloadGatewayV4 && !a.w.IPv4.IsValid()) || (gw == WorkloadGatewayV6 && !a.w.IPv6.IsValid()) {
			if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("remove pod route %s: %w", workloadRouteString(r), err)
			}
		}
	}
	return nil
}

// ensureHostRoutes installs the workload's host routes and removes routes
// of the same protocol via this veth to addresses it no longer has. Routes
// of other protocols are never touched.
func (a *workloadAdd) ensureHostRoutes(hl netlink.Link) error {
	h := a.p.host
	routes, err := a.p.hostRoutesVia(hl)
	if err != nil {
		return err
	}
	wanted := workloadHostRoutes(hl.Attrs().Index, a.w)
	for _, r := range routes {
		if int(r.Protocol) != a.w.RouteProtocol {
			continue
		}
		keep := false
		for _, want := range wanted {
			if workloadSameRoute(r, want, true) {
				keep = true
			}
		}
		if keep {
			continue
		}
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("remove old host route %s: %w", workloadRouteString(r), err)
		}
	}
	for _, want := range wanted {
		if workloadFindRoute(routes, want, true) {
			continue
		}
		if err := h.RouteReplace(&want); err != nil {
			return fmt.Errorf("add host route %s: %w", workloadRouteString(want), err)
		}
		a.addedRoutes = append(a.addedRoutes, want)
	}
	return nil
}
