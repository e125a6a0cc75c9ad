// Package nodeaddr resolves a node's BGP addresses the way calico-node's
// startup does: $IP and $IP6 (an address with or without a prefix length,
// "autodetect" or "none") and $IP_AUTODETECTION_METHOD /
// $IP6_AUTODETECTION_METHOD (first-found, can-reach=, interface=,
// skip-interface=, cidr=) become the address prefix the node registers as
// Node.spec.bgp.ipv4Address / ipv6Address.
//
// Parse checks a setting (naming the variable and value in its error) so a
// bad one is refused at start; Resolve looks at the node's interfaces and
// routes through netlink, in whatever network namespace its handle is in.
package nodeaddr

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// Calico's variable names.
const (
	EnvIP            = "IP"
	EnvIP6           = "IP6"
	EnvIPMethod      = "IP_AUTODETECTION_METHOD"
	EnvIP6Method     = "IP6_AUTODETECTION_METHOD"
	ValueAutodetect  = "autodetect"
	ValueNone        = "none"
	MethodFirstFound = "first-found"
)

// DefaultExclusions are the interfaces first-found and skip-interface=
// never take an address from (Calico's DEFAULT_INTERFACES_TO_EXCLUDE):
// bridges, tunnels, workloads and other addresses that are not the node's.
var DefaultExclusions = []string{
	"^docker.*", "^cbr.*", "^dummy.*",
	"^virbr.*", "^lxcbr.*", "^veth.*", "^lo",
	"^cali.*", "^tunl.*", "^flannel.*", "^kube-ipvs.*", "^cni.*",
	`^vxlan\.calico.*`, `^vxlan-v6\.calico.*`, `^wireguard\.cali.*`, `^wg-v6\.cali.*`,
	"^nodelocaldns.*",
}

// Mode is what a setting asks for.
type Mode int

const (
	// Unset ($IP or $IP6 empty): keep the Node's address; IPv4 is
	// autodetected when the Node has none, as calico-node does.
	Unset Mode = iota
	// Explicit: the address given.
	Explicit
	// Autodetect with the family's autodetection method.
	Autodetect
	// None: no address of this family is managed (the Node's stays).
	None
)

// Setting is one family's parsed settings.
type Setting struct {
	Family int    // 4 or 6
	Raw    string // $IP / $IP6 as given
	Mode   Mode
	// Address is the Explicit address; Bits() is -1 when it was given
	// without a length (Resolve looks the length up).
	Address netip.Addr
	Bits    int
	Method  Method
}

// Method is a parsed autodetection method.
type Method struct {
	Raw  string // as given ("" = first-found)
	Kind string // first-found, can-reach, interface, skip-interface, cidr
	// Interfaces are interface= or skip-interface= patterns.
	Interfaces []*regexp.Regexp
	// CIDRs are cidr= ranges.
	CIDRs []netip.Prefix
	// Dest is can-reach='s destination: an address or a host name.
	Dest string
}

// Parse checks family's settings: value is $IP (family 4) or $IP6
// (family 6), method its autodetection method.
func Parse(family int, value, method string) (Setting, error) {
	env, _ := names(family)
	s := Setting{Family: family, Raw: value, Bits: -1}
	var err error
	if s.Method, err = ParseMethod(family, method); err != nil {
		return Setting{}, err
	}
	switch strings.TrimSpace(value) {
	case "":
		s.Mode = Unset
		return s, nil
	case ValueAutodetect:
		s.Mode = Autodetect
		return s, nil
	case ValueNone:
		s.Mode = None
		return s, nil
	}
	s.Mode = Explicit
	v := strings.TrimSpace(value)
	if p, perr := netip.ParsePrefix(v); perr == nil {
		s.Address, s.Bits = p.Addr(), p.Bits()
	} else if a, aerr := netip.ParseAddr(v); aerr == nil {
		s.Address = a
	} else {
		return Setting{}, fmt.Errorf("%s=%q: not an IPv%d address, address/length, %q or %q", env, value, family, ValueAutodetect, ValueNone)
	}
	if s.Address.Zone() != "" || s.Address.Is4In6() || (family == 4) != s.Address.Is4() {
		return Setting{}, fmt.Errorf("%s=%q: not an IPv%d address", env, value, family)
	}
	if !s.Address.IsGlobalUnicast() {
		return Setting{}, fmt.Errorf("%s=%q: not a unicast address a peer can reach (loopback, link-local, multicast or unspecified)", env, value)
	}
	return s, nil
}

// ParseMethod checks family's autodetection method ("" = first-found).
func ParseMethod(family int, method string) (Method, error) {
	_, env := names(family)
	m := Method{Raw: method, Kind: MethodFirstFound}
	kind, arg, hasArg := strings.Cut(strings.TrimSpace(method), "=")
	if !hasArg {
		switch kind {
		case "", MethodFirstFound:
			return m, nil
		case "kubernetes-internal-ip":
			return Method{}, fmt.Errorf("%s=%q: not supported by petrel (it needs the Kubernetes Node's status); use can-reach=, interface= or cidr=, or set the address", env, method)
		}
		return Method{}, fmt.Errorf("%s=%q: not one of first-found, can-reach=DEST, interface=REGEX, skip-interface=REGEX, cidr=CIDR", env, method)
	}
	m.Kind = kind
	items := listSep.Split(strings.TrimSpace(arg), -1)
	if slices.Contains(items, "") {
		return Method{}, fmt.Errorf("%s=%q: %s= needs a value in every comma-separated item", env, method, kind)
	}
	switch kind {
	case "can-reach":
		if len(items) != 1 {
			return Method{}, fmt.Errorf("%s=%q: can-reach= takes one destination", env, method)
		}
		m.Dest = items[0]
		if a, err := netip.ParseAddr(m.Dest); err == nil && (family == 4) != a.Is4() {
			return Method{}, fmt.Errorf("%s=%q: %s is not an IPv%d address", env, method, m.Dest, family)
		}
	case "interface", "skip-interface":
		for _, item := range items {
			re, err := regexp.Compile(item)
			if err != nil {
				return Method{}, fmt.Errorf("%s=%q: %q is not a regular expression: %v", env, method, item, err)
			}
			m.Interfaces = append(m.Interfaces, re)
		}
	case "cidr":
		for _, item := range items {
			p, err := netip.ParsePrefix(item)
			if err != nil || (family == 4) != p.Addr().Is4() {
				return Method{}, fmt.Errorf("%s=%q: %q is not an IPv%d CIDR", env, method, item, family)
			}
			m.CIDRs = append(m.CIDRs, p.Masked())
		}
	default:
		return Method{}, fmt.Errorf("%s=%q: not one of first-found, can-reach=DEST, interface=REGEX, skip-interface=REGEX, cidr=CIDR", env, method)
	}
	return m, nil
}

// names are family's address and method variables.
func names(family int) (string, string) {
	if family == 6 {
		return EnvIP6, EnvIP6Method
	}
	return EnvIP, EnvIPMethod
}

// listSep separates the items of Calico's lists ("a, b,c"), as
// calico-node splits them.
var listSep = regexp.MustCompile(`\s*,\s*`)
