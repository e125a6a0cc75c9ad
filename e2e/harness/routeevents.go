package harness

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RouteEvent is one change to a main-table route as the kernel announced
// it, stamped when the test received it.
type RouteEvent struct {
	Deleted  bool
	Dst      netip.Prefix
	Gateways []netip.Addr
	Protocol int
	At       time.Time
}

// WatchRoutes subscribes to the route changes of the node's namespace. The
// times come from the kernel's own notifications, so a measurement made with
// them does not include the cost of polling with `ip route` (tens to
// hundreds of ms on a loaded machine).
func (n *Node) WatchRoutes(t testing.TB) <-chan RouteEvent {
	t.Helper()
	ns, err := netns.GetFromName(n.NS)
	must(t, err)
	updates, done := make(chan netlink.RouteUpdate, 256), make(chan struct{})
	err = netlink.RouteSubscribeWithOptions(updates, done, netlink.RouteSubscribeOptions{Namespace: &ns})
	ns.Close()
	must(t, err)
	events := make(chan RouteEvent, 256)
	go func() {
		defer close(events)
		for u := range updates {
			if ev, ok := routeEvent(u); ok {
				events <- ev
			}
		}
	}()
	t.Cleanup(func() { close(done) })
	return events
}

func routeEvent(u netlink.RouteUpdate) (RouteEvent, bool) {
	if u.Table != unix.RT_TABLE_MAIN || u.Dst == nil {
		return RouteEvent{}, false
	}
	ev := RouteEvent{Deleted: u.Type == unix.RTM_DELROUTE, Protocol: int(u.Protocol), At: time.Now()}
	ones, _ := u.Dst.Mask.Size()
	ip, _ := netip.AddrFromSlice(u.Dst.IP)
	ev.Dst = netip.PrefixFrom(ip.Unmap(), ones)
	addGw := func(gw []byte) {
		if a, ok := netip.AddrFromSlice(gw); ok {
			ev.Gateways = append(ev.Gateways, a.Unmap())
		}
	}
	addGw(u.Gw)
	for _, nh := range u.MultiPath {
		addGw(nh.Gw)
	}
	return ev, true
}
