package nodeaddr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/petrel-net/petrel/internal/nlretry"
)

// Host reads the node's interfaces and routes through NL, a netlink
// handle in the node's network namespace (nil: the caller's namespace).
type Host struct {
	NL  *netlink.Handle
	Log *slog.Logger
}

// Resolve returns the node's address of s.Family as calico-node's startup
// does; current is the address the Node holds now (invalid: none). The
// result is invalid when the node has no address of this family:
//   - Explicit: the address, with the length of the local interface
//     address that matches it when none was given (else /32 or /128);
//   - Autodetect, or IPv4 Unset on a Node without one: the method's
//     address; if it finds none, current when valid, else an error;
//   - None, and Unset otherwise: current, unchanged.
func (h Host) Resolve(ctx context.Context, s Setting, current netip.Prefix) (netip.Prefix, error) {
	env, menv := names(s.Family)
	log := h.log()
	switch {
	case s.Mode == Explicit:
		return h.explicit(s)
	case s.Mode == Autodetect || (s.Mode == Unset && s.Family == 4 && !current.IsValid()):
		ifName, p, err := h.Detect(ctx, s.Family, s.Method)
		if err == nil {
			log.Info("autodetected the node's address", env, p, "interface", ifName, menv, s.Method.Kind)
			return p, nil
		}
		if current.IsValid() {
			log.Warn("autodetection found no address; keeping the Node's", env, current, menv, s.Method.Raw, "err", err)
			return current, nil
		}
		return netip.Prefix{}, fmt.Errorf("%s=%q with %s=%q: %w (choose another method or set the address)", env, s.Raw, menv, s.Method.Raw, err)
	case s.Mode == None && current.IsValid():
		log.Info("address management off; keeping the Node's address", env, s.Raw, "address", current)
	}
	return current, nil
}

// explicit completes an explicit address with the length of the matching
// local address, warning when no interface has it (as calico-node does).
func (h Host) explicit(s Setting) (netip.Prefix, error) {
	env, _ := names(s.Family)
	ifaces, err := h.Interfaces(s.Family)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s=%q: %w", env, s.Raw, err)
	}
	for _, ifc := range ifaces {
		for _, a := range ifc.Addrs {
			if a.Prefix.Addr() == s.Address {
				if s.Bits >= 0 {
					return netip.PrefixFrom(s.Address, s.Bits), nil
				}
				return a.Prefix, nil
			}
		}
	}
	bits := s.Bits
	if bits < 0 {
		bits = s.Address.BitLen()
	}
	h.log().Warn("the node's address is on no local interface", env, s.Raw)
	return netip.PrefixFrom(s.Address, bits), nil
}

// Detect runs autodetection method m for family, returning the interface
// and address it chose.
func (h Host) Detect(ctx context.Context, family int, m Method) (string, netip.Prefix, error) {
	switch m.Kind {
	case "can-reach":
		return h.reach(ctx, family, m.Dest)
	case "interface":
		return h.firstFound(family, m.Interfaces, nil, nil)
	case "skip-interface":
		return h.firstFound(family, nil, append(defaultExclusions(), m.Interfaces...), nil)
	case "cidr":
		return h.firstFound(family, nil, nil, m.CIDRs)
	}
	return h.firstFound(family, nil, defaultExclusions(), nil)
}

// Interface is a link and its addresses of one family, in kernel order.
type Interface struct {
	Name  string
	Addrs []Addr
}

// Addr is an interface address and its IFA_F_* flags.
type Addr struct {
	Prefix netip.Prefix
	Flags  int
}

// usable reports whether autodetection may pick a: a global unicast
// address that is not deprecated, a temporary (privacy) address or
// failed duplicate address detection.
func (a Addr) usable() bool {
	if !a.Prefix.Addr().IsGlobalUnicast() {
		return false // loopback, link-local, multicast
	}
	bad := unix.IFA_F_DEPRECATED | unix.IFA_F_DADFAILED
	if a.Prefix.Addr().Is6() {
		bad |= unix.IFA_F_TEMPORARY // the same bit means "secondary" for IPv4
	}
	return a.Flags&bad == 0
}

// Interfaces lists every link with its family addresses, in Calico's
// order: links from the highest index down (calico-node walks
// net.Interfaces backwards), addresses in the kernel's order.
func (h Host) Interfaces(family int) ([]Interface, error) {
	nl := h.handle()
	links, err := nlretry.Dump(nl.LinkList)
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	nlFamily := netlink.FAMILY_V4
	if family == 6 {
		nlFamily = netlink.FAMILY_V6
	}
	addrs, err := nlretry.Dump(func() ([]netlink.Addr, error) { return nl.AddrList(nil, nlFamily) })
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	byIndex := map[int][]Addr{}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.IPNet == nil {
			continue
		}
		ones, _ := a.Mask.Size()
		byIndex[a.LinkIndex] = append(byIndex[a.LinkIndex], Addr{Prefix: netip.PrefixFrom(ip.Unmap(), ones), Flags: a.Flags})
	}
	slices.SortFunc(links, func(x, y netlink.Link) int { return y.Attrs().Index - x.Attrs().Index })
	out := make([]Interface, 0, len(links))
	for _, l := range links {
		out = append(out, Interface{Name: l.Attrs().Name, Addrs: byIndex[l.Attrs().Index]})
	}
	return out, nil
}

