package kernelsync

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestKernelFilterDropsOwnEchoes checks the socket filter against a real
// kernel, in a network namespace of its own: the notification of a route
// written by the batch writer never reaches the watch socket, one written
// by anyone else does.
func TestKernelFilterDropsOwnEchoes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New() // this thread is now inside it
	if err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	defer func() { _ = netns.Set(orig); ns.Close() }()

	w, err := newBatchWriter(DefaultProtocol, DefaultTable)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_IPV4_ROUTE}); err != nil {
		t.Fatal(err)
	}
	if err := dropPortInKernel(fd, w.port()); err != nil {
		t.Fatalf("attach filter: %v", err)
	}
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)

	ours, theirs := netip.MustParsePrefix("10.1.0.0/26"), netip.MustParsePrefix("10.2.0.0/26")
	ops := []routeOp{{prefix: ours, kind: opAdd, nexthop: blackhole}}
	w.run(ops)
	if ops[0].err != nil {
		t.Fatalf("own write: %v", ops[0].err)
	}
	if err := netlink.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: net.IP{10, 2, 0, 0}, Mask: net.CIDRMask(26, 32)}, Type: unix.RTN_BLACKHOLE}); err != nil {
		t.Fatalf("foreign write: %v", err)
	}
	var seen []netip.Prefix
	buf := make([]byte, 1<<16)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			break // timeout: nothing more is coming
		}
		// Port 0: the userspace check is off, only the kernel filter acts.
		forEachRouteUpdate(buf[:n], 0, func(u netlink.RouteUpdate) bool {
			if p, ok := prefixOf(&u.Route); ok {
				seen = append(seen, p)
			}
			return true
		})
	}
	if len(seen) != 1 || seen[0] != theirs {
		t.Fatalf("notifications seen: %v, want only %v (not our own %v)", seen, theirs, ours)
	}
}
