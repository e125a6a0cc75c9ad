//go:build linux

package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/petrel-net/petrel/internal/netnsrun"
	"github.com/petrel-net/petrel/internal/nlretry"
)

// Plumber adds and removes pods' veth plumbing. It is bound to one host
// network namespace: every host-side link, sysctl and route it touches lives
// there. It is safe for concurrent use (calls are serialized).
type Plumber struct {
	mu     sync.Mutex
	hostNS netns.NsHandle
	host   *netlink.Handle
	log    *slog.Logger

	// failpoint, for tests only: called after each step of Add; a non-nil
	// error aborts Add there, as a kernel error would.
	failpoint func(step string) error
}

// NewPlumber binds a Plumber to the network namespace at hostNetNS (a
// /var/run/netns/X or /proc/PID/ns/net path); "" means the calling thread's
// current namespace (what the daemon uses).
func NewPlumber(hostNetNS string) (*Plumber, error) {
	var (
		ns  netns.NsHandle
		err error
	)
	if hostNetNS == "" {
		runtime.LockOSThread()
		ns, err = netns.Get()
		runtime.UnlockOSThread()
	} else {
		ns, err = netns.GetFromPath(hostNetNS)
	}
	if err != nil {
		return nil, fmt.Errorf("open host netns %q: %w", hostNetNS, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink handle in host netns %q: %w", hostNetNS, err)
	}
	return &Plumber{
		hostNS: ns,
		host:   h,
		log:    slog.Default().With("component", "dataplane.workload"),
	}, nil
}

// Close releases the namespace handle and netlink sockets. It does not
// touch any plumbing.
func (p *Plumber) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.host != nil {
		p.host.Close()
		p.host = nil
	}
	if p.hostNS.IsOpen() {
		if err := p.hostNS.Close(); err != nil {
			return fmt.Errorf("close host netns: %w", err)
		}
		p.hostNS = netns.None()
	}
	return nil
}

// podNS is an opened pod namespace with a netlink handle in it.
type workloadPodNS struct {
	ns netns.NsHandle
	h  *netlink.Handle
}

func (p *Plumber) openPodNS(path string) (*workloadPodNS, error) {
	if p.host == nil {
		return nil, errors.New("plumber is closed")
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open pod netns %s: %w", path, err)
	}
	if ns.Equal(p.hostNS) {
		ns.Close()
		return nil, fmt.Errorf("pod netns %s is the host netns", path)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink handle in pod netns %s: %w", path, err)
	}
	return &workloadPodNS{ns: ns, h: h}, nil
}

func (n *workloadPodNS) close() {
	n.h.Close()
	n.ns.Close()
}

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

// undo removes what this Add created: the veth pair if it made it (the
// kernel drops its addresses and routes with it), else the host routes it
// added.
func (a *workloadAdd) undo() {
	log := a.p.log.With("namespace", a.w.Namespace, "pod", a.w.Pod, "ifname", a.hostIf)
	if a.created {
		l, err := workloadLinkByName(a.p.host, a.hostIf)
		if err == nil && l != nil {
			err = a.p.host.LinkDel(l)
		}
		if err != nil {
			log.Error("failed Add: cannot remove the veth it created", "err", err)
		}
		return
	}
	for _, r := range a.addedRoutes {
		if err := a.p.host.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			log.Error("failed Add: cannot remove a route it added", "dst", r.Dst, "err", err)
		}
	}
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

