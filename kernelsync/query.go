package kernelsync

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// FIBEntry is kernel sync's state for one prefix, copied out of Run's
// goroutine for explain and the FIB view.
type FIBEntry struct {
	Prefix netip.Prefix
	// Gateways are the speaker's next hops (nil: BGP has no route, or a
	// local one); Unusable are those the kernel cannot use, with why.
	Gateways []netip.Addr
	Unusable []UnusableGateway
	// Desired is what kernel sync wants in the FIB (nil: nothing of
	// ours); Installed is our route as last seen or written.
	Desired, Installed []NextHop
	IsInstalled        bool
	Stale              bool // adopted at start, not yet refreshed
	Failing            bool // the last write failed
	Clobbered          bool // someone else changed our route; being put back
	Blackhole          bool // the node's own block
	Excluded           bool // another owner (the VXLAN dataplane) programs it
	Learned            bool // an alien kernel route learned into BGP
	GracefulRestart    bool // adopted routes are waiting for the peers
	ForeignHeld        bool // our add found another protocol's route at the key
	// Kernel are the routes the kernel's table holds at exactly Prefix,
	// whoever owns them.
	Kernel []KernelRoute
}

// NextHop is one next hop as the kernel writes it.
type NextHop struct {
	Gateway   netip.Addr // invalid for a blackhole or device route
	Interface string
	Blackhole bool
}

// UnusableGateway is a BGP next hop the kernel cannot use.
type UnusableGateway struct {
	Gateway netip.Addr
	Why     string
}

// KernelRoute is a route of the kernel's table, as netlink reads it.
type KernelRoute struct {
	Protocol int
	Type     string // "unicast", "blackhole", "unreachable", ...
	NextHops []NextHop
}

// Entry returns kernel sync's state for exactly p, with the kernel's own
// routes at p. It waits for Run's goroutine.
func (s *Sync) Entry(ctx context.Context, p netip.Prefix) (FIBEntry, error) {
	var out FIBEntry
	var err error
	qerr := s.query(ctx, func() {
		out = s.entrySnapshot(p.Masked())
		out.Kernel, err = s.kernelRoutesAt(p.Masked())
	})
	if qerr != nil {
		return FIBEntry{}, qerr
	}
	return out, err
}

// Entries returns kernel sync's state for every prefix it knows, learned
// alien routes included, each with the kernel's routes at its prefix (one
// read of the table for all), sorted.
func (s *Sync) Entries(ctx context.Context) ([]FIBEntry, error) {
	var out []FIBEntry
	var err error
	qerr := s.query(ctx, func() {
		byPrefix := map[netip.Prefix]int{}
		add := func(p netip.Prefix) {
			if _, ok := byPrefix[p]; !ok {
				byPrefix[p] = len(out)
				out = append(out, s.entrySnapshot(p))
			}
		}
		for p := range s.fib.entries {
			add(p)
		}
		for p := range s.learned {
			add(p)
		}
		err = s.h.RouteListFilteredIter(unix.AF_UNSPEC, &netlink.Route{Table: s.cfg.Table}, netlink.RT_FILTER_TABLE, func(r netlink.Route) bool {
			if p, ok := prefixOf(&r); ok {
				if i, known := byPrefix[p]; known {
					out[i].Kernel = append(out[i].Kernel, s.kernelRoute(&r))
				}
			}
			return true
		})
	})
	if qerr != nil {
		return nil, qerr
	}
	slices.SortFunc(out, func(a, b FIBEntry) int { return comparePrefix(a.Prefix, b.Prefix) })
	return out, err
}

// Covering returns the prefixes of the kernel's table and of kernel sync
// that contain a: explain's candidates for an address's longest match.
func (s *Sync) Covering(ctx context.Context, a netip.Addr) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var err error
	qerr := s.query(ctx, func() {
		for p := range s.fib.entries {
			if p.Contains(a) {
				out = append(out, p)
			}
		}
		err = s.h.RouteListFilteredIter(family(netip.PrefixFrom(a, 0)), &netlink.Route{Table: s.cfg.Table}, netlink.RT_FILTER_TABLE, func(r netlink.Route) bool {
			if p, ok := prefixOf(&r); ok && p.Contains(a) {
				out = append(out, p)
			}
			return true
		})
	})
	if qerr != nil {
		return nil, qerr
	}
	return out, err
}

