package kernelsync

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
)

// Only a clear answer brings a session down: no route, or a route over a
// link known to be down. A failed lookup or a link not seen yet (both
// happen while links churn) leave the session alone.
func TestReachableOnlyOnAClearNo(t *testing.T) {
	peer := netip.MustParseAddr("10.200.0.1")
	via := func(index int) func(netip.Addr) ([]netlink.Route, error) {
		return func(netip.Addr) ([]netlink.Route, error) { return []netlink.Route{{LinkIndex: index}}, nil }
	}
	failing := func(err error) func(netip.Addr) ([]netlink.Route, error) {
		return func(netip.Addr) ([]netlink.Route, error) { return nil, err }
	}
	for _, tc := range []struct {
		name   string
		lookup func(netip.Addr) ([]netlink.Route, error)
		want   bool
	}{
		{"up link", via(2), true},
		{"down link", via(3), false},
		{"link not seen yet", via(9), true},
		{"network unreachable", failing(syscall.ENETUNREACH), false},
		{"no route", func(netip.Addr) ([]netlink.Route, error) { return nil, nil }, false},
		{"lookup failed", failing(errors.New("no buffer space available")), true},
	} {
		d := newDevices(nil, tc.lookup)
		d.links[2] = linkState{name: "eth1", up: true}
		d.links[3] = linkState{name: "eth2", up: false}
		if got := d.reachable(peer); got != tc.want {
			t.Errorf("%s: reachable = %v, want %v", tc.name, got, tc.want)
		}
	}
}
