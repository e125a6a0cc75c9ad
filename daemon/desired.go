package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/ipam"
	"github.com/petrel-net/petrel/mesh"
	"github.com/petrel-net/petrel/services"
)

// snapshot is one consistent read of the watched kinds, each sorted by
// name, with the objects left out of them (undecodable, invalid pools).
type snapshot struct {
	Nodes      []*datastore.Node
	Peers      []*datastore.BGPPeer
	Configs    []*datastore.BGPConfiguration
	BFDConfigs []*datastore.BFDConfiguration
	Filters    []*datastore.BGPFilter
	Pools      []*datastore.IPPool // valid ones only
	Blocks     []*datastore.IPAMBlock
	Affinities []*datastore.BlockAffinity
	LeftOut    []string
}

// self is what the node knows of itself before it reads the datastore.
type self struct {
	Name string
	// Subnet and Subnet6 are the node's own IPv4 and IPv6 subnets:
	// CrossSubnet pools encapsulate only towards nodes outside the one of
	// their family.
	Subnet, Subnet6 netip.Prefix
	// Interfaces are the node's interfaces, for BFD's directly-connected
	// test (nil: the Node's subnets).
	Interfaces []mesh.Interface
	// Secret resolves BGP passwords (nil: none can be read).
	Secret func(name, key string) (string, error)
}

// desired is everything the node should be doing, computed in one place
// (computeDesired) from a snapshot; each reconciler reads its part of it.
// A new concern (Kubernetes Service prefixes next) adds its field here.
type desired struct {
	// Peers is the BGP peer set (mesh, BGPPeers, route reflectors).
	Peers []bgp.PeerConfig
	// RoutePolicy is the peers' BGPFilters and next-hop modes and the
	// prefixAdvertisements communities.
	RoutePolicy bgp.RoutePolicy
	// ASN is applied live (asnReconciler); ListenPort and BindNodeIP
	// (bindMode NodeIP: listen on the node's address only) are read at
	// start only, and a change is reported.
	ASN        uint32
	ListenPort uint16
	BindNodeIP bool
	// ExportRanges are the pools inside which learned routes may be
	// advertised (calico_export_to_bgp_peers).
	ExportRanges []netip.Prefix
	// Reflector: this node is a route reflector and passes pool routes on.
	Reflector bool
	// Originated are the node's confirmed blocks and, as /32s, the
	// addresses it borrowed from other nodes' blocks.
	Originated []netip.Prefix
	// Blackholes are the node's confirmed blocks: unknown addresses in
	// them are dropped locally.
	Blackholes []netip.Prefix
	// ReachableBy are the BGPPeers' static routes to their peers.
	ReachableBy []mesh.StaticRoute
	// VXLAN is vxlan.calico's part (IPv4 pools), VXLANV6
	// vxlan-v6.calico's (IPv6 pools).
	VXLAN, VXLANV6 vxlanPlan
	IPIP           ipipPlan
	// Problems are the objects left out, one line each, for status.
	Problems []string
	// IgnoredInterfaces are BGPConfiguration ignoredInterfaces: left out
	// of protocol direct.
	IgnoredInterfaces []string
	// LogLevel is BGPConfiguration logSeverityScreen; nil when unset.
	LogLevel *slog.Level
	// Services are the default BGPConfiguration's Service fields.
	Services services.Config
}

// vxlanPlan is the VXLAN part of desired for one family.
type vxlanPlan struct {
	// Enabled: some pool of the family encapsulates, so the tunnel is
	// needed.
	Enabled bool
	// Pools are the family's enabled VXLAN pools that select this node:
	// its tunnel address comes from one of them (calico-node's
	// allocateip).
	Pools []netip.Prefix
	// Remotes are the other nodes' tunnel endpoints with the blocks routed
	// through them.
	Remotes []dataplane.Remote
	// Excluded are the blocks the tunnel routes: kernel sync leaves them
	// alone.
	Excluded []netip.Prefix
	// Problem, when set, says why the family's pools get no tunnel here.
	Problem string
}

