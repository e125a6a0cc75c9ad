package nodeaddr

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseSettings(t *testing.T) {
	for _, tc := range []struct {
		family      int
		value       string
		mode        Mode
		addr        string
		bits        int
		description string
	}{
		{4, "", Unset, "", -1, "unset"},
		{4, "autodetect", Autodetect, "", -1, "autodetect"},
		{4, "none", None, "", -1, "IPv6-only node"},
		{4, "10.0.0.5", Explicit, "10.0.0.5", -1, "length looked up later"},
		{4, " 10.0.0.5/24 ", Explicit, "10.0.0.5", 24, "with length, spaces trimmed"},
		{6, "", Unset, "", -1, "no IPv6"},
		{6, "none", None, "", -1, "no IPv6"},
		{6, "autodetect", Autodetect, "", -1, "autodetect"},
		{6, "fd00::5", Explicit, "fd00::5", -1, "length looked up later"},
		{6, "2001:db8::5/64", Explicit, "2001:db8::5", 64, "with length"},
	} {
		s, err := Parse(tc.family, tc.value, "")
		if err != nil {
			t.Errorf("IPv%d %q (%s): %v", tc.family, tc.value, tc.description, err)
			continue
		}
		var want netip.Addr
		if tc.addr != "" {
			want = netip.MustParseAddr(tc.addr)
		}
		if s.Mode != tc.mode || s.Address != want || s.Bits != tc.bits || s.Method.Kind != MethodFirstFound {
			t.Errorf("IPv%d %q: got mode %d %s bits %d method %q, want mode %d %s bits %d first-found", tc.family, tc.value, s.Mode, s.Address, s.Bits, s.Method.Kind, tc.mode, want, tc.bits)
		}
	}
}

func TestParseRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		family        int
		value, method string
		want          string
	}{
		{4, "fd00::1", "", `IP="fd00::1": not an IPv4 address`},
		{4, "10.0.0.1/33", "", `IP="10.0.0.1/33": not an IPv4 address`},
		{4, "auto", "", `IP="auto": not an IPv4 address, address/length, "autodetect" or "none"`},
		{4, "127.0.0.1", "", `IP="127.0.0.1": not a unicast address a peer can reach`},
		{6, "10.0.0.1", "", `IP6="10.0.0.1": not an IPv6 address`},
		{6, "fe80::1", "", `IP6="fe80::1": not a unicast address a peer can reach`},
		{6, "fe80::1%eth0", "", `IP6="fe80::1%eth0": not an IPv6 address`},
		{6, "::ffff:10.0.0.1", "", `IP6="::ffff:10.0.0.1": not an IPv6 address`},
		{4, "autodetect", "nearest", `IP_AUTODETECTION_METHOD="nearest": not one of first-found`},
		{4, "autodetect", "kubernetes-internal-ip", `IP_AUTODETECTION_METHOD="kubernetes-internal-ip": not supported by petrel`},
		{6, "autodetect", "colour=blue", `IP6_AUTODETECTION_METHOD="colour=blue": not one of first-found`},
		{6, "autodetect", "can-reach=", `IP6_AUTODETECTION_METHOD="can-reach=": can-reach= needs a value`},
		{4, "autodetect", "interface=eth0,,eth1", `IP_AUTODETECTION_METHOD="interface=eth0,,eth1": interface= needs a value in every comma-separated item`},
		{6, "autodetect", "can-reach=10.0.0.1", `IP6_AUTODETECTION_METHOD="can-reach=10.0.0.1": 10.0.0.1 is not an IPv6 address`},
		{4, "autodetect", "can-reach=a,b", `can-reach= takes one destination`},
		{4, "autodetect", "interface=eth0,(", `IP_AUTODETECTION_METHOD="interface=eth0,(": "(" is not a regular expression`},
		{6, "autodetect", "skip-interface=[", `"[" is not a regular expression`},
		{4, "autodetect", "cidr=10.0.0.0/8, fd00::/8", `IP_AUTODETECTION_METHOD="cidr=10.0.0.0/8, fd00::/8": "fd00::/8" is not an IPv4 CIDR`},
		{6, "autodetect", "cidr=fd00::", `"fd00::" is not an IPv6 CIDR`},
	} {
		_, err := Parse(tc.family, tc.value, tc.method)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("IPv%d %q %q: error %v, want %q", tc.family, tc.value, tc.method, err, tc.want)
		}
	}
}

func TestParseMethods(t *testing.T) {
	m, err := ParseMethod(4, "interface=eth.*, ens[0-9]+")
	if err != nil || m.Kind != "interface" || len(m.Interfaces) != 2 || m.Interfaces[1].String() != "ens[0-9]+" {
		t.Errorf("interface=: %+v %v", m, err)
	}
	m, err = ParseMethod(6, "cidr=2001:db8:1::5/48,fd00::/8")
	if err != nil || m.Kind != "cidr" || len(m.CIDRs) != 2 || m.CIDRs[0] != netip.MustParsePrefix("2001:db8:1::/48") {
		t.Errorf("cidr=: %+v %v", m, err)
	}
	m, err = ParseMethod(4, "can-reach=www.example.com")
	if err != nil || m.Kind != "can-reach" || m.Dest != "www.example.com" {
		t.Errorf("can-reach= host name: %+v %v", m, err)
	}
	m, err = ParseMethod(6, "first-found")
	if err != nil || m.Kind != MethodFirstFound {
		t.Errorf("first-found: %+v %v", m, err)
	}
}

// Calico's exclusions keep first-found off bridges, tunnels and workloads
// but not off the node's own NICs.
func TestDefaultExclusions(t *testing.T) {
	for _, name := range []string{"docker0", "cbr0", "dummy0", "virbr0", "lxcbr0", "veth1234", "lo", "cali12345678901",
		"tunl0", "flannel.1", "kube-ipvs0", "cni0", "vxlan.calico", "vxlan-v6.calico", "wireguard.cali", "wg-v6.cali", "nodelocaldns"} {
		if !matchAny(defaultExclusions(), name) {
			t.Errorf("%s is not excluded", name)
		}
	}
	for _, name := range []string{"eth0", "ens3", "enp0s31f6", "bond0", "br-ex", "eno1"} {
		if matchAny(defaultExclusions(), name) {
			t.Errorf("%s is excluded", name)
		}
	}
}

func TestUsableAddresses(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		flags int
		want  bool
	}{
		{"10.0.0.1/24", 0, true},
		{"10.0.0.2/24", 0x01, true}, // IFA_F_SECONDARY for IPv4
		{"169.254.0.1/16", 0, false},
		{"127.0.0.1/8", 0, false},
		{"2001:db8::1/64", 0, true},
		{"fe80::1/64", 0, false},
		{"2001:db8::2/64", 0x01, false}, // temporary (privacy)
		{"2001:db8::3/64", 0x20, false}, // deprecated
		{"2001:db8::4/64", 0x08, false}, // DAD failed
	} {
		if got := (Addr{Prefix: netip.MustParsePrefix(tc.addr), Flags: tc.flags}).usable(); got != tc.want {
			t.Errorf("%s flags %#x: usable %v, want %v", tc.addr, tc.flags, got, tc.want)
		}
	}
}
