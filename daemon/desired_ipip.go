package daemon

import (
	"net/netip"
	"strings"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/selector"
)

// ipipPlan is the IPIP part of desired: what BIRD's calico_kernel_programming
// gives krt_tunnel = "tunl0", and the node's tunnel address.
type ipipPlan struct {
	// Pools are the enabled IPIP pools that select this node: the node's
	// tunnel address comes from one of them, and it has none without them
	// (calico-node's allocateip).
	Pools []netip.Prefix
	// Names are every IPIP pool's name and mode ("p (Always)"), for the
	// problem shown when tunl0 cannot exist.
	Names []string
	// Routes are the other nodes' blocks carried by tunl0: block -> the
	// node's own address (the route's gateway, onlink). CrossSubnet pools
	// have only the nodes outside our subnet here; kernel sync routes the
	// others natively from BGP, as BIRD does.
	Routes map[netip.Prefix]netip.Addr
	// Excluded are Routes' blocks: kernel sync leaves them alone.
	Excluded []netip.Prefix
}

// planIPIP decides, for every other node's confirmed block in an IPIP pool
// (disabled pools too: their blocks stay routed), whether tunl0 carries it.
func planIPIP(snap snapshot, me self) ipipPlan {
	plan := ipipPlan{Routes: map[netip.Prefix]netip.Addr{}}
	labels := nodeLabels(snap.Nodes, me.Name)
	for _, p := range snap.Pools {
		cidr, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil || !ipipPool(p) {
			continue
		}
		plan.Names = append(plan.Names, p.Name+" ("+p.Spec.IPIPMode+")")
		if !p.Spec.Disabled && cidr.Addr().Is4() && selects(p.Spec.NodeSelector, labels) {
			plan.Pools = append(plan.Pools, cidr.Masked())
		}
	}
	if len(plan.Names) == 0 {
		return plan
	}
	addrs := map[string]netip.Addr{}
	for _, n := range snap.Nodes {
		if ip, ok := n.IPv4(); ok && n.Name != me.Name {
			addrs[n.Name] = ip.Addr()
		}
	}
	for _, a := range snap.Affinities {
		via, ok := addrs[a.Spec.Node]
		if !ok || (a.Spec.State != "confirmed" && a.Spec.State != "") || a.Spec.Deleted == "true" {
			continue
		}
		block, err := netip.ParsePrefix(a.Spec.CIDR)
		if err == nil && encapsulated(snap.Pools, block, me.Subnet, via, ipipModeOf) {
			plan.Routes[block.Masked()] = via
			plan.Excluded = append(plan.Excluded, block.Masked())
		}
	}
	return plan
}

func ipipModeOf(p *datastore.IPPool) string { return p.Spec.IPIPMode }

func ipipPool(p *datastore.IPPool) bool { return p.Spec.IPIPMode != "" && p.Spec.IPIPMode != "Never" }

// nodeLabels are the labels of the named Node (nil when it is not there).
func nodeLabels(nodes []*datastore.Node, name string) map[string]string {
	for _, n := range nodes {
		if n.Name == name {
			return n.GetLabels()
		}
	}
	return nil
}

// selects reports whether a pool's nodeSelector selects a node with these
// labels; empty and all() select every node, and an invalid selector none.
func selects(nodeSelector string, labels map[string]string) bool {
	s := strings.TrimSpace(nodeSelector)
	if s == "" || s == "all()" {
		return true
	}
	sel, err := selector.Parse(s)
	return err == nil && sel.Matches(labels)
}
