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

// setupTunnel gives this node its VXLAN endpoint: a tunnel address from
// IPAM (handle vxlan-tunnel-addr-<node>, a Tunnel-use pool) and Calico's
// MAC, both published on the Node so the other nodes can reach it.
func setupTunnel(ctx context.Context, b datastore.Backend, node string, underlay netip.Addr, log *slog.Logger) (*dataplane.VXLAN, error) {
	tunnel, mac, err := publishTunnelEndpoint(ctx, b, node)
	if err != nil {
		return nil, err
	}
	log.Info("VXLAN endpoint", "device", dataplane.VXLANDevice, "tunnelAddress", tunnel, "mac", mac)
	return dataplane.NewVXLAN(dataplane.VXLANConfig{Underlay: underlay, TunnelAddr: tunnel, MAC: mac})
}

// publishTunnelEndpoint records the node's tunnel address and MAC on its
// Node, allocating the address unless the Node has one. The Node update is
// compare-and-swap and may run several times; the allocation is per handle,
// so a lost race does not leak an address.
func publishTunnelEndpoint(ctx context.Context, b datastore.Backend, node string) (netip.Addr, net.HardwareAddr, error) {
	var tunnel netip.Addr
	var mac net.HardwareAddr
	err := updateNode(ctx, b, node, func(n *datastore.Node) (bool, error) {
		if a, err := netip.ParseAddr(n.Spec.IPv4VXLANTunnelAddr); err == nil {
			tunnel = a
		} else {
			a, err := ipam.New(b).EnsureIPv4(ctx, ipam.AssignArgs{
				Node: node, Handle: tunnelHandle(node), Use: ipam.UseTunnel,
				Attrs: map[string]string{"node": node, "type": "vxlanTunnelAddress"},
			})
			if err != nil {
				return false, fmt.Errorf("VXLAN tunnel address: %w", err)
			}
			tunnel = a
		}
		if m, err := net.ParseMAC(n.Spec.VXLANTunnelMACAddr); err == nil {
			mac = m
		} else {
			mac = dataplane.VTEPMAC(node)
		}
		changed := n.Spec.IPv4VXLANTunnelAddr != tunnel.String() || n.Spec.VXLANTunnelMACAddr != mac.String()
		n.Spec.IPv4VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddr = tunnel.String(), mac.String()
		return changed, nil
	})
	return tunnel, mac, err
}

// tunnelHandle is the IPAM handle of a node's VXLAN tunnel address,
// Calico's name for it.
func tunnelHandle(node string) string { return "vxlan-tunnel-addr-" + node }

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
