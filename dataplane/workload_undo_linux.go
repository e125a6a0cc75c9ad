//go:build linux

package dataplane

import (
	"context"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

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
