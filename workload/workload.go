// Package workload adds pods to this node and removes them again: an
// address from IPAM (handle "k8s-pod-network.<container id>") and the
// dataplane's veth plumbing. The `petrel workload` commands and the CNI
// plugins (petrel-cni, petrel-ipam) are thin front ends to it.
package workload

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/ipam"
)

// HandlePrefix starts every pod's IPAM handle id, as in Calico.
const HandlePrefix = "k8s-pod-network."

// DefaultMTU is the pod MTU when none is configured (1500 minus VXLAN's 50).
const DefaultMTU = 1450

// Handle is the IPAM handle id of a container.
func Handle(containerID string) string { return HandlePrefix + containerID }

// Pod names one workload.
type Pod struct {
	Namespace, Name string
	Node            string // the node the address is for (IPAM affinity)
	Handle          string // IPAM handle id, see Handle
	NetNS           string // path of the pod's network namespace
	MTU             int    // 0 = DefaultMTU
}

func (p Pod) check() error {
	switch {
	case p.Namespace == "" || p.Name == "":
		return errors.New("workload: pod namespace and name are required")
	case p.Handle == "":
		return fmt.Errorf("workload %s/%s: no IPAM handle", p.Namespace, p.Name)
	}
	return nil
}

// Allocate returns the pod's IPv4 address: the one its handle already has
// (a repeated ADD), else a new one from the node's blocks, recorded with the
// namespace, pod and node attributes.
func Allocate(ctx context.Context, c *ipam.Client, p Pod) (netip.Addr, error) {
	if err := p.check(); err != nil {
		return netip.Addr{}, err
	}
	attrs := map[string]string{"namespace": p.Namespace, "pod": p.Name, "node": p.Node}
	addr, err := c.EnsureIPv4(ctx, ipam.AssignArgs{Node: p.Node, Handle: p.Handle, Attrs: attrs})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("workload %s/%s: %w", p.Namespace, p.Name, err)
	}
	return addr, nil
}

// Release gives back every address of the handle (none is no error).
func Release(ctx context.Context, c *ipam.Client, handle string) (int, error) {
	return c.ReleaseByHandle(ctx, handle)
}

func (p Pod) workload(addr netip.Addr) dataplane.Workload {
	mtu := p.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	return dataplane.Workload{Namespace: p.Namespace, Pod: p.Name, NetNS: p.NetNS, IPv4: addr, MTU: mtu, RouteProtocol: dataplane.RouteProtocol}
}

// CheckNetNS fails when the pod's namespace does not exist: callers check
// it before allocating anything.
func CheckNetNS(path string) error {
	if path == "" {
		return errors.New("no pod network namespace given")
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("pod network namespace: %w", err)
	}
	return nil
}

// Plumb wires the pod to addr in the calling process's network namespace
// and returns the host-side veth name. It is idempotent; on failure the
// dataplane removes what it made.
func Plumb(ctx context.Context, p Pod, addr netip.Addr) (string, error) {
	plumber, err := dataplane.NewPlumber("")
	if err != nil {
		return "", err
	}
	defer plumber.Close()
	return plumber.Add(ctx, p.workload(addr))
}

// Check verifies the pod's plumbing for addr (CNI CHECK).
func Check(ctx context.Context, p Pod, addr netip.Addr) error {
	plumber, err := dataplane.NewPlumber("")
	if err != nil {
		return err
	}
	defer plumber.Close()
	return plumber.Check(ctx, p.workload(addr))
}

// Unplumb removes the pod's veth; a missing veth or namespace is no error.
func Unplumb(ctx context.Context, p Pod) error {
	plumber, err := dataplane.NewPlumber("")
	if err != nil {
		return err
	}
	defer plumber.Close()
	return plumber.Del(ctx, p.Namespace, p.Name, p.NetNS)
}

// Add allocates an address for the pod and plumbs it. A failed Add leaves
// nothing behind: the plumbing undoes itself and the address is released.
func Add(ctx context.Context, c *ipam.Client, p Pod) (netip.Addr, string, error) {
	if err := p.check(); err != nil {
		return netip.Addr{}, "", err
	}
	if err := CheckNetNS(p.NetNS); err != nil { // before allocating anything
		return netip.Addr{}, "", fmt.Errorf("workload %s/%s: %w", p.Namespace, p.Name, err)
	}
	addr, err := Allocate(ctx, c, p)
	if err != nil {
		return netip.Addr{}, "", err
	}
	hostIf, err := Plumb(ctx, p, addr)
	if err != nil {
		if _, rerr := Release(ctx, c, p.Handle); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return netip.Addr{}, "", err
	}
	return addr, hostIf, nil
}

// Del unplumbs the pod (NetNS may be empty or gone) and releases its
// handle; doing it twice is harmless. It returns how many addresses were
// released.
func Del(ctx context.Context, c *ipam.Client, p Pod) (int, error) {
	if err := p.check(); err != nil {
		return 0, err
	}
	if err := Unplumb(ctx, p); err != nil {
		return 0, err
	}
	return Release(ctx, c, p.Handle)
}
