package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/ipam"
)

// vxlanFamily is what differs between the node's two VXLAN endpoints,
// vxlan.calico for IPv4 pools and vxlan-v6.calico for IPv6 pools, in the
// datastore: the Node's fields, the IPAM handle and attribute type of the
// tunnel address (calico-node's allocateip), the MAC Felix computes, and
// the node address the tunnel runs over.
type vxlanFamily struct {
	name         string // for errors and logs: "IPv4", "IPv6"
	v6           bool
	handlePrefix string
	attrType     string
	// fields are the Node's tunnel address and MAC fields.
	fields func(*datastore.NodeSpec) (addr, mac *string)
	mac    func(node string) net.HardwareAddr
	// underlay is a Node's address of the family.
	underlay func(*datastore.Node) (netip.Prefix, bool)
}

var (
	vxlanV4 = vxlanFamily{
		name: "IPv4", handlePrefix: "vxlan-tunnel-addr-", attrType: "vxlanTunnelAddress",
		fields: func(s *datastore.NodeSpec) (*string, *string) { return &s.IPv4VXLANTunnelAddr, &s.VXLANTunnelMACAddr },
		mac:    dataplane.VTEPMAC, underlay: (*datastore.Node).IPv4,
	}
	vxlanV6 = vxlanFamily{
		name: "IPv6", v6: true, handlePrefix: "vxlan-v6-tunnel-addr-", attrType: "vxlanV6TunnelAddress",
		fields: func(s *datastore.NodeSpec) (*string, *string) { return &s.IPv6VXLANTunnelAddr, &s.VXLANTunnelMACAddrV6 },
		mac:    dataplane.VTEPMACV6, underlay: (*datastore.Node).IPv6,
	}
)

// handle is the IPAM handle of a node's tunnel address, Calico's name for
// it: vxlan-tunnel-addr-<node>, vxlan-v6-tunnel-addr-<node>.
func (f vxlanFamily) handle(node string) string { return f.handlePrefix + node }

// holds reports whether a is of the family.
func (f vxlanFamily) holds(a netip.Addr) bool { return a.IsValid() && a.Is6() == f.v6 && !a.Is4In6() }

// setupTunnel gives this node its VXLAN endpoint of one family over
// underlay: a tunnel address from IPAM and Calico's MAC, both published on
// the Node so the other nodes can reach it.
func setupTunnel(ctx context.Context, b datastore.Backend, node string, fam vxlanFamily, underlay netip.Addr, pools []netip.Prefix, log *slog.Logger) (*dataplane.VXLAN, error) {
	tunnel, mac, err := publishTunnelEndpoint(ctx, b, node, fam, pools)
	if err != nil {
		return nil, err
	}
	log.Info("VXLAN endpoint", "device", dataplane.VXLANDeviceFor(underlay), "underlay", underlay, "tunnelAddress", tunnel, "mac", mac.String())
	return dataplane.NewVXLAN(dataplane.VXLANConfig{Underlay: underlay, TunnelAddr: tunnel, MAC: mac})
}

// publishTunnelEndpoint records the node's tunnel address and MAC of one
// family on its Node, allocating the address unless the Node has one: from
// the family's VXLAN pools that select the node (pools; any pool of the
// family that allows tunnel addresses when there is none), with
// calico-node's handle and attributes. The Node update is compare-and-swap
// and may run several times; the allocation is per handle, so a lost race
// does not leak an address.
func publishTunnelEndpoint(ctx context.Context, b datastore.Backend, node string, fam vxlanFamily, pools []netip.Prefix) (netip.Addr, net.HardwareAddr, error) {
	var tunnel netip.Addr
	var mac net.HardwareAddr
	err := updateNode(ctx, b, node, func(n *datastore.Node) (bool, error) {
		addrField, macField := fam.fields(&n.Spec)
		if a, err := netip.ParseAddr(*addrField); err == nil && fam.holds(a) {
			tunnel = a
		} else {
			args := ipam.AssignArgs{
				Node: node, Handle: fam.handle(node), Use: ipam.UseTunnel, Pools: pools,
				Attrs: map[string]string{"node": node, "type": fam.attrType},
			}
			if fam.v6 {
				args.Num6 = 1
			} else {
				args.Num4 = 1
			}
			got, err := ipam.New(b).Ensure(ctx, args)
			if err != nil {
				return false, fmt.Errorf("VXLAN %s tunnel address: %w", fam.name, err)
			}
			tunnel = got[0]
		}
		if m, err := net.ParseMAC(*macField); err == nil {
			mac = m
		} else {
			mac = fam.mac(node)
		}
		changed := *addrField != tunnel.String() || *macField != mac.String()
		*addrField, *macField = tunnel.String(), mac.String()
		return changed, nil
	})
	return tunnel, mac, err
}

// updateNode applies change to this node's Node with compare-and-swap,
// retrying on conflicts; change reports whether it changed anything.
func updateNode(ctx context.Context, b datastore.Backend, name string, change func(*datastore.Node) (bool, error)) error {
	for attempt := 0; attempt < 10; attempt++ {
		obj, err := b.Get(ctx, datastore.KindNode, name)
		if err != nil {
			return fmt.Errorf("node %q: %w", name, err)
		}
		n := obj.(*datastore.Node)
		changed, err := change(n)
		if err != nil || !changed {
			return err
		}
		if _, err = b.Update(ctx, n); !errors.Is(err, datastore.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("node %q: too many conflicting updates", name)
}
