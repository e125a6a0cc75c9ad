package kernelsync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/petrel-net/petrel/internal/nlretry"
)

// devices is the device loop's view: links, their state and addresses,
// and the next-hop resolutions that depend on them.
type devices struct {
	patterns []string
	// lookup asks the kernel how it would reach an address (RouteGet).
	lookup   func(netip.Addr) ([]netlink.Route, error)
	links    map[int]linkState
	addrs    map[int][]netip.Prefix // ifindex -> addresses (as configured, with prefix length)
	resolved map[netip.Addr]resolution
}

type linkState struct {
	name string
	up   bool
}

type resolution struct {
	nh nexthop
	ok bool
}

func newDevices(patterns []string, lookup func(netip.Addr) ([]netlink.Route, error)) *devices {
	return &devices{patterns: patterns, lookup: lookup, links: map[int]linkState{}, addrs: map[int][]netip.Prefix{}, resolved: map[netip.Addr]resolution{}}
}

// isUp is BIRD's notion of a usable link: administratively up with a
// carrier (or a device that has no carrier concept, like lo).
func isUp(l netlink.Link) bool {
	a := l.Attrs()
	return a.Flags&net.FlagUp != 0 && (a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown)
}

func (d *devices) forgetResolutions() { clear(d.resolved) }

func (d *devices) isLocal(a netip.Addr) bool {
	for _, addrs := range d.addrs {
		for _, p := range addrs {
			if p.Addr() == a {
				return true
			}
		}
	}
	return false
}

// resolve finds how to reach a BGP next hop: directly on a connected
// subnet of an up link, else through whatever route the kernel would use
// ("gateway recursive"). Our own addresses and next hops behind down links
// are not usable.
func (d *devices) resolve(gw netip.Addr) (nexthop, bool) {
	if !gw.IsValid() || gw.IsUnspecified() {
		return nexthop{}, false
	}
	if r, ok := d.resolved[gw]; ok {
		return r.nh, r.ok
	}
	r := d.resolveUncached(gw)
	d.resolved[gw] = r
	return r.nh, r.ok
}

func (d *devices) resolveUncached(gw netip.Addr) resolution {
	if d.isLocal(gw) {
		return resolution{}
	}
	bestBits, bestIndex := -1, 0
	for index, addrs := range d.addrs {
		if !d.links[index].up {
			continue
		}
		for _, p := range addrs {
			if p.Masked().Contains(gw) && p.Bits() > bestBits {
				bestBits, bestIndex = p.Bits(), index
			}
		}
	}
	if bestBits >= 0 {
		return resolution{nh: nexthop{gw: gw, ifindex: bestIndex}, ok: true}
	}
	routes, err := d.lookup(gw)
	if err != nil || len(routes) == 0 || !d.links[routes[0].LinkIndex].up {
		return resolution{}
	}
	via := gw
	if g, ok := netip.AddrFromSlice(routes[0].Gw); ok {
		via = g.Unmap()
	}
	return resolution{nh: nexthop{gw: via, ifindex: routes[0].LinkIndex}, ok: true}
}

// reachable reports whether a peer can still be reached over an up link.
//
// Only a clear "no": the kernel has no route, or its link is known to be
// down. A lookup that fails otherwise, or a link this loop has not seen
// yet (both happen while thousands of links churn), counts as reachable:
// resetting a healthy session is worse than waiting for its hold time.
func (d *devices) reachable(peer netip.Addr) bool {
	routes, err := d.lookup(peer)
	if errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) || (err == nil && len(routes) == 0) {
		return false
	}
	if err != nil {
		return true
	}
	l, known := d.links[routes[0].LinkIndex]
	return !known || l.up
}

// setLink records a link's state; it reports whether anything changed and
// whether the link went down.
func (d *devices) setLink(index int, st linkState, deleted bool) (changed, wentDown bool) {
	old, had := d.links[index]
	if deleted {
		delete(d.links, index)
		delete(d.addrs, index)
		return had, had && old.up
	}
	d.links[index] = st
	return !had || old != st, had && old.up && !st.up
}

