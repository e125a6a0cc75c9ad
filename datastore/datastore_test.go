package datastore

import (
	"strings"
	"testing"
)

func TestDecodeSeedAndErrors(t *testing.T) {
	objs, err := Decode([]byte(`
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 192.168.0.0/16, blockSize: 26, vxlanMode: CrossSubnet, ipipMode: Never, natOutgoing: true}
---
apiVersion: crd.projectcalico.org/v1
kind: BGPPeer
metadata: {name: tor}
spec: {peerIP: "10.0.0.254:1179", asNumber: 65000}
`))
	if err != nil || len(objs) != 2 {
		t.Fatalf("decode: %v, %d objects", err, len(objs))
	}
	if objs[0].GetObjectKind().GroupVersionKind().Version != "v1" {
		t.Errorf("calicoctl apiVersion not stored as the CRD's: %v", objs[0].GetObjectKind().GroupVersionKind())
	}

	for _, tt := range []struct{ doc, want string }{
		{"apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/33}\n", `IPPool "p": spec.cidr: "10.0.0.0/33" is not a CIDR`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.5/16}\n", `has host bits set (did you mean 10.0.0.0/16?)`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, blockSize: 12}\n", `IPPool "p": spec.blockSize: 12 must be 20-32`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, vxlanMode: Sometimes}\n", `spec.vxlanMode: "Sometimes" must be one of Always, CrossSubnet, Never`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, vxlanMode: Always, ipipMode: Always}\n", "cannot be enabled together with ipipMode"},
		{"apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, cidrr: x}\n", `unknown field "cidrr"`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, allowedUses: [LoadBalancer, Workload]}\n", "LoadBalancer cannot be combined with another use"},
		{"apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16, allowedUses: [Lb]}\n", `must be one of Workload, Tunnel, LoadBalancer`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 10.0.0.300, asNumber: 1}\n", `BGPPeer "b": spec.peerIP: "10.0.0.300" is not an IP address`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 10.0.0.3}\n", `BGPPeer "b": spec.asNumber: 0 is required`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 10.0.0.3, asNumber: 1, node: a, nodeSelector: all()}\n", "cannot be used together with spec.node"},
		{"apiVersion: crd.projectcalico.org/v1\nkind: BGPConfiguration\nmetadata: {name: global}\nspec: {}\n", `must be "default" or "node.<node name>"`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {serviceLoadBalancerAggregation: Partly}\n", `spec.serviceLoadBalancerAggregation: "Partly" must be one of Enabled, Disabled`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 10.0.0.3, asNumber: 1, failureDetectionMode: BFD}\n", `BGPPeer "tor": spec.failureDetectionMode: "BFD" must be one of None, BFDIfDirectlyConnected`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 10.0.0.3, asNumber: 1, restartMode: LLGR}\n", `BGPPeer "tor": spec.restartMode: "LLGR" must be one of GracefulRestart, LongLivedGracefulRestart`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeMeshRestartMode: Long}\n", `BGPConfiguration "default": spec.nodeMeshRestartMode: "Long" must be one of`},
		{"apiVersion: projectcalico.org/v3\nkind: BFDConfiguration\nmetadata: {name: default}\nspec: {nodeSelector: \"rack ==\"}\n", `BFDConfiguration "default": spec.nodeSelector: "rack ==" is not a selector`},
		{"apiVersion: projectcalico.org/v3\nkind: BFDConfiguration\nmetadata: {name: default}\nspec: {interfaces: [{matchPattern: \"eth[\"}]}\n", `BFDConfiguration "default": spec.interfaces[0].matchPattern: "eth[" is not an interface pattern`},
		{"apiVersion: projectcalico.org/v3\nkind: BFDConfiguration\nmetadata: {name: default}\nspec: {interfaces: [{matchPattern: \"*\", minimumRecvInterval: 1ms}]}\n", `BFDConfiguration "default": spec.interfaces[0].minimumRecvInterval: "1ms" must be 10ms-`},
		{"apiVersion: projectcalico.org/v3\nkind: BFDConfiguration\nmetadata: {name: default}\nspec: {interfaces: [{matchPattern: \"*\", minimumSendInterval: 10ms, multiplier: 300}]}\n", `BFDConfiguration "default": spec.interfaces[0].multiplier: 300 must be 1-255`},
		{"apiVersion: projectcalico.org/v3\nkind: BFDConfiguration\nmetadata: {name: default}\nspec: {interfaces: [{matchPattern: \"*\", minimumRecvInterval: soon}]}\n", `BFDConfiguration: time: invalid duration "soon"`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: Node\nmetadata: {name: node1}\nspec: {bgp: {ipv4Address: fd00::1/64}}\n", `Node "node1": spec.bgp.ipv4Address: "fd00::1/64" is not an IPv4 address`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: Node\nmetadata: {name: node1}\nspec: {ipv6VXLANTunnelAddr: 10.0.0.1}\n", `Node "node1": spec.ipv6VXLANTunnelAddr: "10.0.0.1" is not an IPv6 address`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: Node\nmetadata: {name: node1}\nspec: {vxlanTunnelMACAddrV6: \"66:aa\"}\n", `Node "node1": spec.vxlanTunnelMACAddrV6: "66:aa" is not a MAC address`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: Node\nmetadata: {name: Bad_Name}\n", `metadata.name: "Bad_Name" is not a valid name`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: IPAMBlock\nmetadata: {name: b}\nspec: {cidr: 10.0.0.0/30, unallocated: [4]}\n", `spec.unallocated[0]: 4 is not an ordinal of 10.0.0.0/30 (0-3)`},
		{"apiVersion: crd.projectcalico.org/v1\nkind: Gadget\nmetadata: {name: g}\n", `kind: unknown kind "Gadget"`},
		{"apiVersion: v9\nkind: IPPool\n", `apiVersion "v9"`},
		{"kind: [\n", "not valid YAML"},
	} {
		_, err := Decode([]byte(tt.doc))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Decode(%q)\n error = %v\n want it to contain %q", tt.doc, err, tt.want)
		}
	}
}

func TestParseKindAndPlural(t *testing.T) {
	for in, want := range map[string]Kind{"ippool": KindIPPool, "IPPools": KindIPPool, "blockaffinities": KindBlockAffinity, "BGPPeer": KindBGPPeer, "bfdconfigurations": KindBFDConfiguration} {
		if k, err := ParseKind(in); err != nil || k != want {
			t.Errorf("ParseKind(%q) = %v, %v", in, k, err)
		}
	}
	if _, err := ParseKind("pods"); err == nil {
		t.Error("pods accepted")
	}
}