// routesIPv6 says whether the node routes IPv6: it has IPv6 peers or IPv6
// prefixes of its own.
func (d *desired) routesIPv6() bool {
	for _, p := range d.Peers {
		if p.Address.Is6() {
			return true
		}
	}
	return slices.ContainsFunc(d.Originated, func(p netip.Prefix) bool { return p.Addr().Is6() })
}

// computeDesired is the one place where the datastore's objects become
// what this node should do.
func computeDesired(snap snapshot, me self) desired {
	res := mesh.Desired(mesh.Input{
		NodeName: me.Name, Nodes: snap.Nodes, Peers: snap.Peers, Configs: snap.Configs,
		BFDConfigs: snap.BFDConfigs, Filters: snap.Filters, Interfaces: me.Interfaces, Secret: me.Secret,
	})
	own, borrowed := ipam.NodeRoutes(me.Name, snap.Blocks, snap.Affinities)
	originated := slices.Clone(own)
	for _, a := range borrowed {
		originated = append(originated, netip.PrefixFrom(a, a.BitLen()))
	}
	problems := slices.Clone(snap.LeftOut)
	for _, p := range res.Problems {
		problems = append(problems, p.Error())
	}
	vx4, vx6 := planVXLAN(snap, me, vxlanV4), planVXLAN(snap, me, vxlanV6)
	for _, plan := range []vxlanPlan{vx4, vx6} {
		if plan.Problem != "" {
			problems = append(problems, plan.Problem)
		}
	}
	var logLevel *slog.Level
	if l, ok := logLevelFrom(snap.Configs, me.Name); ok {
		logLevel = &l
	}
	return desired{
		BindNodeIP: nodeSetting(snap.Configs, me.Name, func(s *datastore.BGPConfigurationSpec) string { return s.BindMode }) == "NodeIP",
		LogLevel:   logLevel,
		Services:   services.ConfigFrom(defaultConfig(snap.Configs)),
		Peers:      res.Peers, RoutePolicy: res.Policy, ASN: res.ASN, ListenPort: res.ListenPort,
		ReachableBy:       res.ReachableBy,
		IgnoredInterfaces: ignoredInterfaces(snap.Configs, me.Name),
		ExportRanges:      exportRanges(snap.Pools),
		Reflector:         isReflector(snap.Nodes, me.Name),
		Originated:        originated,
		Blackholes:        own,
		VXLAN:             vx4,
		VXLANV6:           vx6,
		IPIP:              planIPIP(snap, me),
		Problems:          problems,
	}
}

// defaultConfig is the BGPConfiguration named "default", or nil.
func defaultConfig(configs []*datastore.BGPConfiguration) *datastore.BGPConfiguration {
	for _, c := range configs {
		if c.Name == "default" {
			return c
		}
	}
	return nil
}