// setAddr adds or removes one address; it reports whether it changed.
func (d *devices) setAddr(index int, p netip.Prefix, add bool) bool {
	addrs := d.addrs[index]
	for i, have := range addrs {
		if have == p {
			if !add {
				d.addrs[index] = append(addrs[:i:i], addrs[i+1:]...)
				if len(d.addrs[index]) == 0 {
					delete(d.addrs, index) // as a scan would find it
				}
			}
			return !add
		}
	}
	if add {
		d.addrs[index] = append(addrs, p)
		slices.SortFunc(d.addrs[index], comparePrefix)
	}
	return add
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// equal compares links and addresses (the resolution cache aside).
func (d *devices) equal(o *devices) bool {
	return maps.Equal(d.links, o.links) && maps.EqualFunc(d.addrs, o.addrs, slices.Equal)
}

// matchInterface applies the ordered pattern list: first match decides.
func (d *devices) matchInterface(name string) bool {
	for _, pat := range d.patterns {
		exclude := strings.HasPrefix(pat, "-")
		if ok, _ := path.Match(strings.TrimPrefix(pat, "-"), name); ok {
			return !exclude
		}
	}
	return false
}

// directPrefixes are protocol direct's routes: the connected prefixes of
// up links whose name matches the pattern list.
func (d *devices) directPrefixes() map[netip.Prefix]bool {
	out := map[netip.Prefix]bool{}
	for index, addrs := range d.addrs {
		l := d.links[index]
		if !l.up || !d.matchInterface(l.name) {
			continue
		}
		for _, p := range addrs {
			out[p.Masked()] = true
		}
	}
	return out
}

// addrPrefix converts a netlink address of global or site scope; host and
// link scope addresses (127.0.0.1, fe80::) route nothing anywhere else.
func addrPrefix(ipn *net.IPNet, scope int) (netip.Prefix, bool) {
	if ipn == nil || scope == unix.RT_SCOPE_HOST || scope == unix.RT_SCOPE_LINK {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(ipn.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := ipn.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// scanDevices re-reads every link and address (the device loop's scan).
func (s *Sync) scanDevices(ctx context.Context) error {
	links, lerr := nlretry.Dump(s.h.LinkList)
	addrs, aerr := nlretry.Dump(func() ([]netlink.Addr, error) { return s.h.AddrList(nil, netlink.FAMILY_ALL) })
	for what, err := range map[string]error{"links": lerr, "addresses": aerr} {
		if err != nil && !nlretry.Interrupted(err) {
			return fmt.Errorf("kernelsync: list %s: %w", what, err)
		}
	}
	if lerr != nil || aerr != nil {
		// Still interrupted after the retries (thousands of links churning):
		// take what the dumps did see, adding and updating only, so that
		// the links routes go through are known; the next full scan
		// removes what is gone.
		s.mergeDevices(ctx, links, addrs)
		return fmt.Errorf("kernelsync: device scan incomplete: %w", errors.Join(lerr, aerr))
	}
	next := newDevices(s.cfg.Interfaces, s.dev.lookup)
	next.record(links, addrs)
	wentDown := false
	for index, old := range s.dev.links {
		if now, ok := next.links[index]; old.up && (!ok || !now.up) {
			wentDown = true
		}
	}
	if next.equal(s.dev) {
		return nil
	}
	s.dev = next
	s.devicesChanged(ctx, wentDown)
	return nil
}

// mergeDevices records the links and addresses an interrupted scan saw,
// removing nothing.
func (s *Sync) mergeDevices(ctx context.Context, links []netlink.Link, addrs []netlink.Addr) {
	if s.dev.record(links, addrs) {
		s.devicesChanged(ctx, false)
	}
}

// record adds or updates links and addresses, removing nothing; it
// reports whether anything changed.
func (d *devices) record(links []netlink.Link, addrs []netlink.Addr) bool {
	changed := false
	for _, l := range links {
		c, _ := d.setLink(l.Attrs().Index, stateOf(l), false)
		changed = changed || c
	}
	for _, a := range addrs {
		if p, ok := addrPrefix(a.IPNet, a.Scope); ok && d.setAddr(a.LinkIndex, p, true) {
			changed = true
		}
	}
	return changed
}

func stateOf(l netlink.Link) linkState { return linkState{name: l.Attrs().Name, up: isUp(l)} }

func (s *Sync) onLink(ctx context.Context, l netlink.Link, deleted bool) {
	changed, wentDown := s.dev.setLink(l.Attrs().Index, stateOf(l), deleted)
	if changed {
		s.devicesChanged(ctx, wentDown)
	}
}

func (s *Sync) onAddr(ctx context.Context, u netlink.AddrUpdate) {
	p, ok := addrPrefix(&u.LinkAddress, u.Scope)
	if ok && s.dev.setAddr(u.LinkIndex, p, u.NewAddr) {
		s.devicesChanged(ctx, !u.NewAddr)
	}
}

// devicesChanged re-evaluates everything that depends on links and
// addresses. When something went away, peers that can no longer be
// reached are brought down now instead of after their hold time.
func (s *Sync) devicesChanged(ctx context.Context, lost bool) {
	s.dev.forgetResolutions()
	s.redesireAll()
	s.directDirty = true
	if !lost {
		return
	}
	for _, peer := range s.speaker.PeerAddresses() {
		if s.dev.reachable(peer) {
			continue
		}
		s.log.Info("peer unreachable after an interface change; bringing its session down", "peer", peer)
		if err := s.speaker.ResetPeer(ctx, peer, "Interface down"); err != nil {
			s.log.Warn("resetting unreachable peer", "peer", peer, "err", err)
		}
	}
}
