// Package workload adds pods to this node and removes them again: an
// address of each requested family from IPAM, all under one handle
// ("k8s-pod-network.<container id>"), and the dataplane's veth plumbing. The `petrel workload` commands and the CNI
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
	Families        Families
}

// Families are the address families a pod gets, as Calico's CNI ipam
// assign_ipv4 and assign_ipv6. The zero value means IPv4 only (Calico's
// defaults).
type Families struct{ IPv4, IPv6 bool }

// IPv4Only is Calico's default: assign_ipv4 true, assign_ipv6 false.
var IPv4Only = Families{IPv4: true}

// DualStack is one address of each family.
var DualStack = Families{IPv4: true, IPv6: true}

func (f Families) orDefault() Families {
	if !f.IPv4 && !f.IPv6 {
		return IPv4Only
	}
	return f
}

func (f Families) String() string {
	switch f.orDefault() {
	case DualStack:
		return "IPv4 and IPv6"
	case IPv4Only:
		return "IPv4"
	}
	return "IPv6"
}

// Addrs are a pod's addresses; a family not requested is the zero Addr.
type Addrs struct{ IPv4, IPv6 netip.Addr }

// AddrsOf sorts addresses into their families (the first of each wins).
func AddrsOf(addrs []netip.Addr) Addrs {
	var a Addrs
	for _, addr := range addrs {
		addr = addr.Unmap()
		switch {
		case addr.Is4() && !a.IPv4.IsValid():
			a.IPv4 = addr
		case addr.Is6() && !a.IPv6.IsValid():
			a.IPv6 = addr
		}
	}
	return a
}

// List is the valid addresses, IPv4 first.
func (a Addrs) List() []netip.Addr {
	var out []netip.Addr
	for _, addr := range []netip.Addr{a.IPv4, a.IPv6} {
		if addr.IsValid() {
			out = append(out, addr)
		}
	}
	return out
}

// Has says whether a holds an address of every family in f.
func (a Addrs) Has(f Families) bool {
	f = f.orDefault()
	return (!f.IPv4 || a.IPv4.IsValid()) && (!f.IPv6 || a.IPv6.IsValid())
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

// Allocate returns the pod's addresses, one of each of p.Families: those
// its handle already has (a repeated ADD), else new ones from the node's
// blocks, recorded with the namespace, pod and node attributes. It takes
// all or none.
func Allocate(ctx context.Context, c *ipam.Client, p Pod) (Addrs, error) {
	if err := p.check(); err != nil {
		return Addrs{}, err
	}
	f := p.Families.orDefault()
	attrs := map[string]string{"namespace": p.Namespace, "pod": p.Name, "node": p.Node}
	a := ipam.AssignArgs{Node: p.Node, Handle: p.Handle, Attrs: attrs}
	if f.IPv4 {
		a.Num4 = 1
	}
	if f.IPv6 {
		a.Num6 = 1
	}
	addrs, err := c.Ensure(ctx, a)
	if err != nil {
		return Addrs{}, fmt.Errorf("workload %s/%s: %s: %w", p.Namespace, p.Name, f, err)
	}
	return AddrsOf(addrs), nil
}

// Release gives back every address of the handle (none is no error).
func Release(ctx context.Context, c *ipam.Client, handle string) (int, error) {
	return c.ReleaseByHandle(ctx, handle)
}

func (p Pod) workload(addrs Addrs) dataplane.Workload {
	mtu := p.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	return dataplane.Workload{Namespace: p.Namespace, Pod: p.Name, NetNS: p.NetNS, IPv4: addrs.IPv4, IPv6: addrs.IPv6, MTU: mtu, RouteProtocol: dataplane.RouteProtocol}
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

// Plumb wires the pod to its addresses in the calling process's network namespace
// and returns the host-side veth name. It is idempotent; on failure the
// dataplane removes what it made.
func Plumb(ctx context.Context, p Pod, addrs Addrs) (string, error) {
	plumber, err := dataplane.NewPlumber("")
	if err != nil {
		return "", err
	}
	defer plumber.Close()
	return plumber.Add(ctx, p.workload(addrs))
}

// Check verifies the pod's plumbing for its addresses (CNI CHECK).
func Check(ctx context.Context, p Pod, addrs Addrs) error {
	plumber, err := dataplane.NewPlumber("")
	if err != nil {
		return err
	}
	defer plumber.Close()
	return plumber.Check(ctx, p.workload(addrs))
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

// Add allocates the pod's addresses and plumbs them. A failed Add leaves
// nothing behind: the plumbing undoes itself and the addresses are
// released.
func Add(ctx context.Context, c *ipam.Client, p Pod) (Addrs, string, error) {
	if err := p.check(); err != nil {
		return Addrs{}, "", err
	}
	if err := CheckNetNS(p.NetNS); err != nil { // before allocating anything
		return Addrs{}, "", fmt.Errorf("workload %s/%s: %w", p.Namespace, p.Name, err)
	}
	addrs, err := Allocate(ctx, c, p)
	if err != nil {
		return Addrs{}, "", err
	}
	hostIf, err := Plumb(ctx, p, addrs)
	if err != nil {
		if _, rerr := Release(ctx, c, p.Handle); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return Addrs{}, "", err
	}
	return addrs, hostIf, nil
}

// Del unplumbs the pod (NetNS may be empty or gone) and releases its
// handle (the addresses of both families); doing it twice is harmless. It
// returns how many addresses were released.
func Del(ctx context.Context, c *ipam.Client, p Pod) (int, error) {
	if err := p.check(); err != nil {
		return 0, err
	}
	if err := Unplumb(ctx, p); err != nil {
		return 0, err
	}
	return Release(ctx, c, p.Handle)
}