// isPair reports whether hl (host ns) and pl (pod ns) are the two ends of
// one veth.
func (p *Plumber) isPair(pod *workloadPodNS, hl, pl netlink.Link) bool {
	if _, ok := hl.(*netlink.Veth); !ok {
		return false
	}
	if _, ok := pl.(*netlink.Veth); !ok {
		return false
	}
	// IFLA_LINK of a veth is its peer's ifindex (in the peer's namespace).
	if hl.Attrs().ParentIndex != pl.Attrs().Index || pl.Attrs().ParentIndex != hl.Attrs().Index {
		return false
	}
	// IFLA_LINK_NETNSID names the peer's namespace, when the kernel
	// assigned the pair of namespaces ids (it does when a veth spans them).
	if id, err := p.host.GetNetNsIdByFd(int(pod.ns)); err == nil && id >= 0 && hl.Attrs().NetNsID >= 0 && id != hl.Attrs().NetNsID {
		return false
	}
	if id, err := pod.h.GetNetNsIdByFd(int(p.hostNS)); err == nil && id >= 0 && pl.Attrs().NetNsID >= 0 && id != pl.Attrs().NetNsID {
		return false
	}
	return true
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
	routes, err := nlretry.Dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL,
			&netlink.Route{LinkIndex: pl.Attrs().Index, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return fmt.Errorf("list pod routes: %w", err)
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

// workloadPodRoutes are the routes a pod gets, in the order they must be
// added (the gateway's link route before the default route via it).
func workloadPodRoutes(ifIndex int, w Workload) []netlink.Route {
	var rs []netlink.Route
	if w.IPv4.IsValid() {
		rs = append(rs,
			netlink.Route{LinkIndex: ifIndex, Dst: workloadHostNet(WorkloadGatewayV4), Scope: netlink.SCOPE_LINK, Table: unix.RT_TABLE_MAIN},
			netlink.Route{LinkIndex: ifIndex, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: WorkloadGatewayV4.AsSlice(), Table: unix.RT_TABLE_MAIN},
		)
	}
	if w.IPv6.IsValid() {
		rs = append(rs,
			netlink.Route{LinkIndex: ifIndex, Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, Gw: WorkloadGatewayV6.AsSlice(), Table: unix.RT_TABLE_MAIN},
		)
	}
	return rs
}

// workloadHostRoutes are the host routes to a workload: IP/32 (IPv6 /128)
// dev caliXXXX, scope link (IPv4), with the workload's route protocol.
func workloadHostRoutes(ifIndex int, w Workload) []netlink.Route {
	var rs []netlink.Route
	for _, ip := range []netip.Addr{w.IPv4, w.IPv6} {
		if !ip.IsValid() {
			continue
		}
		r := netlink.Route{
			LinkIndex: ifIndex,
			Dst:       workloadHostNet(ip),
			Protocol:  netlink.RouteProtocol(w.RouteProtocol),
			Table:     unix.RT_TABLE_MAIN,
		}
		if ip.Is4() {
			r.Scope = netlink.SCOPE_LINK
		}
		rs = append(rs, r)
	}
	return rs
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

func (p *Plumber) hostRoutesVia(hl netlink.Link) ([]netlink.Route, error) {
	routes, err := nlretry.Dump(func() ([]netlink.Route, error) {
		return p.host.RouteListFiltered(netlink.FAMILY_ALL,
			&netlink.Route{LinkIndex: hl.Attrs().Index, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list host routes via %s: %w", hl.Attrs().Name, err)
	}
	return routes, nil
}

// Del removes a workload's plumbing: the host veth (and with it the pod's
// eth0 and every address and route on either end). netnsPath may be empty
// or already gone; when it still exists, a veth eth0 there whose peer lives
// in the host namespace is removed too (Calico's CNI DEL does the same), in
// case the host end was renamed. Nothing there is an error.
func (p *Plumber) Del(ctx context.Context, namespace, pod, netnsPath string) error {
	if namespace == "" || pod == "" {
		return errors.New("workload: namespace and pod are required")
	}
	hostIf := HostVethName(namespace, pod)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("workload %s/%s: %w", namespace, pod, err)
	}
	if p.host == nil {
		return errors.New("plumber is closed")
	}
	hl, err := workloadLinkByName(p.host, hostIf)
	if err != nil {
		return fmt.Errorf("workload %s/%s: %w", namespace, pod, err)
	}
	if hl != nil {
		if _, ok := hl.(*netlink.Veth); !ok {
			return fmt.Errorf("workload %s/%s: host link %s is a %s, not a veth; not deleting it", namespace, pod, hostIf, hl.Type())
		}
		if err := p.host.LinkDel(hl); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("workload %s/%s: delete host veth %s: %w", namespace, pod, hostIf, err)
		}
	}
	if netnsPath == "" {
		return nil
	}
	podNS, err := p.openPodNS(netnsPath)
	if err != nil {
		// Gone already (the usual case after the sandbox died) or not a
		// namespace we may touch: the host side is what mattered.
		p.log.Debug("workload Del: pod netns not usable", "namespace", namespace, "pod", pod, "netns", netnsPath, "err", err)
		return nil
	}
	defer podNS.close()
	pl, err := workloadLinkByName(podNS.h, WorkloadPodIfName)
	if err != nil || pl == nil {
		return nil
	}
	if _, ok := pl.(*netlink.Veth); !ok {
		return nil
	}
	id, err := podNS.h.GetNetNsIdByFd(int(p.hostNS))
	if err != nil || id < 0 || pl.Attrs().NetNsID != id {
		return nil
	}
	if err := podNS.h.LinkDel(pl); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("workload %s/%s: delete pod %s: %w", namespace, pod, WorkloadPodIfName, err)
	}
	return nil
}

// Check reports whether w's plumbing is all in place (CNI CHECK): the veth
// pair, MAC, MTU, link states, sysctls, the pod's addresses and routes and
// the host routes. The error lists everything that is missing or wrong.
func (p *Plumber) Check(ctx context.Context, w Workload) error {
	w, err := w.normalized()
	if err != nil {
		return err
	}
	hostIf := HostVethName(w.Namespace, w.Pod)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("workload %s/%s: %w", w.Namespace, w.Pod, err)
	}
	if err := p.check(w, hostIf); err != nil {
		return fmt.Errorf("workload %s/%s (%s): %w", w.Namespace, w.Pod, hostIf, err)
	}
	return nil
}

func (p *Plumber) check(w Workload, hostIf string) error {
	pod, err := p.openPodNS(w.NetNS)
	if err != nil {
		return err
	}
	defer pod.close()
	hl, err := workloadLinkByName(p.host, hostIf)
	if err != nil {
		return err
	}
	if hl == nil {
		return fmt.Errorf("host veth %s missing", hostIf)
	}
	pl, err := workloadLinkByName(pod.h, WorkloadPodIfName)
	if err != nil {
		return err
	}
	if pl == nil {
		return fmt.Errorf("pod %s missing", WorkloadPodIfName)
	}
	if !p.isPair(pod, hl, pl) {
		return fmt.Errorf("host %s and pod %s are not one veth pair", hostIf, WorkloadPodIfName)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !bytes.Equal(hl.Attrs().HardwareAddr, WorkloadHostMAC) {
		bad("host %s MAC is %s, want %s", hostIf, hl.Attrs().HardwareAddr, WorkloadHostMAC)
	}
	for _, l := range []netlink.Link{hl, pl} {
		if l.Attrs().MTU != w.MTU {
			bad("%s MTU is %d, want %d", l.Attrs().Name, l.Attrs().MTU, w.MTU)
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			bad("%s is down", l.Attrs().Name)
		}
	}
	if lo, err := workloadLinkByName(pod.h, "lo"); err != nil {
		errs = append(errs, err)
	} else if lo == nil || lo.Attrs().Flags&net.FlagUp == 0 {
		bad("pod lo is not up")
	}
	got, err := p.readSysctls(workloadHostSysctls(hostIf, w.IPv4.IsValid(), w.IPv6.IsValid()))
	if err != nil {
		errs = append(errs, err)
	}
	for _, kv := range workloadHostSysctls(hostIf, w.IPv4.IsValid(), w.IPv6.IsValid()) {
		if v, ok := got[kv[0]]; ok && v != kv[1] {
			bad("sysctl %s is %s, want %s", kv[0], v, kv[1])
		}
	}

	for _, f := range []struct {
		family int
		want   netip.Addr
	}{{netlink.FAMILY_V4, w.IPv4}, {netlink.FAMILY_V6, w.IPv6}} {
		addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return pod.h.AddrList(pl, f.family) })
		if err != nil {
			errs = append(errs, fmt.Errorf("list pod addresses: %w", err))
			continue
		}
		found := false
		for _, ad := range addrs {
			ip, _ := netip.AddrFromSlice(ad.IP)
			ip = ip.Unmap()
			if ip.IsLinkLocalUnicast() {
				continue
			}
			ones, bits := ad.Mask.Size()
			if f.want.IsValid() && ip == f.want && ones == bits {
				found = true
				continue
			}
			bad("pod %s has unexpected address %s", WorkloadPodIfName, ad.IPNet)
		}
		if f.want.IsValid() && !found {
			bad("pod %s lacks address %s", WorkloadPodIfName, workloadHostNet(f.want))
		}
	}

	podRoutes, err := nlretry.Dump(func() ([]netlink.Route, error) {
		return pod.h.RouteListFiltered(netlink.FAMILY_ALL,
			&netlink.Route{LinkIndex: pl.Attrs().Index, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("list pod routes: %w", err))
	}
	for _, want := range workloadPodRoutes(pl.Attrs().Index, w) {
		if !workloadFindRoute(podRoutes, want, false) {
			bad("pod route missing: %s", workloadRouteString(want))
		}
	}
	hostRoutes, err := p.hostRoutesVia(hl)
	if err != nil {
		errs = append(errs, err)
	}
	for _, want := range workloadHostRoutes(hl.Attrs().Index, w) {
		if !workloadFindRoute(hostRoutes, want, true) {
			bad("host route missing: %s", workloadRouteString(want))
		}
	}
	return errors.Join(errs...)
}

// writeSysctls sets /proc/sys keys in the host namespace, writing only those
// that differ. /proc/sys/net belongs to the network namespace of the thread
// that opens it, so this runs on a locked thread moved into the host ns.
func (p *Plumber) writeSysctls(kvs [][2]string) error {
	return netnsrun.Run(p.hostNS, func() error {
		for _, kv := range kvs {
			path := filepath.Join("/proc/sys", kv[0])
			cur, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("read sysctl %s: %w", kv[0], err)
			}
			if strings.TrimSpace(string(cur)) == kv[1] {
				continue
			}
			if err := os.WriteFile(path, []byte(kv[1]), 0o644); err != nil {
				return fmt.Errorf("write sysctl %s=%s: %w", kv[0], kv[1], err)
			}
		}
		return nil
	})
}

// readSysctls reads /proc/sys keys in the host namespace.
func (p *Plumber) readSysctls(kvs [][2]string) (map[string]string, error) {
	got := make(map[string]string, len(kvs))
	err := netnsrun.Run(p.hostNS, func() error {
		var errs []error
		for _, kv := range kvs {
			b, err := os.ReadFile(filepath.Join("/proc/sys", kv[0]))
			if err != nil {
				errs = append(errs, fmt.Errorf("read sysctl %s: %w", kv[0], err))
				continue
			}
			got[kv[0]] = strings.TrimSpace(string(b))
		}
		return errors.Join(errs...)
	})
	return got, err
}

// workloadLinkByName returns the link, or nil (and no error) if there is none.
func workloadLinkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, nil
		}
		return nil, fmt.Errorf("look up link %s: %w", name, err)
	}
	return l, nil
}

