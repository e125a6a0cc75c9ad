package mesh

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/datastore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const selfName, selfIP = "me", "10.0.0.9"

type nodeOpt func(*datastore.Node)

func mkNode(name, ip string, opts ...nodeOpt) *datastore.Node {
	n := &datastore.Node{}
	n.Name = name
	if ip != "" {
		n.Spec.BGP = &datastore.NodeBGPSpec{IPv4Address: ip + "/24"}
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func bgpSpec(n *datastore.Node) *datastore.NodeBGPSpec {
	if n.Spec.BGP == nil {
		n.Spec.BGP = &datastore.NodeBGPSpec{}
	}
	return n.Spec.BGP
}

func asn(a uint32) nodeOpt { return func(n *datastore.Node) { bgpSpec(n).ASNumber = &a } }
func rr(id string) nodeOpt {
	return func(n *datastore.Node) { bgpSpec(n).RouteReflectorClusterID = id }
}
func ip6(a string) nodeOpt { return func(n *datastore.Node) { bgpSpec(n).IPv6Address = a } }
func labels(kv ...string) nodeOpt {
	return func(n *datastore.Node) {
		n.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

func mkPeer(name string, spec datastore.BGPPeerSpec) *datastore.BGPPeer {
	p := &datastore.BGPPeer{Spec: spec}
	p.Name = name
	return p
}

func mkCfg(name string, spec datastore.BGPConfigurationSpec) *datastore.BGPConfiguration {
	c := &datastore.BGPConfiguration{Spec: spec}
	c.Name = name
	return c
}

func mkBFD(name, sel string, ifaces ...datastore.BFDInterface) *datastore.BFDConfiguration {
	c := &datastore.BFDConfiguration{Spec: datastore.BFDConfigurationSpec{NodeSelector: sel, Interfaces: ifaces}}
	c.Name = name
	return c
}

func ptr[T any](v T) *T                    { return &v }
func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
func secret(name, key string) *datastore.BGPPassword {
	return &datastore.BGPPassword{SecretKeyRef: &datastore.SecretKeySelector{Name: name, Key: key}}
}

type peerOpt func(*bgp.PeerConfig)

// want builds the PeerConfig Desired should produce for a peer of node
// "me" (10.0.0.9, AS 64512) with no options; opts adjust it.
func want(typ, ip string, asn uint32, opts ...peerOpt) bgp.PeerConfig {
	a := netip.MustParseAddr(ip)
	p := bgp.PeerConfig{
		Name: bgp.DefaultPeerName(typ, a), Type: typ, Address: a, ASN: asn, Port: 179,
		SourceAddress: netip.MustParseAddr(selfIP), GracefulRestart: true, RestartTime: 120 * time.Second, AddPaths: true,
	}
	if asn != bgp.DefaultASN {
		p.Multihop = DefaultMultihopTTL
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func passive(p *bgp.PeerConfig) { p.Passive = true }
func port(n uint16) peerOpt     { return func(p *bgp.PeerConfig) { p.Port = n } }
func multihop(n uint8) peerOpt  { return func(p *bgp.PeerConfig) { p.Multihop = n } }
func rrClient(id string) peerOpt {
	return func(p *bgp.PeerConfig) { p.RouteReflectorClient = true; p.ClusterID = netip.MustParseAddr(id) }
}
func with(f func(*bgp.PeerConfig)) peerOpt { return f }

// src6 sets the session's source to our IPv6 address a.
func src6(a string) peerOpt {
	return func(p *bgp.PeerConfig) { p.SourceAddress = netip.MustParseAddr(a) }
}

// dualStackRR: two reflectors and clients with both families, one client
// with IPv4 only and one with IPv6 only; self is renamed "me".
func dualStackRR(self string) []*datastore.Node {
	ns := []*datastore.Node{
		mkNode("rr1", "10.0.1.1", ip6("fd00:1::1/64"), rr("1.1.1.1"), labels("route-reflector", "true")),
		mkNode("rr2", "10.0.1.2", ip6("fd00:1::2/64"), rr("1.1.1.1"), labels("route-reflector", "true")),
		mkNode("c1", "10.0.2.1", ip6("fd00:2::1/64")),
		mkNode("c2", "10.0.2.2"),
		mkNode("c3", "", ip6("fd00:2::3/64")),
	}
	return asSelf(self, ns)
}

// asSelf renames node self to "me", the node Desired computes for.
func asSelf(self string, ns []*datastore.Node) []*datastore.Node {
	for _, n := range ns {
		if n.Name == self {
			n.Name = selfName
		}
	}
	return ns
}

const (
	mesh = bgp.PeerTypeMesh
	glob = bgp.PeerTypeGlobal
	spec = bgp.PeerTypeNodeSpecific
)

// threeNodes: "me" plus two others. "10.0.0.10" sorts before "10.0.0.9"
// as a string (so we connect to it) although it is numerically greater;
// "10.0.0.90" sorts after (so it connects to us: passive).
func threeNodes(opts ...nodeOpt) []*datastore.Node {
	return []*datastore.Node{mkNode(selfName, selfIP, opts...), mkNode("a", "10.0.0.10"), mkNode("b", "10.0.0.90")}
}

func okSecret(name, key string) (string, error) { return name + "/" + key, nil }

func TestDesired(t *testing.T) {
	rrSel := "route-reflector == 'true'"
	rrNodes := func(self string) []*datastore.Node {
		ns := []*datastore.Node{
			mkNode("rr1", "10.0.1.1", rr("1.1.1.1"), labels("route-reflector", "true")),
			mkNode("rr2", "10.0.1.2", rr("1.1.1.1"), labels("route-reflector", "true")),
			mkNode("rr3", "10.0.1.3", rr("2.2.2.2"), labels("route-reflector", "true")),
			mkNode("c1", "10.0.2.1"),
			mkNode("c2", "10.0.2.2"),
			mkNode("ext", "10.0.2.3", asn(65010)),
		}
		return asSelf(self, ns)
	}
	tests := []struct {
		name       string
		in         Input
		want       []bgp.PeerConfig
		asn        uint32
		listenPort uint16
		problems   []string // substrings, one per expected problem, in order
	}{
		{
			name: "mesh on by default; passive when the peer's address is the greater string",
			in:   Input{Nodes: threeNodes()},
			want: []bgp.PeerConfig{want(mesh, "10.0.0.10", 64512), want(mesh, "10.0.0.90", 64512, passive)},
		},
		{
			name: "mesh off in default",
			in:   Input{Nodes: threeNodes(), Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})}},
		},
		{
			name: "mesh off in default, on for this node",
			in: Input{Nodes: threeNodes(), Configs: []*datastore.BGPConfiguration{
				mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)}),
				mkCfg("node.me", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(true)}),
			}},
			want: []bgp.PeerConfig{want(mesh, "10.0.0.10", 64512), want(mesh, "10.0.0.90", 64512, passive)},
		},
		{
			name: "mesh off for this node only; another node's override does not apply",
			in: Input{Nodes: threeNodes(), Configs: []*datastore.BGPConfiguration{
				mkCfg("node.me", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)}),
				mkCfg("node.a", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(true)}),
			}},
		},
		{
			name: "node override setting other fields keeps default's mesh setting",
			in: Input{Nodes: threeNodes(), Configs: []*datastore.BGPConfiguration{
				mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)}),
				mkCfg("node.me", datastore.BGPConfigurationSpec{ListenPort: 1790}),
			}},
			listenPort: 1790,
		},
		{
			name: "nodes without IPv4, ourselves and duplicates of our address are not mesh peers",
			in: Input{Nodes: append(threeNodes(), mkNode("noaddr", ""), mkNode("v6only", "", ip6("fd00::5/64")),
				mkNode("twin", selfIP))},
			want:     []bgp.PeerConfig{want(mesh, "10.0.0.10", 64512), want(mesh, "10.0.0.90", 64512, passive)},
			problems: []string{`Node "twin": spec.bgp.ipv4Address 10.0.0.9 is also Node "me"'s`},
		},
		{
			name: "a route reflector does not join the mesh",
			in:   Input{Nodes: threeNodes(rr("1.1.1.1"))},
		},
		{
			name: "other route reflectors are not mesh peers",
			in:   Input{Nodes: append(threeNodes(), mkNode("rr", "10.0.1.1", rr("1.1.1.1")))},
			want: []bgp.PeerConfig{want(mesh, "10.0.0.10", 64512), want(mesh, "10.0.0.90", 64512, passive)},
		},
		{
			name: "per-node AS: eBGP mesh peers",
			in:   Input{Nodes: []*datastore.Node{mkNode(selfName, selfIP), mkNode("a", "10.0.0.10", asn(65001)), mkNode("b", "10.0.0.90")}},
			want: []bgp.PeerConfig{want(mesh, "10.0.0.10", 65001), want(mesh, "10.0.0.90", 64512, passive)},
		},
		{
			name: "our own AS from the node; others from default's asNumber",
			in: Input{Nodes: threeNodes(asn(65002)), Configs: []*datastore.BGPConfiguration{
				mkCfg("default", datastore.BGPConfigurationSpec{ASNumber: ptr(uint32(65100))}),
			}},
			asn:  65002,
			want: []bgp.PeerConfig{want(mesh, "10.0.0.10", 65100), want(mesh, "10.0.0.90", 65100, passive)},
		},
		{
			name: "global AS from default applies to us and the others: iBGP",
			in: Input{Nodes: threeNodes(), Configs: []*datastore.BGPConfiguration{
				mkCfg("default", datastore.BGPConfigurationSpec{ASNumber: ptr(uint32(65100))}),
			}},
			asn:  65100,
			want: []bgp.PeerConfig{want(mesh, "10.0.0.10", 65100, multihop(0)), want(mesh, "10.0.0.90", 65100, passive, multihop(0))},
		},
		{
			name: "listen ports: ours from node config, peers' from theirs or default",
			in: Input{Nodes: threeNodes(), Configs: []*datastore.BGPConfiguration{
				mkCfg("default", datastore.BGPConfigurationSpec{ListenPort: 1179}),
				mkCfg("node.me", datastore.BGPConfigurationSpec{ListenPort: 1180}),
				mkCfg("node.b", datastore.BGPConfigurationSpec{ListenPort: 1190}),
			}},
			listenPort: 1180,
			want:       []bgp.PeerConfig{want(mesh, "10.0.0.10", 64512, port(1179)), want(mesh, "10.0.0.90", 64512, passive, port(1190))},
		},
		{
			name: "mesh restart time, password and prefix limit",
			in: Input{Nodes: threeNodes(), Secret: okSecret, Configs: []*datastore.BGPConfiguration{
				mkCfg("default", datastore.BGPConfigurationSpec{NodeMeshMaxRestartTime: dur(300 * time.Second), NodeMeshPassword: secret("bgp", "mesh"), NodeMeshMaxPrefixes: ptr(uint32(5000))}),
			}},
			want: []bgp.PeerConfig{
				want(mesh, "10.0.0.10", 64512, with(func(p *bgp.PeerConfig) {
					p.RestartTime = 300 * time.Second
					p.Password = "bgp/mesh"
					p.MaxPrefixes = 5000
				})),
				want(mesh, "10.0.0.90", 64512, passive, with(func(p *bgp.PeerConfig) {
					p.RestartTime = 300 * time.Second
					p.Password = "bgp/mesh"
					p.MaxPrefixes = 5000
				})),
			},
		},
		{
			name: "mesh password without a resolver: mesh skipped, BGPPeers stay",
			in: Input{Nodes: threeNodes(),
				Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeMeshPassword: secret("bgp", "mesh")})},
				Peers:   []*datastore.BGPPeer{mkPeer("tor", datastore.BGPPeerSpec{PeerIP: "192.168.0.1", ASNumber: 65000})},
			},
			want:     []bgp.PeerConfig{want(glob, "192.168.0.1", 65000)},
			problems: []string{`BGPConfiguration "default": spec.nodeMeshPassword: password from Secret "bgp" key "mesh": no Kubernetes API to read Secrets from`},
		},
		{
			name: "global peers, with and without port",
			in: Input{Nodes: threeNodes(), Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})},
				Peers: []*datastore.BGPPeer{
					mkPeer("tor", datastore.BGPPeerSpec{PeerIP: "192.168.0.1", ASNumber: 65000}),
					mkPeer("tor2", datastore.BGPPeerSpec{PeerIP: "192.168.0.2:1179", ASNumber: 64512}),
				}},
			want: []bgp.PeerConfig{want(glob, "192.168.0.1", 65000), want(glob, "192.168.0.2", 64512, port(1179))},
		},
		{
			name: "a global peer at our own address is skipped",
			in:   Input{Nodes: threeNodes(), Peers: []*datastore.BGPPeer{mkPeer("self", datastore.BGPPeerSpec{PeerIP: selfIP, ASNumber: 64512})}},
			want: []bgp.PeerConfig{want(mesh, "10.0.0.10", 64512), want(mesh, "10.0.0.90", 64512, passive)},
		},
		{
			name: "node-specific by name and by selector",
			in: Input{Nodes: threeNodes(labels("rack", "r1")), Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})},
				Peers: []*datastore.BGPPeer{
					mkPeer("mine", datastore.BGPPeerSpec{Node: selfName, PeerIP: "192.168.0.1", ASNumber: 65000}),
					mkPeer("theirs", datastore.BGPPeerSpec{Node: "a", PeerIP: "192.168.0.2", ASNumber: 65000}),
					mkPeer("rack1", datastore.BGPPeerSpec{NodeSelector: "rack == 'r1'", PeerIP: "192.168.0.3", ASNumber: 65000}),
					mkPeer("rack2", datastore.BGPPeerSpec{NodeSelector: "rack == 'r2'", PeerIP: "192.168.0.4", ASNumber: 65000}),
					mkPeer("everyone", datastore.BGPPeerSpec{NodeSelector: "all()", PeerIP: "192.168.0.5", ASNumber: 65000}),
				}},
			want: []bgp.PeerConfig{want(spec, "192.168.0.1", 65000), want(spec, "192.168.0.3", 65000), want(spec, "192.168.0.5", 65000)},
		},
		{
			name: "Input.NodeLabels replaces the Node objects' labels",
			in: Input{Nodes: threeNodes(labels("rack", "r1")), Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})},
				NodeLabels: map[string]map[string]string{selfName: {"rack": "r2"}},
				Peers: []*datastore.BGPPeer{
					mkPeer("rack1", datastore.BGPPeerSpec{NodeSelector: "rack == 'r1'", PeerIP: "192.168.0.3", ASNumber: 65000}),
					mkPeer("rack2", datastore.BGPPeerSpec{NodeSelector: "rack == 'r2'", PeerIP: "192.168.0.4", ASNumber: 65000}),
				}},
			want: []bgp.PeerConfig{want(spec, "192.168.0.4", 65000)},
		},
		{
			name: "node-specific peer to an address with a global peering is dropped",
			in: Input{Nodes: threeNodes(), Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})},
				Peers: []*datastore.BGPPeer{
					mkPeer("a-specific", datastore.BGPPeerSpec{Node: selfName, PeerIP: "192.168.0.1", ASNumber: 65001}),
					mkPeer("z-global", datastore.BGPPeerSpec{PeerIP: "192.168.0.1", ASNumber: 65000}),
				}},
			want:     []bgp.PeerConfig{want(glob, "192.168.0.1", 65000)},
			problems: []string{`BGPPeer "a-specific": peer 192.168.0.1 dropped: already configured as a global peer by BGPPeer "z-global"`},
		},
		{
			name: "duplicates: mesh first, then global, then node specific by name",
			in: Input{Nodes: threeNodes(),
				Peers: []*datastore.BGPPeer{
					mkPeer("g", datastore.BGPPeerSpec{PeerIP: "10.0.0.10", ASNumber: 65000}),
					mkPeer("n2", datastore.BGPPeerSpec{Node: selfName, PeerIP: "192.168.0.1", ASNumber: 65002}),
					mkPeer("n1", datastore.BGPPeerSpec{Node: selfName, PeerIP: "192.168.0.1", ASNumber: 65001}),
				}},
			want: []bgp.PeerConfig{want(mesh, "10.0.0.10", 64512), want(mesh, "10.0.0.90", 64512, passive), want(spec, "192.168.0.1", 65001)},
			problems: []string{
				`BGPPeer "g": peer 10.0.0.10 dropped: already configured as a node-to-node mesh peer by node-to-node mesh`,
				`BGPPeer "n2": peer 192.168.0.1 dropped: already configured as a node specific peer by BGPPeer "n1"`,
			},
		},
		{
			name: "route reflector: same cluster not a client, other cluster and no cluster are clients, eBGP never",
			in:   Input{Nodes: rrNodes("rr1"), Peers: []*datastore.BGPPeer{mkPeer("rrs", datastore.BGPPeerSpec{PeerSelector: rrSel})}},
			// rr1 is 10.0.1.1 here: override the source address.
			want: func() []bgp.PeerConfig {
				src := with(func(p *bgp.PeerConfig) { p.SourceAddress = netip.MustParseAddr("10.0.1.1") })
				return []bgp.PeerConfig{
					want(glob, "10.0.1.2", 64512, src, passive),
					want(glob, "10.0.1.3", 64512, src, rrClient("1.1.1.1"), passive),
					want(spec, "10.0.2.1", 64512, src, rrClient("1.1.1.1"), passive),
					want(spec, "10.0.2.2", 64512, src, rrClient("1.1.1.1"), passive),
					want(spec, "10.0.2.3", 65010, src, passive),
				}
			}(),
		},
		{
			name: "route reflector client: meshes with clients, peers with every reflector",
			in:   Input{Nodes: rrNodes("c1"), Peers: []*datastore.BGPPeer{mkPeer("rrs", datastore.BGPPeerSpec{NodeSelector: "all()", PeerSelector: rrSel})}},
			want: func() []bgp.PeerConfig {
				src := with(func(p *bgp.PeerConfig) { p.SourceAddress = netip.MustParseAddr("10.0.2.1") })
				return []bgp.PeerConfig{
					want(spec, "10.0.1.1", 64512, src),
					want(spec, "10.0.1.2", 64512, src),
					want(spec, "10.0.1.3", 64512, src),
					want(mesh, "10.0.2.2", 64512, src, passive),
					want(mesh, "10.0.2.3", 65010, src, passive),
				}
			}(),
		},
		{
			name: "explicit peerIP of a node in the same cluster is not a client",
			in: Input{Nodes: rrNodes("rr1"), Peers: []*datastore.BGPPeer{
				mkPeer("to-rr2", datastore.BGPPeerSpec{Node: selfName, PeerIP: "10.0.1.2", ASNumber: 64512}),
				mkPeer("to-tor", datastore.BGPPeerSpec{Node: selfName, PeerIP: "10.0.9.1", ASNumber: 64512}),
			}},
			want: func() []bgp.PeerConfig {
				src := with(func(p *bgp.PeerConfig) { p.SourceAddress = netip.MustParseAddr("10.0.1.1") })
				return []bgp.PeerConfig{want(spec, "10.0.1.2", 64512, src, passive), want(spec, "10.0.9.1", 64512, src, rrClient("1.1.1.1"))}
			}(),
		},
		{
			name: "peerSelector forward and reverse",
			in: Input{
				Nodes: []*datastore.Node{
					mkNode(selfName, selfIP, labels("rack", "r1")),
					mkNode("r1b", "10.0.0.20", labels("rack", "r1")),
					mkNode("tor1", "10.0.0.1", labels("tor", "r1"), asn(65001)),
					mkNode("tor2", "10.0.0.2", labels("tor", "r2"), asn(65002)),
				},
				Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)}), mkCfg("node.tor1", datastore.BGPConfigurationSpec{ListenPort: 1179})},
				Peers: []*datastore.BGPPeer{
					mkPeer("rack1-to-tor1", datastore.BGPPeerSpec{NodeSelector: "rack == 'r1'", PeerSelector: "tor == 'r1'"}),
					mkPeer("rack2-to-tor2", datastore.BGPPeerSpec{NodeSelector: "rack == 'r2'", PeerSelector: "tor == 'r2'"}),
				},
			},
			want: []bgp.PeerConfig{want(spec, "10.0.0.1", 65001, port(1179))},
		},
		{
			name: "reverse peering on the selected node",
			in: Input{
				NodeName: "tor1",
				Nodes: []*datastore.Node{
					mkNode("r1a", "10.0.0.10", labels("rack", "r1")),
					mkNode("r1b", "10.0.0.20", labels("rack", "r1"), asn(65003)),
					mkNode("r2a", "10.0.0.30", labels("rack", "r2")),
					mkNode("tor1", selfIP, labels("tor", "r1"), asn(65001)),
				},
				Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})},
				Peers: []*datastore.BGPPeer{
					mkPeer("rack1-to-tor1", datastore.BGPPeerSpec{NodeSelector: "rack == 'r1'", PeerSelector: "tor == 'r1'", KeepaliveTime: dur(10 * time.Second)}),
				},
			},
			asn: 65001,
			want: []bgp.PeerConfig{
				want(spec, "10.0.0.10", 64512, multihop(DefaultMultihopTTL), with(func(p *bgp.PeerConfig) { p.KeepaliveTime = 10 * time.Second })),
				want(spec, "10.0.0.20", 65003, with(func(p *bgp.PeerConfig) { p.KeepaliveTime = 10 * time.Second })),
			},
		},
		{
			name: "reverse peering presents the BGPPeer's localASNumber",
			in: Input{
				NodeName: "tor1",
				Nodes: []*datastore.Node{
					mkNode("r1a", "10.0.0.10", labels("rack", "r1")),
					mkNode("tor1", selfIP, labels("tor", "r1"), asn(65001)),
				},
				Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})},
				Peers: []*datastore.BGPPeer{
					mkPeer("rack1-to-tor1", datastore.BGPPeerSpec{NodeSelector: "rack == 'r1'", PeerSelector: "tor == 'r1'", LocalASNumber: ptr(uint32(65100))}),
				},
			},
			asn:  65001,
			want: []bgp.PeerConfig{want(spec, "10.0.0.10", 65100)},
		},
		{
			name: "reversePeering Manual: no reverse session",
			in: Input{
				NodeName: "tor1",
				Nodes: []*datastore.Node{
					mkNode("r1a", "10.0.0.10", labels("rack", "r1")),
					mkNode("tor1", selfIP, labels("tor", "r1")),
				},
				Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})},
				Peers: []*datastore.BGPPeer{
					mkPeer("rack1-to-tor1", datastore.BGPPeerSpec{NodeSelector: "rack == 'r1'", PeerSelector: "tor == 'r1'", ReversePeering: "Manual"}),
				},
			},
		},
		{
			name: "per-peer options",
			in: Input{Nodes: threeNodes(), Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})},
				Secret: okSecret,
				Peers: []*datastore.BGPPeer{
					mkPeer("local-as", datastore.BGPPeerSpec{PeerIP: "192.168.0.1", ASNumber: 65000, LocalASNumber: ptr(uint32(65000))}),
					mkPeer("timers", datastore.BGPPeerSpec{PeerIP: "192.168.0.2", ASNumber: 65000, KeepaliveTime: dur(5 * time.Second), MaxRestartTime: dur(30 * time.Second)}),
					mkPeer("ttl", datastore.BGPPeerSpec{PeerIP: "192.168.0.3", ASNumber: 65000, TTLSecurity: ptr(uint8(2))}),
					mkPeer("nosrc", datastore.BGPPeerSpec{PeerIP: "192.168.0.4", ASNumber: 64512, SourceAddress: "None"}),
					mkPeer("pw", datastore.BGPPeerSpec{PeerIP: "192.168.0.5", ASNumber: 64512, Password: secret("bgp-secrets", "tor")}),
					mkPeer("usenodeip", datastore.BGPPeerSpec{PeerIP: "192.168.0.6", ASNumber: 64512, SourceAddress: "UseNodeIP", NumAllowedLocalASNumbers: ptr(int32(2))}),
					mkPeer("limit", datastore.BGPPeerSpec{PeerIP: "192.168.0.7", ASNumber: 64512, MaxPrefixes: 200}),
				}},
			want: []bgp.PeerConfig{
				want(glob, "192.168.0.1", 65000, multihop(0), with(func(p *bgp.PeerConfig) { p.LocalASN = 65000 })),
				want(glob, "192.168.0.2", 65000, with(func(p *bgp.PeerConfig) { p.KeepaliveTime = 5 * time.Second; p.RestartTime = 30 * time.Second })),
				want(glob, "192.168.0.3", 65000, multihop(0), with(func(p *bgp.PeerConfig) { p.TTLSecurity = 2 })),
				want(glob, "192.168.0.4", 64512, with(func(p *bgp.PeerConfig) { p.SourceAddress = netip.Addr{} })),
				want(glob, "192.168.0.5", 64512, with(func(p *bgp.PeerConfig) { p.Password = "bgp-secrets/tor" })),
				want(glob, "192.168.0.6", 64512, with(func(p *bgp.PeerConfig) { p.AllowOwnAS = 2 })),
				want(glob, "192.168.0.7", 64512, with(func(p *bgp.PeerConfig) { p.MaxPrefixes = 200 })),
			},
		},
		{
			name: "password: no resolver or a failing one skips the peer",
			in: Input{Nodes: threeNodes(), Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})},
				Peers: []*datastore.BGPPeer{
					mkPeer("pw", datastore.BGPPeerSpec{PeerIP: "192.168.0.5", ASNumber: 64512, Password: secret("bgp-secrets", "tor")}),
					mkPeer("plain", datastore.BGPPeerSpec{PeerIP: "192.168.0.6", ASNumber: 64512}),
				}},
			want:     []bgp.PeerConfig{want(glob, "192.168.0.6", 64512)},
			problems: []string{`BGPPeer "pw": spec.password: password from Secret "bgp-secrets" key "tor": no Kubernetes API to read Secrets from`},
		},
		{
			name: "password: resolver error",
			in: Input{Nodes: threeNodes(), Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})},
				Secret: func(name, key string) (string, error) { return "", errors.New("secret not found") },
				Peers:  []*datastore.BGPPeer{mkPeer("pw", datastore.BGPPeerSpec{PeerIP: "192.168.0.5", ASNumber: 64512, Password: secret("bgp-secrets", "tor")})}},
			problems: []string{`BGPPeer "pw": spec.password: password from Secret "bgp-secrets" key "tor": secret not found; peer skipped`},
		},
		{
			name: "IPv6 peer: source is the node's IPv6 address, or skipped without one",
			in: Input{Nodes: threeNodes(ip6("fd00::9/64")), Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})},
				Peers: []*datastore.BGPPeer{mkPeer("v6", datastore.BGPPeerSpec{PeerIP: "[fd00::1]:1179", ASNumber: 65000})}},
			want: []bgp.PeerConfig{want(glob, "fd00::1", 65000, port(1179), with(func(p *bgp.PeerConfig) { p.SourceAddress = netip.MustParseAddr("fd00::9") }))},
		},
		{
			name: "IPv6 peer of this node without a node IPv6 address: named; a global one is left out silently",
			in: Input{Nodes: threeNodes(), Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)})},
				Peers: []*datastore.BGPPeer{
					mkPeer("v6", datastore.BGPPeerSpec{Node: selfName, PeerIP: "fd00::1", ASNumber: 65000}),
					mkPeer("v6-global", datastore.BGPPeerSpec{PeerIP: "fd00::2", ASNumber: 65000}),
				}},
			problems: []string{`BGPPeer "v6": peer fd00::1 is IPv6 but Node "me" has no IPv6 BGP address`},
		},
		{
			name: "dual stack: one mesh session per family both nodes have, passive per family by string order",
			in: Input{Nodes: []*datastore.Node{
				mkNode(selfName, selfIP, ip6("fd00::9/64")),
				mkNode("a", "10.0.0.10", ip6("fd00::10/64")), // "fd00::10" < "fd00::9": we connect
				mkNode("b", "10.0.0.90"),                     // IPv4 only
				mkNode("c", "", ip6("fd00::a/64")),           // IPv6 only; "fd00::a" > "fd00::9": passive
				mkNode("twin6", "10.0.0.77", ip6("fd00::9/64")),
				mkNode("ll", "", ip6("fe80::5/64")), // link-local: no session
			}},
			want: []bgp.PeerConfig{
				want(mesh, "10.0.0.10", 64512), want(mesh, "10.0.0.77", 64512), want(mesh, "10.0.0.90", 64512, passive),
				want(mesh, "fd00::a", 64512, src6("fd00::9"), passive), want(mesh, "fd00::10", 64512, src6("fd00::9")),
			},
			problems: []string{
				`Node "ll": spec.bgp.ipv6Address fe80::5 is link-local, which BGP next hops cannot use; no IPv6 sessions with it`,
				`Node "twin6": spec.bgp.ipv6Address fd00::9 is also Node "me"'s`,
			},
		},
		{
			name: "IPv6-only node: meshes over IPv6 only; a global IPv4 BGPPeer is left out, as calico-node's bird.cfg does",
			in: Input{Nodes: []*datastore.Node{mkNode(selfName, "", ip6("fd00::9/64")), mkNode("a", "10.0.0.10", ip6("fd00::10/64")), mkNode("b", "10.0.0.90")},
				Peers: []*datastore.BGPPeer{mkPeer("tor", datastore.BGPPeerSpec{PeerIP: "192.168.0.1", ASNumber: 65000})}},
			want: []bgp.PeerConfig{want(mesh, "fd00::10", 64512, src6("fd00::9"))},
		},
		{
			name: "dual-stack route reflector: clients of each family over that family",
			in:   Input{Nodes: dualStackRR("rr1"), Peers: []*datastore.BGPPeer{mkPeer("rrs", datastore.BGPPeerSpec{PeerSelector: rrSel})}},
			want: func() []bgp.PeerConfig {
				src, src6 := with(func(p *bgp.PeerConfig) { p.SourceAddress = netip.MustParseAddr("10.0.1.1") }), src6("fd00:1::1")
				return []bgp.PeerConfig{
					want(glob, "10.0.1.2", 64512, src, passive),
					want(spec, "10.0.2.1", 64512, src, rrClient("1.1.1.1"), passive),
					want(spec, "10.0.2.2", 64512, src, rrClient("1.1.1.1"), passive),
					want(glob, "fd00:1::2", 64512, src6, passive),
					want(spec, "fd00:2::1", 64512, src6, rrClient("1.1.1.1"), passive),
					want(spec, "fd00:2::3", 64512, src6, rrClient("1.1.1.1"), passive),
				}
			}(),
		},
		{
			name: "IPv6-only route reflector client: peers with the reflectors and meshes over IPv6",
			in:   Input{Nodes: dualStackRR("c3"), Peers: []*datastore.BGPPeer{mkPeer("rrs", datastore.BGPPeerSpec{NodeSelector: "all()", PeerSelector: rrSel})}},
			want: []bgp.PeerConfig{
				want(spec, "fd00:1::1", 64512, src6("fd00:2::3")),
				want(spec, "fd00:1::2", 64512, src6("fd00:2::3")),
				want(mesh, "fd00:2::1", 64512, src6("fd00:2::3")),
			},
		},
		{
			name: "explicit IPv6 peerIP of a node: passive by address, takes its cluster ID",
			in: Input{Nodes: dualStackRR("rr1"), Peers: []*datastore.BGPPeer{
				mkPeer("to-rr2", datastore.BGPPeerSpec{Node: selfName, PeerIP: "fd00:1::2", ASNumber: 64512}),
				mkPeer("to-c1", datastore.BGPPeerSpec{Node: selfName, PeerIP: "fd00:2::1", ASNumber: 64512}),
			}},
			want: []bgp.PeerConfig{
				want(spec, "fd00:1::2", 64512, src6("fd00:1::1"), passive),
				want(spec, "fd00:2::1", 64512, src6("fd00:1::1"), rrClient("1.1.1.1"), passive),
			},
		},
		{
			name: "invalid objects are skipped, the rest stays",
			in: Input{
				Nodes: append(threeNodes(), mkNode("Bad_Name", "10.0.0.50"), mkNode("badaddr", "10.0.0.300")),
				Configs: []*datastore.BGPConfiguration{
					mkCfg("bogus", datastore.BGPConfigurationSpec{NodeToNodeMeshEnabled: ptr(false)}),
				},
				Peers: []*datastore.BGPPeer{
					mkPeer("bad-ip", datastore.BGPPeerSpec{PeerIP: "192.168.0.300", ASNumber: 65000}),
					mkPeer("bad-selector", datastore.BGPPeerSpec{NodeSelector: "rack == ", PeerIP: "192.168.0.2", ASNumber: 65000}),
					mkPeer("bad-peer-selector", datastore.BGPPeerSpec{PeerSelector: "has(x"}),
					mkPeer("good", datastore.BGPPeerSpec{PeerIP: "192.168.0.1", ASNumber: 65000}),
					mkPeer("no-as", datastore.BGPPeerSpec{PeerIP: "192.168.0.3"}),
				},
			},
			want: []bgp.PeerConfig{want(mesh, "10.0.0.10", 64512), want(mesh, "10.0.0.90", 64512, passive), want(glob, "192.168.0.1", 65000)},
			problems: []string{
				`BGPConfiguration "bogus": metadata.name`,
				`Node "Bad_Name": metadata.name`,
				`Node "badaddr": spec.bgp.ipv4Address`,
				`BGPPeer "bad-ip": spec.peerIP`,
				`BGPPeer "bad-peer-selector": spec.peerSelector: selector "has(x": expected ')'`,
				`BGPPeer "bad-selector": spec.nodeSelector: selector "rack == ": expected a quoted value at position 8`,
				`BGPPeer "no-as": spec.asNumber`,
			},
		},
		{
			name: "BFD for directly connected BGPPeers only; LLGR with maxRestartTime as stale time",
			in: Input{Nodes: []*datastore.Node{mkNode(selfName, selfIP)}, Peers: []*datastore.BGPPeer{
				mkPeer("tor", datastore.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65000, FailureDetectionMode: "BFDIfDirectlyConnected", RestartMode: "LongLivedGracefulRestart", MaxRestartTime: dur(30 * time.Second)}),
				mkPeer("far", datastore.BGPPeerSpec{PeerIP: "10.9.0.1", ASNumber: 65000, FailureDetectionMode: "BFDIfDirectlyConnected", RestartMode: "LongLivedGracefulRestart"}),
				mkPeer("gr", datastore.BGPPeerSpec{PeerIP: "10.0.0.2", ASNumber: 65000, FailureDetectionMode: "None", RestartMode: "GracefulRestart", MaxRestartTime: dur(10 * time.Second)}),
			}},
			want: []bgp.PeerConfig{
				want(glob, "10.0.0.1", 65000, with(func(p *bgp.PeerConfig) {
					p.BFD = bgp.BFDConfig{Enabled: true}
					p.LongLivedStaleTime = 30 * time.Second
				})),
				want(glob, "10.0.0.2", 65000, with(func(p *bgp.PeerConfig) { p.RestartTime = 10 * time.Second })),
				want(glob, "10.9.0.1", 65000, with(func(p *bgp.PeerConfig) { p.LongLivedStaleTime = bgp.DefaultLLGRStaleTime })),
			},
		},
		{
			name: "mesh BFD and LLGR from BGPConfiguration; timers from the node's BFDConfiguration by interface",
			in: Input{
				Nodes:   []*datastore.Node{mkNode(selfName, selfIP, labels("rack", "a")), mkNode("a", "10.0.0.10"), mkNode("b", "10.1.0.90")},
				Configs: []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeMeshFailureDetectionMode: "BFDIfDirectlyConnected", NodeMeshRestartMode: "LongLivedGracefulRestart", NodeMeshMaxRestartTime: dur(time.Minute)})},
				BFDConfigs: []*datastore.BFDConfiguration{
					mkBFD("other-rack", "rack == 'b'", datastore.BFDInterface{MatchPattern: "*", Multiplier: 9}),
					mkBFD("rack-a", "rack == 'a'",
						datastore.BFDInterface{MatchPattern: "eth0", MinimumRecvInterval: dur(50 * time.Millisecond), MinimumSendInterval: dur(60 * time.Millisecond), Multiplier: 4},
						datastore.BFDInterface{MatchPattern: "eth*", Multiplier: 7}),
					mkBFD("zz-all", ""),
				},
				Interfaces: []Interface{
					{Name: "lo", Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
					{Name: "eth1", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.9/16")}},
					{Name: "eth0", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.9/24")}},
				},
			},
			want: []bgp.PeerConfig{
				want(mesh, "10.0.0.10", 64512, with(func(p *bgp.PeerConfig) {
					p.BFD = bgp.BFDConfig{Enabled: true, MinRx: 50 * time.Millisecond, MinTx: 60 * time.Millisecond, Multiplier: 4}
					p.LongLivedStaleTime = time.Minute
				})),
				want(mesh, "10.1.0.90", 64512, passive, with(func(p *bgp.PeerConfig) {
					p.BFD = bgp.BFDConfig{Enabled: true, Multiplier: 7}
					p.LongLivedStaleTime = time.Minute
				})),
			},
			problems: []string{`BFDConfiguration "zz-all": also selects Node "me"; "rack-a" is used`},
		},
		{
			name: "an invalid BFDConfiguration is ignored, BFD keeps petrel's defaults",
			in: Input{
				Nodes:      []*datastore.Node{mkNode(selfName, selfIP), mkNode("a", "10.0.0.10")},
				Configs:    []*datastore.BGPConfiguration{mkCfg("default", datastore.BGPConfigurationSpec{NodeMeshFailureDetectionMode: "BFDIfDirectlyConnected"})},
				BFDConfigs: []*datastore.BFDConfiguration{mkBFD("bad", "", datastore.BFDInterface{MatchPattern: "*", Multiplier: 256})},
			},
			want:     []bgp.PeerConfig{want(mesh, "10.0.0.10", 64512, with(func(p *bgp.PeerConfig) { p.BFD = bgp.BFDConfig{Enabled: true} }))},
			problems: []string{`BFDConfiguration "bad": spec.interfaces[0].multiplier: 256 must be 1-255; ignored`},
		},
		{
			name:     "this node has no BGP address: no peers",
			in:       Input{Nodes: []*datastore.Node{mkNode(selfName, "", asn(65005)), mkNode("a", "10.0.0.10")}, Peers: []*datastore.BGPPeer{mkPeer("tor", datastore.BGPPeerSpec{PeerIP: "192.168.0.1", ASNumber: 65000})}},
			asn:      65005,
			problems: []string{`Node "me": no BGP address (spec.bgp.ipv4Address or spec.bgp.ipv6Address)`},
		},
		{
			name:     "this node is missing",
			in:       Input{Nodes: []*datastore.Node{mkNode("a", "10.0.0.10")}},
			problems: []string{`Node "me": not found`},
		},
		{
			name:     "this node is invalid",
			in:       Input{Nodes: []*datastore.Node{mkNode(selfName, selfIP, rr("not-an-ip")), mkNode("a", "10.0.0.10")}},
			problems: []string{`Node "me": spec.bgp.routeReflectorClusterID`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in.NodeName == "" {
				tt.in.NodeName = selfName
			}
			got := Desired(tt.in)
			if !reflect.DeepEqual(got.Peers, tt.want) {
				t.Errorf("peers:\n%s\nwant:\n%s", dump(got.Peers), dump(tt.want))
			}
			wantASN := tt.asn
			if wantASN == 0 {
				wantASN = 64512
			}
			wantPort := tt.listenPort
			if wantPort == 0 {
				wantPort = 179
			}
			if got.ASN != wantASN || got.ListenPort != wantPort {
				t.Errorf("ASN %d, listen port %d; want %d, %d", got.ASN, got.ListenPort, wantASN, wantPort)
			}
			if len(got.Problems) != len(tt.problems) {
				t.Errorf("%d problems, want %d:\n%s", len(got.Problems), len(tt.problems), errs(got.Problems))
				return
			}
			for i, p := range got.Problems {
				if !strings.Contains(p.Error(), tt.problems[i]) {
					t.Errorf("problem %d = %q, want it to contain %q", i, p, tt.problems[i])
				}
			}
		})
	}
}

