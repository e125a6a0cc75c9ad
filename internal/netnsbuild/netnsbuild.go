//go:build linux

// Package netnsbuild builds lab and test topologies with netlink: named
// network namespaces, veth pairs between two of them, bridges, addresses,
// link state and sysctls. Namespaces are bind-mounted under /var/run/netns
// as `ip netns add` does, so `ip netns list` and `ip netns exec` see them.
//
// Every function works inside the namespaces it is given by name and
// never in the caller's own namespace. The package owns no state.
package netnsbuild

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/petrel-net/petrel/internal/netnsrun"
	"github.com/petrel-net/petrel/internal/nlretry"
)

// Dir holds one bind mount per named namespace, where iproute2 looks.
const Dir = "/var/run/netns"

// Path is the file that names namespace name.
func Path(name string) string { return filepath.Join(Dir, name) }

// Create makes the named namespace, with its loopback up.
func Create(name string) error {
	if err := shareDir(); err != nil {
		return err
	}
	path := Path(name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	f.Close()
	// netnsrun.Run puts the thread back where it was after unshare moved
	// it into the new namespace (or lets it die if it cannot).
	self, err := netns.GetFromPath("/proc/self/ns/net")
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	defer self.Close()
	err = netnsrun.Run(self, func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return err
		}
		return unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, "")
	})
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	if err := Up(name, "lo"); err != nil {
		return errors.Join(err, Delete(name))
	}
	return nil
}

// shareDir makes Dir a shared mount, as `ip netns add` does, so that
// a namespace deleted here is unmounted in every mount namespace (those
// of processes started by `ip netns exec` too) and can be freed.
func shareDir() error {
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return err
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("make %s a shared mount: %w", Dir, err)
		}
		// EINVAL: not a mount point yet; make it one.
		if err := unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s onto itself: %w", Dir, err)
		}
	}
}

// Delete kills every process still in the named namespace (a namespace
// only goes away with its last process) and removes its name. Its links
// go with it.
func Delete(name string) error {
	pids, err := Pids(name)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	path := Path(name)
	_ = unix.Unmount(path, unix.MNT_DETACH) // as `ip netns del`: the unlink decides
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// List returns the names of the named namespaces.
func List() ([]string, error) {
	entries, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// Pids lists the processes (but pid 1) whose network namespace is the
// named one, as `ip netns pids` does.
func Pids(name string) ([]int, error) {
	var want unix.Stat_t
	if err := unix.Stat(Path(name), &want); err != nil {
		return nil, fmt.Errorf("netns %s: %w", name, err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Veth creates a veth pair, aIf in namespace aNS and zIf in zNS, directly
// in its namespaces (never in the caller's), both down.
func Veth(aNS, aIf, zNS, zIf string) error {
	z, err := netns.GetFromPath(Path(zNS))
	if err != nil {
		return fmt.Errorf("netns %s: %w", zNS, err)
	}
	defer z.Close()
	return Do(aNS, func(h *netlink.Handle) error {
		la := netlink.NewLinkAttrs()
		la.Name = aIf
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: zIf, PeerNamespace: netlink.NsFd(z)}); err != nil {
			return fmt.Errorf("veth %s:%s - %s:%s: %w", aNS, aIf, zNS, zIf, err)
		}
		return nil
	})
}

// Bridge creates a bridge called name in namespace ns, down.
func Bridge(ns, name string) error {
	return Do(ns, func(h *netlink.Handle) error {
		la := netlink.NewLinkAttrs()
		la.Name = name
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return fmt.Errorf("bridge %s in %s: %w", name, ns, err)
		}
		return nil
	})
}

// SetMaster makes link ifName a port of bridge in namespace ns.
func SetMaster(ns, ifName, bridge string) error {
	return withLink(ns, ifName, func(h *netlink.Handle, l netlink.Link) error {
		br, err := h.LinkByName(bridge)
		if err != nil {
			return err
		}
		return h.LinkSetMaster(l, br)
	})
}

// Up brings link ifName in namespace ns up.
func Up(ns, ifName string) error {
	return withLink(ns, ifName, func(h *netlink.Handle, l netlink.Link) error { return h.LinkSetUp(l) })
}

// AddAddr adds address p (such as 10.0.0.1/24) to link ifName in namespace
// ns, as `ip addr add` does: no broadcast address, and IPv6 without
// duplicate address detection, so that it is usable at once.
func AddAddr(ns, ifName string, p netip.Prefix) error {
	return withLink(ns, ifName, func(h *netlink.Handle, l netlink.Link) error {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is4() {
			a.Broadcast = net.IPv4zero // netlink would compute one; ip does not
		} else {
			a.Flags = unix.IFA_F_NODAD
		}
		return h.AddrAdd(l, a)
	})
}

// Sysctl writes value to /proc/sys/key (key as a path: "net/ipv4/ip_forward")
// in namespace ns; /proc/sys/net belongs to the namespace of the thread
// that opens it.
func Sysctl(ns, key, value string) error {
	err := netnsrun.RunPath(Path(ns), func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
	if err != nil {
		return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, ns, err)
	}
	return nil
}

// GlobalIPv4 returns the first global IPv4 address in namespace ns, in
// link order.
func GlobalIPv4(ns string) (netip.Prefix, error) { return globalAddr(ns, netlink.FAMILY_V4, "IPv4") }

// GlobalIPv6 returns the first global IPv6 address in namespace ns, in
// link order (unique local addresses count; link-local ones do not).
func GlobalIPv6(ns string) (netip.Prefix, error) { return globalAddr(ns, netlink.FAMILY_V6, "IPv6") }

func globalAddr(ns string, family int, name string) (netip.Prefix, error) {
	var found netip.Prefix
	err := Do(ns, func(h *netlink.Handle) error {
		addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return h.AddrList(nil, family) })
		if err != nil {
			return err
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if ok && a.Scope == unix.RT_SCOPE_UNIVERSE {
				ones, _ := a.Mask.Size()
				found = netip.PrefixFrom(ip.Unmap(), ones)
				return nil
			}
		}
		return fmt.Errorf("no global %s address in %s", name, ns)
	})
	return found, err
}

// HasDefaultRoute reports whether namespace ns has an IPv4 default route
// in its main table.
func HasDefaultRoute(ns string) (bool, error) {
	found := false
	err := Do(ns, func(h *netlink.Handle) error {
		routes, err := nlretry.Dump(func() ([]netlink.Route, error) {
			return h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		})
		for _, r := range routes {
			if r.Dst == nil || prefixLen(r.Dst) == 0 {
				found = true
			}
		}
		return err
	})
	return found, err
}

func prefixLen(n *net.IPNet) int { ones, _ := n.Mask.Size(); return ones }

// Do calls fn with a netlink handle inside the named namespace.
func Do(ns string, fn func(h *netlink.Handle) error) error {
	nsh, err := netns.GetFromPath(Path(ns))
	if err != nil {
		return fmt.Errorf("netns %s: %w", ns, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return fmt.Errorf("netlink in netns %s: %w", ns, err)
	}
	defer h.Close()
	return fn(h)
}

// withLink calls fn with link ifName of namespace ns, naming both in an
// error.
func withLink(ns, ifName string, fn func(*netlink.Handle, netlink.Link) error) error {
	return Do(ns, func(h *netlink.Handle) error {
		l, err := h.LinkByName(ifName)
		if err == nil {
			err = fn(h, l)
		}
		if err != nil {
			return fmt.Errorf("%s in %s: %w", ifName, ns, err)
		}
		return nil
	})
}