// workloadFindRoute reports whether routes holds one equal to want.
func workloadFindRoute(routes []netlink.Route, want netlink.Route, withProto bool) bool {
	for _, r := range routes {
		if workloadSameRoute(r, want, withProto) {
			return true
		}
	}
	return false
}

// workloadSameRoute compares the parts of a route this file sets: device,
// destination, gateway, IPv4 scope and (withProto) protocol.
func workloadSameRoute(r, want netlink.Route, withProto bool) bool {
	if r.LinkIndex != want.LinkIndex {
		return false
	}
	if workloadIsDefault(r.Dst) != workloadIsDefault(want.Dst) {
		return false
	}
	if !workloadIsDefault(want.Dst) && (r.Dst == nil || r.Dst.String() != want.Dst.String()) {
		return false
	}
	if !r.Gw.Equal(want.Gw) {
		return false
	}
	isV4 := want.Dst != nil && want.Dst.IP.To4() != nil
	if isV4 && r.Scope != want.Scope {
		return false
	}
	if withProto && r.Protocol != want.Protocol {
		return false
	}
	return true
}

func workloadIsDefault(n *net.IPNet) bool {
	if n == nil {
		return true
	}
	ones, _ := n.Mask.Size()
	return ones == 0
}

func workloadHostNet(ip netip.Addr) *net.IPNet {
	return &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(ip.BitLen(), ip.BitLen())}
}

func workloadRouteString(r netlink.Route) string {
	var b strings.Builder
	if workloadIsDefault(r.Dst) {
		b.WriteString("default")
	} else {
		b.WriteString(r.Dst.String())
	}
	if r.Gw != nil {
		fmt.Fprintf(&b, " via %s", r.Gw)
	}
	fmt.Fprintf(&b, " dev #%d", r.LinkIndex)
	if r.Scope == netlink.SCOPE_LINK {
		b.WriteString(" scope link")
	}
	if r.Protocol != 0 {
		fmt.Fprintf(&b, " proto %d", int(r.Protocol))
	}
	return b.String()
}
