package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/ipam"
)

// ipipTunnelHandle is the IPAM handle of a node's IPIP tunnel address,
// Calico's name for it.
func ipipTunnelHandle(node string) string { return "ipip-tunnel-addr-" + node }

// publishIPIPTunnelAddr keeps the node's IPIP tunnel address as
// calico-node's allocateip does: with IPIP pools selecting the node
// (pools), the handle ipip-tunnel-addr-<node> holds one address in one of
// them (the one it holds already if it is still in one, else a new one,
// attributes node and type ipipTunnelAddress), published as the Node's
// spec.bgp.ipv4IPIPTunnelAddr; without, the handle is released and the
// field cleared. IPAM is decided from the handle, not from the Node, so
// running it again (after a lost compare-and-swap, or a restart) takes no
// second address.
func publishIPIPTunnelAddr(ctx context.Context, b datastore.Backend, node string, pools []netip.Prefix) (netip.Addr, error) {
	c, handle := ipam.New(b), ipipTunnelHandle(node)
	var tunnel netip.Addr
	held, err := c.HandleAddrs(ctx, handle)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("IPIP tunnel address: handle %s: %w", handle, err)
	}
	i := slices.IndexFunc(held, func(a netip.Addr) bool { return inAny(pools, a) })
	switch {
	case len(held) == 1 && i == 0:
		tunnel = held[0]
	case len(pools) == 0 && len(held) == 0:
	default:
		// Keep none of what the handle holds unless it alone is right:
		// an address in a pool that stopped being IPIP is given back.
		if _, err := c.ReleaseByHandle(ctx, handle); err != nil {
			return netip.Addr{}, fmt.Errorf("IPIP tunnel address: release %s: %w", handle, err)
		}
		if len(pools) == 0 {
			break
		}
		tunnel, err = c.EnsureIPv4(ctx, ipam.AssignArgs{
			Node: node, Handle: handle, Use: ipam.UseTunnel, Pools: pools,
			Attrs: map[string]string{"node": node, "type": "ipipTunnelAddress"},
		})
		if err != nil {
			return netip.Addr{}, fmt.Errorf("IPIP tunnel address from %v: %w", pools, err)
		}
	}
	want := ""
	if tunnel.IsValid() {
		want = tunnel.String()
	}
	err = updateNode(ctx, b, node, func(n *datastore.Node) (bool, error) {
		if n.Spec.BGP == nil {
			if want == "" {
				return false, nil
			}
			n.Spec.BGP = &datastore.NodeBGPSpec{}
		}
		changed := n.Spec.BGP.IPv4IPIPTunnelAddr != want
		n.Spec.BGP.IPv4IPIPTunnelAddr = want
		return changed, nil
	})
	return tunnel, err
}

func inAny(prefixes []netip.Prefix, a netip.Addr) bool {
	return slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a) })
}
