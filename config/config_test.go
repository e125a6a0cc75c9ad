package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/bgp"
)

const full = `
nodeName: node-a
routerID: 10.0.0.1
asNumber: 65010
listen: {address: 10.0.0.1, port: 1179}
socket: /tmp/petrel.sock
logLevel: debug
peers:
  - address: 10.0.0.2
    asNumber: 65010
    password: s3cret
    restartTime: 60s
    bfd: {minimumRecvInterval: 100ms, multiplier: 4}
    longLivedStaleTime: 10m
  - name: tor
    address: 10.0.1.254
    asNumber: 65000
    port: 1179
    multihop: 2
    sourceAddress: 10.0.0.1
    passive: true
    gracefulRestart: false
    addPaths: false
originate: [192.168.0.192/26, 192.168.1.0/26]
export: [192.168.0.0/16]
kernel: {protocol: 44, table: 100, scanTime: 5s, learn: false, interfaces: ["-veth*", "eth*"], restartWait: 30s}
`

func TestParseFull(t *testing.T) {
	c, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "node-a" || c.RouterID != netip.MustParseAddr("10.0.0.1") || c.ASN != 65010 || c.ListenPort != 1179 {
		t.Errorf("globals = %+v", c)
	}
	if len(c.Peers) != 2 {
		t.Fatalf("peers = %+v", c.Peers)
	}
	p0, p1 := c.Peers[0], c.Peers[1]
	if p0.BFD != (bgp.BFDConfig{Enabled: true, MinRx: 100 * time.Millisecond, MinTx: bgp.DefaultBFDInterval, Multiplier: 4}) || p0.LongLivedStaleTime != 10*time.Minute {
		t.Errorf("peer 0 BFD %+v, stale time %s", p0.BFD, p0.LongLivedStaleTime)
	}
	if p1.BFD.Enabled || p1.LongLivedStaleTime != 0 {
		t.Errorf("peer 1 has BFD %+v, stale time %s; want neither", p1.BFD, p1.LongLivedStaleTime)
	}
	if p0.Name != "Node_10_0_0_2" || p0.Port != 179 || !p0.GracefulRestart || !p0.AddPaths || p0.RestartTime != 60*time.Second || p0.Password != "s3cret" {
		t.Errorf("peer 0 = %+v", p0)
	}
	if p1.Name != "tor" || p1.Port != 1179 || p1.Multihop != 2 || !p1.Passive || p1.GracefulRestart || p1.AddPaths || p1.SourceAddress.String() != "10.0.0.1" {
		t.Errorf("peer 1 = %+v", p1)
	}
	if len(c.Originate) != 2 || c.Originate[0].String() != "192.168.0.192/26" {
		t.Errorf("originate = %v", c.Originate)
	}
	if !reflect.DeepEqual(c.Kernel, Kernel{Enabled: true, Protocol: 44, Table: 100, ScanTime: 5 * time.Second, Interfaces: []string{"-veth*", "eth*"}, RestartWait: 30 * time.Second}) {
		t.Errorf("kernel = %+v", c.Kernel)
	}
	if len(c.Export) != 1 || c.Export[0].String() != "192.168.0.0/16" {
		t.Errorf("export = %v", c.Export)
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte("routerID: 10.0.0.1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ASN != 64512 || c.ListenPort != 179 || c.Socket != DefaultSocket || c.NodeName == "" {
		t.Errorf("defaults = %+v", c)
	}
	want := Kernel{Enabled: true, Protocol: 12, Table: 254, ScanTime: 2 * time.Second, Learn: true, Interfaces: []string{"-cali*", "-kube-ipvs*", "-vxlan.calico", "-vxlan-v6.calico", "-tunl0", "*"}, RestartWait: 120 * time.Second}
	if !reflect.DeepEqual(c.Kernel, want) {
		t.Errorf("kernel defaults = %+v", c.Kernel)
	}
	if c, err := Parse([]byte("listen: {address: 10.9.9.9}\n")); err != nil || c.RouterID.String() != "10.9.9.9" {
		t.Errorf("router id from listen address: %v %v", c, err)
	}
}

func TestParseErrorsNameKeyAndValue(t *testing.T) {
	for _, tt := range []struct{ doc, want string }{
		{"routerID: 10.0.0.1\npeerz: []\n", `peerz: unknown key "peerz"`},
		{"routerID: 10.0.0.1\npeers:\n- address: 10.0.0.2\n  asNumber: 1\n- adress: 10.0.0.3\n", `peers[1].adress: unknown key "adress"`},
		{"routerID: 10.0.0.300\n", `routerID: "10.0.0.300" is not an IP address`},
		{"routerID: fd00::1\n", `routerID: "fd00::1" must be an IPv4 address`},
		{"asNumber: 1\n", "routerID: required"},
		{"routerID: 10.0.0.1\nasNumber: sixty\n", `asNumber: expected a whole number, got "sixty"`},
		{"routerID: 10.0.0.1\nasNumber: 4294967296\n", "asNumber: 4.294967296e+09 is out of range"},
		{"routerID: 10.0.0.1\nlisten: {port: 70000}\n", "listen.port: 70000 is not a TCP port"},
		{"routerID: 10.0.0.1\npeers:\n- address: 10.0.0.2\n", "peers[0].asNumber: required (peer 10.0.0.2)"},
		{"routerID: 10.0.0.1\npeers:\n- asNumber: 1\n", "peers[0].address: required"},
		{"routerID: 10.0.0.1\npeers:\n- {address: 10.0.0.2, asNumber: 1, port: 99999}\n", "peers[0].port: 99999 is out of range"},
		{"routerID: 10.0.0.1\npeers:\n- {address: 10.0.0.2, asNumber: 1, sourceAddress: 'fd00::1'}\n", "peers[0].sourceAddress: fd00::1 is not the same address family"},
		{"routerID: 10.0.0.1\npeers:\n- {address: 10.0.0.2, asNumber: 1, restartTime: soon}\n", `peers[0].restartTime: "soon" is not a positive duration`},
		{"routerID: 10.0.0.1\npeers:\n- {address: 10.0.0.2, asNumber: 1, restartTime: 2h}\n", "peers[0].restartTime: \"2h\" is longer than"},
		{"routerID: 10.0.0.1\npeers:\n- {address: 10.0.0.2, asNumber: 1}\n- {address: 10.0.0.2, asNumber: 2}\n", "peers[1].address: 10.0.0.2 is already configured as peers[0]"},
		{"routerID: 10.0.0.1\npeers:\n- {address: 10.0.0.2, asNumber: 1, gracefulRestart: yes please}\n", `peers[0].gracefulRestart: expected true or false, got "yes please"`},
		{"routerID: 10.0.0.1\npeers: {address: 10.0.0.2}\n", "peers: expected a list, got a mapping"},
		{"routerID: 10.0.0.1\noriginate: [192.168.0.5/26]\n", `originate[0]: "192.168.0.5/26" has host bits set; did you mean 192.168.0.0/26?`},
		{"routerID: 10.0.0.1\noriginate: [banana]\n", `originate[0]: "banana" is not a CIDR prefix`},
		{"routerID: 10.0.0.1\nkernel: {protocol: 4}\n", "kernel.protocol: 4 must be 5-255"},
		{"routerID: 10.0.0.1\nkernel: {scanTime: -1s}\n", `kernel.scanTime: "-1s" is not a positive duration`},
		{"routerID: 10.0.0.1\nlogLevel: loud\n", `logLevel: "loud" is not one of`},
		{"routerID: 10.0.0.1\nexport: [10.0.0.0/33]\n", `export[0]: "10.0.0.0/33" is not a CIDR prefix`},
		{"routerID: 10.0.0.1\nkernel: {interfaces: [\"[eth\"]}\n", `kernel.interfaces[0]: "[eth" is not an interface pattern`},
		{"routerID: 10.0.0.1\nkernel: {restartWait: forever}\n", `kernel.restartWait: "forever" is not a positive duration`},
		{"routerID: 10.0.0.1\npeers:\n- {address: 10.0.0.2, asNumber: 1, bfd: {minimumRecvInterval: fast}}\n", `peers[0].bfd.minimumRecvInterval: "fast" is not a positive duration`},
		{"routerID: 10.0.0.1\npeers:\n- {address: 10.0.0.2, asNumber: 1, bfd: {minimumSendInterval: 1ms}}\n", "peers[0]: peer 10.0.0.2: BFD minimum transmit interval 1ms is outside 10ms-"},
		{"routerID: 10.0.0.1\npeers:\n- {address: 10.0.0.2, asNumber: 1, bfd: {multiplier: 300}}\n", "peers[0].bfd.multiplier: 300 is out of range"},
		{"routerID: 10.0.0.1\npeers:\n- {address: 10.0.0.2, asNumber: 1, bfd: true}\n", "peers[0].bfd: expected a mapping"},
		{"routerID: 10.0.0.1\npeers:\n- {address: 10.0.0.2, asNumber: 1, longLivedStaleTime: 0s}\n", `peers[0].longLivedStaleTime: "0s" is not a positive duration`},
		{"routerID: 10.0.0.1\npeers:\n- {address: 10.0.0.2, asNumber: 1, holdTime: 2s}\n", `peers[0].holdTime: "2s" is outside the 3s-65535s`},
		{"routerID: 10.0.0.1\npeers:\n- {address: 10.0.0.2, asNumber: 1, ttlSecurity: 2, multihop: 3}\n", "peers[0].ttlSecurity: cannot be used together with multihop"},
		{"routerID: [10.0.0.1\n", "not valid YAML"},
	} {
		_, err := Parse([]byte(tt.doc))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q)\n error = %v\n want it to contain %q", tt.doc, err, tt.want)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	_, err := Load("/nonexistent/petrel.yaml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/petrel.yaml") {
		t.Errorf("error = %v", err)
	}
}
