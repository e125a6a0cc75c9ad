package dataplane

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// IPIP defaults, Calico's.
const (
	IPIPDevice   = "tunl0"
	IPIPOverhead = 20 // the outer IPv4 header
)

// ErrNoIPIP: tunl0 does not exist and cannot be created, because the
// kernel has no IPIP support (the ipip module is missing or not loaded).
var ErrNoIPIP = errors.New(IPIPDevice + " does not exist and cannot be created: the kernel has no IPIP support (ipip module)")

// IPIPConfig is this node's IPIP endpoint.
type IPIPConfig struct {
	// Underlay is the node's own address; its interface's MTU less 20 is
	// tunl0's.
	Underlay netip.Addr
	MTU      int // 0 = parent MTU - 20
}

// IPIP owns tunl0 as calico-node does with BIRD: its MTU, its address
// (the node's IPIP tunnel address, from an IPIP pool) and the routes of
// the remote blocks it carries, `<block> via <node address> dev tunl0
// onlink` (protocol 80) — what BIRD's kernel protocol writes for a route
// with krt_tunnel = "tunl0". There is no per-remote state: the kernel
// encapsulates towards the route's gateway.
//
// tunl0 is the ipip module's fallback device. When it is missing, IPIP
// creates it, as felix does; without the module that fails with ErrNoIPIP.
type IPIP struct {
	h   *netlink.Handle
	w   tunnelWriter // h; a counter in tests
	cfg IPIPConfig
}

// NewIPIP works in the current network namespace.
func NewIPIP(cfg IPIPConfig) (*IPIP, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	return &IPIP{h: h, w: h, cfg: cfg}, nil
}

func (t *IPIP) Close() { t.h.Close() }

// Sync makes tunl0 hold tunnel (none when it is the zero Addr) and
// exactly the routes of want (block -> the remote node's address),
// writing only the difference, so a route or address removed or changed
// behind petrel's back is put back.
func (t *IPIP) Sync(tunnel netip.Addr, want map[netip.Prefix]netip.Addr) error {
	link, err := t.ensureDevice(tunnel)
	if err != nil {
		return err
	}
	return syncOnlinkRoutes(t.h, t.w, link.Attrs().Index, unix.AF_INET, want)
}

// Ensure is Sync's device half (tunl0, its MTU, state and address),
// routes untouched: whether tunl0 can carry routes at all, asked before
// kernel sync hands any over.
func (t *IPIP) Ensure(tunnel netip.Addr) error {
	_, err := t.ensureDevice(tunnel)
	return err
}

// ensureDevice finds or creates tunl0 and sets its MTU, address and
// state. An existing tunl0 is used whatever its type, as felix does.
func (t *IPIP) ensureDevice(tunnel netip.Addr) (netlink.Link, error) {
	parent, err := parentOf(t.h, t.cfg.Underlay, IPIPDevice)
	if err != nil {
		return nil, err
	}
	mtu := t.cfg.MTU
	if mtu == 0 {
		mtu = parent.Attrs().MTU - IPIPOverhead
	}
	link, err := t.h.LinkByName(IPIPDevice)
	if err != nil {
		if err := t.h.LinkAdd(ipipLink(mtu)); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoIPIP, err)
		}
		if link, err = t.h.LinkByName(IPIPDevice); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoIPIP, err)
		}
	}
	if link.Attrs().MTU != mtu {
		if err := t.h.LinkSetMTU(link, mtu); err != nil {
			return nil, fmt.Errorf("%s MTU %d: %w", IPIPDevice, mtu, err)
		}
	}
	if err := syncDeviceAddr(t.h, link, unix.AF_INET, tunnel); err != nil {
		return nil, err
	}
	return link, t.h.LinkSetUp(link)
}

// ipipLink is the request that creates tunl0 where the module is loaded
// but the device is gone: an IPIP tunnel with no fixed endpoints (the
// routes' gateways are the far ends).
func ipipLink(mtu int) *netlink.Iptun {
	return &netlink.Iptun{LinkAttrs: netlink.LinkAttrs{Name: IPIPDevice, MTU: mtu}}
}
