package kernelsync

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// watchRoutes follows the kernel's route changes on a socket of its own.
//
// The kernel stamps each route notification with the netlink port of the
// socket whose request caused it, so the echoes of petrel's own writes
// (100k of them while a full table is installed) are recognised from the
// 16-byte header and dropped before any parsing or allocation: the write's
// ack already told the loop what the kernel holds. Everything else (other
// daemons, the operator, the kernel itself) is parsed into a netlink.Route.
//
// onError is called once when the socket fails (ENOBUFS: the kernel
// dropped events); the caller then resubscribes and rescans.
func watchRoutes(ctx context.Context, ownPort uint32, out chan<- netlink.RouteUpdate, onError func(error)) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	groups := uint32(unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("netlink bind: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer)
	}
	if ownPort != 0 {
		// Best effort: without the filter the echoes are dropped below.
		_ = dropPortInKernel(fd, ownPort)
	}
	// A receive timeout lets the reader notice ctx ending without another
	// file descriptor to poll.
	tv := unix.NsecToTimeval(int64(500 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 1<<16)
		for ctx.Err() == nil {
			n, err := unix.Read(fd, buf) // not Recvfrom: no sockaddr to allocate
			switch {
			case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
				continue
			case err != nil:
				onError(err)
				return
			}
			if !forEachRouteUpdate(buf[:n], ownPort, func(u netlink.RouteUpdate) bool {
				select {
				case out <- u:
					return true
				case <-ctx.Done():
					return false
				}
			}) {
				return
			}
		}
	}()
	return nil
}

// dropPortInKernel attaches a socket filter that drops, inside the kernel,
// every notification stamped with port: at 100k routes the echoes of our
// own writes would otherwise be copied to this socket only to be skipped.
// Classic BPF loads the 32-bit nlmsg_pid at offset 12 in network byte
// order, so the constant is the port's native bytes read big-endian.
func dropPortInKernel(fd int, port uint32) error {
	var native [4]byte
	binary.NativeEndian.PutUint32(native[:], port)
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 12},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: binary.BigEndian.Uint32(native[:]), Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},          // ours: drop
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}, // anyone else's: keep whole
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
}

// forEachRouteUpdate calls fn for each route message in b that another
// socket than ownPort caused (0: report all; the kernel's own changes carry
// port 0); it stops early when fn returns false.
func forEachRouteUpdate(b []byte, ownPort uint32, fn func(netlink.RouteUpdate) bool) bool {
	for len(b) >= unix.SizeofNlMsghdr {
		length := int(binary.NativeEndian.Uint32(b[0:4]))
		if length < unix.SizeofNlMsghdr || length > len(b) {
			return true // truncated: nothing more to read in this datagram
		}
		typ := binary.NativeEndian.Uint16(b[4:6])
		port := binary.NativeEndian.Uint32(b[12:16])
		msg := b[unix.SizeofNlMsghdr:length]
		b = b[nlmsgAlign(length):]
		if (ownPort != 0 && port == ownPort) || (typ != unix.RTM_NEWROUTE && typ != unix.RTM_DELROUTE) {
			continue
		}
		r, ok := parseRoute(msg)
		if ok && !fn(netlink.RouteUpdate{Type: typ, Route: r}) {
			return false
		}
	}
	return true
}

func nlmsgAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// parseRoute reads the fields of an rtmsg that kernel sync uses. Addresses
// are copied: the receive buffer is reused.
func parseRoute(m []byte) (netlink.Route, bool) {
	if len(m) < unix.SizeofRtMsg {
		return netlink.Route{}, false
	}
	rt := nl.DeserializeRtMsg(m)
	r := netlink.Route{
		Family:   int(rt.Family),
		Protocol: netlink.RouteProtocol(rt.Protocol),
		Table:    int(rt.Table),
		Type:     int(rt.Type),
		Scope:    netlink.Scope(rt.Scope),
	}
	attrs, err := nl.ParseRouteAttr(m[unix.SizeofRtMsg:])
	if err != nil {
		return netlink.Route{}, false
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_DST:
			ip := net.IP(append([]byte(nil), a.Value...))
			r.Dst = &net.IPNet{IP: ip, Mask: net.CIDRMask(int(rt.Dst_len), 8*len(ip))}
		case unix.RTA_GATEWAY:
			r.Gw = net.IP(append([]byte(nil), a.Value...))
		case unix.RTA_OIF:
			r.LinkIndex = int(binary.NativeEndian.Uint32(a.Value))
		case unix.RTA_PRIORITY:
			r.Priority = int(binary.NativeEndian.Uint32(a.Value))
		case unix.RTA_TABLE:
			r.Table = int(binary.NativeEndian.Uint32(a.Value))
		case unix.RTA_MULTIPATH:
			r.MultiPath = parseMultipath(a.Value)
		}
	}
	return r, true
}

func parseMultipath(b []byte) []*netlink.NexthopInfo {
	var out []*netlink.NexthopInfo
	for len(b) >= unix.SizeofRtNexthop {
		nh := nl.DeserializeRtNexthop(b)
		n := int(nh.RtNexthop.Len)
		if n < unix.SizeofRtNexthop || n > len(b) {
			break
		}
		info := &netlink.NexthopInfo{LinkIndex: int(nh.RtNexthop.Ifindex)}
		if attrs, err := nl.ParseRouteAttr(b[unix.SizeofRtNexthop:n]); err == nil {
			for _, a := range attrs {
				if a.Attr.Type == unix.RTA_GATEWAY {
					info.Gw = net.IP(append([]byte(nil), a.Value...))
				}
			}
		}
		out = append(out, info)
		b = b[nlmsgAlign(n):]
	}
	return out
}