// firstFound is Calico's FilteredEnumeration: the first usable address,
// within cidrs when given, of the first interface that matches an include
// pattern (when given) and no exclude pattern.
func (h Host) firstFound(family int, include, exclude []*regexp.Regexp, cidrs []netip.Prefix) (string, netip.Prefix, error) {
	ifaces, err := h.Interfaces(family)
	if err != nil {
		return "", netip.Prefix{}, err
	}
	matched := false
	for _, ifc := range ifaces {
		if (include != nil && !matchAny(include, ifc.Name)) || matchAny(exclude, ifc.Name) {
			continue
		}
		matched = true
		for _, a := range ifc.Addrs {
			if a.usable() && (len(cidrs) == 0 || slices.ContainsFunc(cidrs, func(c netip.Prefix) bool { return c.Contains(a.Prefix.Addr()) })) {
				return ifc.Name, a.Prefix, nil
			}
		}
	}
	if !matched {
		return "", netip.Prefix{}, errors.New("no interface matches")
	}
	return "", netip.Prefix{}, fmt.Errorf("no usable IPv%d address on the matching interfaces", family)
}

// reach is can-reach=: the source address the kernel's route lookup picks
// for dest (no packet is sent), with its length from the interface.
func (h Host) reach(ctx context.Context, family int, dest string) (string, netip.Prefix, error) {
	to, err := netip.ParseAddr(dest)
	if err != nil {
		network := "ip4"
		if family == 6 {
			network = "ip6"
		}
		found, lerr := net.DefaultResolver.LookupNetIP(ctx, network, dest)
		if lerr != nil || len(found) == 0 {
			return "", netip.Prefix{}, fmt.Errorf("resolving %s: %v", dest, lerr)
		}
		to = found[0].Unmap()
	}
	routes, err := h.handle().RouteGet(to.AsSlice())
	if err != nil {
		return "", netip.Prefix{}, fmt.Errorf("no route to %s: %w", dest, err)
	}
	var src netip.Addr
	for _, r := range routes {
		if a, ok := netip.AddrFromSlice(r.Src); ok {
			src = a.Unmap()
			break
		}
	}
	if !src.IsValid() {
		return "", netip.Prefix{}, fmt.Errorf("the route to %s has no source address", dest)
	}
	ifaces, err := h.Interfaces(family)
	if err != nil {
		return "", netip.Prefix{}, err
	}
	for _, ifc := range ifaces {
		for _, a := range ifc.Addrs {
			if a.Prefix.Addr() == src {
				return ifc.Name, a.Prefix, nil
			}
		}
	}
	return "", netip.Prefix{}, fmt.Errorf("source address %s towards %s is on no local interface", src, dest)
}

func matchAny(res []*regexp.Regexp, name string) bool {
	return slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(name) })
}

// defaultExclusions compiles DefaultExclusions.
func defaultExclusions() []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(DefaultExclusions))
	for i, p := range DefaultExclusions {
		out[i] = regexp.MustCompile(p)
	}
	return out
}

func (h Host) handle() *netlink.Handle {
	if h.NL != nil {
		return h.NL
	}
	return &netlink.Handle{} // the package's own: the caller's namespace
}

func (h Host) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

// Addrs are a node's BGP addresses; either may be invalid (no address of
// that family), never both.
type Addrs struct {
	IPv4, IPv6 netip.Prefix
}

// ResolveNode resolves both families (see Resolve) against the addresses
// the Node holds now, refusing a node left with neither.
func (h Host) ResolveNode(ctx context.Context, v4, v6 Setting, current Addrs) (Addrs, error) {
	var out Addrs
	var err error
	if out.IPv4, err = h.Resolve(ctx, v4, current.IPv4); err != nil {
		return Addrs{}, err
	}
	if out.IPv6, err = h.Resolve(ctx, v6, current.IPv6); err != nil {
		return Addrs{}, err
	}
	if !out.IPv4.IsValid() && !out.IPv6.IsValid() {
		return Addrs{}, fmt.Errorf("%s=%q and %s=%q leave the node without a BGP address (set an address or %q in one of them)", EnvIP, v4.Raw, EnvIP6, v6.Raw, ValueAutodetect)
	}
	return out, nil
}