// TestDeterministic: the result does not depend on the order of the input.
func TestDeterministic(t *testing.T) {
	nodes := threeNodes()
	peers := []*datastore.BGPPeer{
		mkPeer("n2", datastore.BGPPeerSpec{Node: selfName, PeerIP: "192.168.0.1", ASNumber: 65002}),
		mkPeer("n1", datastore.BGPPeerSpec{Node: selfName, PeerIP: "192.168.0.1", ASNumber: 65001}),
		mkPeer("g", datastore.BGPPeerSpec{PeerIP: "192.168.0.2", ASNumber: 65000}),
	}
	first := Desired(Input{NodeName: selfName, Nodes: nodes, Peers: peers})
	rev := func(xs []*datastore.BGPPeer) []*datastore.BGPPeer {
		out := make([]*datastore.BGPPeer, len(xs))
		for i, x := range xs {
			out[len(xs)-1-i] = x
		}
		return out
	}
	second := Desired(Input{NodeName: selfName, Nodes: []*datastore.Node{nodes[2], nodes[0], nodes[1]}, Peers: rev(peers)})
	if !reflect.DeepEqual(first.Peers, second.Peers) || errs(first.Problems) != errs(second.Problems) {
		t.Errorf("order-dependent result:\n%s%s\nvs\n%s%s", dump(first.Peers), errs(first.Problems), dump(second.Peers), errs(second.Problems))
	}
}

func dump(ps []bgp.PeerConfig) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "  %+v\n", p)
	}
	return b.String()
}

func errs(es []error) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "  %v\n", e)
	}
	return b.String()
}