// exportRanges are the pools that allow BGP export: routes this node
// learns inside them may be advertised (calico_export_to_bgp_peers). A
// disabled pool hands out no new addresses, but the ones it gave are
// still routed and advertised, as Calico does.
func exportRanges(pools []*datastore.IPPool) []netip.Prefix {
	var out []netip.Prefix
	for _, pool := range pools {
		if pool.Spec.DisableBGPExport {
			continue
		}
		if p, err := netip.ParsePrefix(pool.Spec.CIDR); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// isReflector reports whether the node is a route reflector.
func isReflector(nodes []*datastore.Node, name string) bool {
	for _, n := range nodes {
		if n.Name == name {
			return n.Spec.BGP != nil && n.Spec.BGP.RouteReflectorClusterID != ""
		}
	}
	return false
}

// planVXLAN decides, for every other node's confirmed block of the
// family, who programs its route: the family's VXLAN device when the
// block's pool encapsulates towards that node (Always, or CrossSubnet and
// the node's address of the family is outside our subnet of the family),
// else kernel sync from BGP.
func planVXLAN(snap snapshot, me self, fam vxlanFamily) vxlanPlan {
	plan := vxlanPlan{Enabled: vxlanEnabled(snap.Pools, fam)}
	if !plan.Enabled {
		return plan
	}
	subnet := me.Subnet
	if fam.v6 {
		subnet = me.Subnet6
	}
	if !subnet.IsValid() {
		// No underlay of the family (an IPv6-only node and an IPv4 VXLAN
		// pool): no tunnel, as Felix, and one problem in status rather
		// than a failed setup on every pass.
		return vxlanPlan{Problem: fmt.Sprintf("VXLAN for %s pools: this node has no %s address, so no VXLAN device of that family; those pools are not routed here", fam.name, fam.name)}
	}
	labels := nodeLabels(snap.Nodes, me.Name)
	for _, p := range snap.Pools {
		cidr, err := netip.ParsePrefix(p.Spec.CIDR)
		if err == nil && fam.holds(cidr.Addr()) && vxlanPool(p) && !p.Spec.Disabled && selects(p.Spec.NodeSelector, labels) {
			plan.Pools = append(plan.Pools, cidr.Masked())
		}
	}
	remotes := tunnelEndpoints(snap.Nodes, me.Name, fam)
	for _, a := range snap.Affinities {
		r, ok := remotes[a.Spec.Node]
		if !ok || (a.Spec.State != "confirmed" && a.Spec.State != "") || a.Spec.Deleted == "true" {
			continue
		}
		block, err := netip.ParsePrefix(a.Spec.CIDR)
		if err != nil || !fam.holds(block.Addr()) {
			continue
		}
		if encapsulated(snap.Pools, block, subnet, r.Underlay, vxlanModeOf) {
			r.Blocks = append(r.Blocks, block)
			plan.Excluded = append(plan.Excluded, block)
		}
	}
	plan.Remotes = make([]dataplane.Remote, 0, len(remotes))
	for _, n := range snap.Nodes {
		if r, ok := remotes[n.Name]; ok {
			plan.Remotes = append(plan.Remotes, *r)
		}
	}
	return plan
}

// vxlanEnabled reports whether any pool of the family encapsulates with
// VXLAN (disabled pools too: their blocks stay routed).
func vxlanEnabled(pools []*datastore.IPPool, fam vxlanFamily) bool {
	for _, p := range pools {
		if cidr, err := netip.ParsePrefix(p.Spec.CIDR); err == nil && fam.holds(cidr.Addr()) && vxlanPool(p) {
			return true
		}
	}
	return false
}

func vxlanPool(p *datastore.IPPool) bool {
	return p.Spec.VXLANMode != "" && p.Spec.VXLANMode != "Never"
}

// tunnelEndpoints are the other nodes that publish a VXLAN endpoint of the
// family (a node address, tunnel address and MAC of it), by name.
func tunnelEndpoints(nodes []*datastore.Node, self string, fam vxlanFamily) map[string]*dataplane.Remote {
	remotes := map[string]*dataplane.Remote{}
	for _, n := range nodes {
		ip, ok := fam.underlay(n)
		addrField, macField := fam.fields(&n.Spec)
		if n.Name == self || !ok || *addrField == "" {
			continue
		}
		tun, err1 := netip.ParseAddr(*addrField)
		mac, err2 := fam.mac(n.Name), error(nil) // unpublished: the MAC Felix computes for it
		if *macField != "" {
			mac, err2 = net.ParseMAC(*macField)
		}
		if err1 != nil || err2 != nil || !fam.holds(tun) {
			continue
		}
		remotes[n.Name] = &dataplane.Remote{Node: n.Name, Underlay: ip.Addr(), TunnelAddr: tun, MAC: mac}
	}
	return remotes
}

func vxlanModeOf(p *datastore.IPPool) string { return p.Spec.VXLANMode }

// encapsulated reports whether a pool holding block encapsulates traffic
// towards underlay, by the pool's mode field (vxlanMode or ipipMode).
func encapsulated(pools []*datastore.IPPool, block, ourSubnet netip.Prefix, underlay netip.Addr, mode func(*datastore.IPPool) string) bool {
	for _, p := range pools {
		cidr, err := netip.ParsePrefix(p.Spec.CIDR)
		if err == nil && cidr.Contains(block.Addr()) && dataplane.Encapsulate(mode(p), ourSubnet, underlay) {
			return true
		}
	}
	return false
}
