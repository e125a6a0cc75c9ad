//go:build linux

package dataplane

import (
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

func (p *Plumber) hostRoutesVia(hl netlink.Link) ([]netlink.Route, error) {
	routes, err := workloadRoutesVia(p.host, hl)
	if err != nil {
		return nil, fmt.Errorf("list host routes via %s: %w", hl.Attrs().Name, err)
	}
	return routes, nil
}

func (n *workloadPodNS) routesVia(pl netlink.Link) ([]netlink.Route, error) {
	routes, err := workloadRoutesVia(n.h, pl)
	if err != nil {
		return nil, fmt.Errorf("list pod routes: %w", err)
	}
	return routes, nil
}

// workloadRoutesVia lists the main table's routes (both families) through l.
func workloadRoutesVia(h *netlink.Handle, l netlink.Link) ([]netlink.Route, error) {
	return nlretry.Dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL,
			&netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
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