// Unsettled counts the prefixes among ps whose route kernel sync has not
// yet brought to what it wants. A prefix it will never hold (excluded,
// held by a foreign route, unusable next hops) is settled: convergence
// waits for work, not for the impossible.
func (s *Sync) Unsettled(ctx context.Context, ps []netip.Prefix) (int, error) {
	n := 0
	err := s.query(ctx, func() {
		for _, p := range ps {
			if e := s.fib.get(p); e != nil && !s.excluded[p] && !e.settled() {
				n++
			}
		}
	})
	return n, err
}

func (e *fibEntry) settled() bool {
	switch {
	case e.desired == nil:
		return !e.has(flagInstalled) || e.has(flagStale)
	case e.has(flagForeignHeld):
		return true
	}
	return e.has(flagInstalled) && fibEqual(e.desired, e.installed)
}

// query runs fn on Run's goroutine and waits for it.
func (s *Sync) query(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case s.queryReq <- func() { fn(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return errStopped
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// entrySnapshot copies p's state (Run's goroutine only).
func (s *Sync) entrySnapshot(p netip.Prefix) FIBEntry {
	out := FIBEntry{Prefix: p, Blackhole: s.blackholes[p], Excluded: s.excluded[p], Learned: s.learned[p], GracefulRestart: s.graceful}
	e := s.fib.get(p)
	if e == nil {
		return out
	}
	out.Gateways = slices.Clone(e.gateways)
	out.Desired, out.Installed = s.nextHops(e.desired), s.nextHops(e.installed)
	out.IsInstalled, out.Stale, out.Failing, out.Clobbered = e.has(flagInstalled), e.has(flagStale), e.has(flagFailing), e.has(flagClobbered)
	out.ForeignHeld = e.has(flagForeignHeld)
	for _, gw := range e.gateways {
		if why := s.dev.whyUnusable(gw); why != "" {
			out.Unusable = append(out.Unusable, UnusableGateway{Gateway: gw, Why: why})
		}
	}
	return out
}

func (s *Sync) nextHops(nhs []nexthop) []NextHop {
	if isBlackhole(nhs) {
		return []NextHop{{Blackhole: true}}
	}
	var out []NextHop
	for _, nh := range nhs {
		out = append(out, NextHop{Gateway: nh.gw, Interface: s.dev.links[nh.ifindex].name})
	}
	return out
}

// kernelRoutesAt reads the table's routes at exactly p, any protocol.
func (s *Sync) kernelRoutesAt(p netip.Prefix) ([]KernelRoute, error) {
	filter := &netlink.Route{Table: s.cfg.Table, Dst: prefixNet(p)}
	routes, err := s.h.RouteListFiltered(family(p), filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
	if err != nil {
		return nil, fmt.Errorf("kernelsync: routes at %s: %w", p, err)
	}
	var out []KernelRoute
	for _, r := range routes {
		if rp, ok := prefixOf(&r); !ok || rp != p {
			continue
		}
		out = append(out, s.kernelRoute(&r))
	}
	return out, nil
}

func (s *Sync) kernelRoute(r *netlink.Route) KernelRoute {
	return KernelRoute{Protocol: int(r.Protocol), Type: routeType(r.Type), NextHops: s.nextHops(kernelNextHops(r))}
}

// kernelNextHops is nexthopsOf plus device routes (no gateway, one link).
func kernelNextHops(r *netlink.Route) []nexthop {
	if nhs := nexthopsOf(r); nhs != nil {
		return nhs
	}
	if r.LinkIndex > 0 {
		return []nexthop{{ifindex: r.LinkIndex}}
	}
	return nil
}

func routeType(t int) string {
	switch t {
	case unix.RTN_UNICAST:
		return "unicast"
	case unix.RTN_BLACKHOLE:
		return "blackhole"
	case unix.RTN_UNREACHABLE:
		return "unreachable"
	case unix.RTN_PROHIBIT:
		return "prohibit"
	case unix.RTN_LOCAL:
		return "local"
	}
	return fmt.Sprintf("type %d", t)
}

// whyUnusable says why a BGP next hop cannot be used in the FIB; "" when
// it can.
func (d *devices) whyUnusable(gw netip.Addr) string {
	if _, ok := d.resolve(gw); ok {
		return ""
	}
	switch {
	case !gw.IsValid() || gw.IsUnspecified():
		return "no next hop"
	case d.isLocal(gw):
		return "an address of this node"
	}
	routes, err := d.lookup(gw)
	switch {
	case err != nil || len(routes) == 0:
		return "no route to it"
	case !d.links[routes[0].LinkIndex].up:
		return fmt.Sprintf("its interface %s is down", d.links[routes[0].LinkIndex].name)
	}
	return "unreachable"
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
