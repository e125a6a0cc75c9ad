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
)

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
	hl, pl, err := p.checkPair(pod, hostIf)
	if err != nil {
		return err
	}
	var r checkReport
	r.links(w, pod, hl, pl)
	r.sysctls(p, w, hostIf)
	r.podAddrs(w, pod, pl)
	r.routes(p, w, pod, hl, pl)
	return errors.Join(r.errs...)
}

// checkPair finds the host veth and the pod's eth0 and checks that they are
// one pair: without that, nothing else is worth checking.
func (p *Plumber) checkPair(pod *workloadPodNS, hostIf string) (hl, pl netlink.Link, err error) {
	if hl, err = workloadLinkByName(p.host, hostIf); err != nil {
		return nil, nil, err
	}
	if hl == nil {
		return nil, nil, fmt.Errorf("host veth %s missing", hostIf)
	}
	if pl, err = workloadLinkByName(pod.h, WorkloadPodIfName); err != nil {
		return nil, nil, err
	}
	if pl == nil {
		return nil, nil, fmt.Errorf("pod %s missing", WorkloadPodIfName)
	}
	if !p.isPair(pod, hl, pl) {
		return nil, nil, fmt.Errorf("host %s and pod %s are not one veth pair", hostIf, WorkloadPodIfName)
	}
	return hl, pl, nil
}

// checkReport collects everything Check finds missing or wrong.
type checkReport struct{ errs []error }

func (r *checkReport) bad(format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf(format, args...))
}

func (r *checkReport) failed(err error) {
	if err != nil {
		r.errs = append(r.errs, err)
	}
}

// links checks the host MAC, both ends' MTU and state, and the pod's lo.
func (r *checkReport) links(w Workload, pod *workloadPodNS, hl, pl netlink.Link) {
	if !bytes.Equal(hl.Attrs().HardwareAddr, WorkloadHostMAC) {
		r.bad("host %s MAC is %s, want %s", hl.Attrs().Name, hl.Attrs().HardwareAddr, WorkloadHostMAC)
	}
	for _, l := range []netlink.Link{hl, pl} {
		if l.Attrs().MTU != w.MTU {
			r.bad("%s MTU is %d, want %d", l.Attrs().Name, l.Attrs().MTU, w.MTU)
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			r.bad("%s is down", l.Attrs().Name)
		}
	}
	if lo, err := workloadLinkByName(pod.h, "lo"); err != nil {
		r.failed(err)
	} else if lo == nil || lo.Attrs().Flags&net.FlagUp == 0 {
		r.bad("pod lo is not up")
	}
}

func (r *checkReport) sysctls(p *Plumber, w Workload, hostIf string) {
	want := workloadHostSysctls(hostIf, w.IPv4.IsValid(), w.IPv6.IsValid())
	got, err := p.readSysctls(want)
	r.failed(err)
	for _, kv := range want {
		if v, ok := got[kv[0]]; ok && v != kv[1] {
			r.bad("sysctl %s is %s, want %s", kv[0], v, kv[1])
		}
	}
}

// podAddrs checks that eth0 has the workload's addresses and no other
// global ones.
func (r *checkReport) podAddrs(w Workload, pod *workloadPodNS, pl netlink.Link) {
	for _, f := range []struct {
		family int
		want   netip.Addr
	}{{netlink.FAMILY_V4, w.IPv4}, {netlink.FAMILY_V6, w.IPv6}} {
		addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return pod.h.AddrList(pl, f.family) })
		if err != nil {
			r.failed(fmt.Errorf("list pod addresses: %w", err))
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
			r.bad("pod %s has unexpected address %s", WorkloadPodIfName, ad.IPNet)
		}
		if f.want.IsValid() && !found {
			r.bad("pod %s lacks address %s", WorkloadPodIfName, workloadHostNet(f.want))
		}
	}
}

// routes checks the pod's routes and the host routes to the workload.
func (r *checkReport) routes(p *Plumber, w Workload, pod *workloadPodNS, hl, pl netlink.Link) {
	podRoutes, err := pod.routesVia(pl)
	r.failed(err)
	for _, want := range workloadPodRoutes(pl.Attrs().Index, w) {
		if !workloadFindRoute(podRoutes, want, false) {
			r.bad("pod route missing: %s", workloadRouteString(want))
		}
	}
	hostRoutes, err := p.hostRoutesVia(hl)
	r.failed(err)
	for _, want := range workloadHostRoutes(hl.Attrs().Index, w) {
		if !workloadFindRoute(hostRoutes, want, true) {
			r.bad("host route missing: %s", workloadRouteString(want))
		}
	}
}
