package config

import (
	"fmt"
	"strings"
)

// Forwarding says which IP forwarding switches the daemon turns on in its
// own network namespace at start, as calico-node does with Felix's
// ipForwarding: Enabled. A switch that is off is left alone, not turned off.
type Forwarding struct {
	IPv4 bool // net.ipv4.ip_forward
	IPv6 bool // net.ipv6.conf.all.forwarding
	// IPv6Auto turns net.ipv6.conf.all.forwarding on once the node routes
	// IPv6 (it has an IPv6 BGP address and so IPv6 sessions, or IPv6
	// blocks), as Felix does when IPv6 support is on.
	IPv6Auto bool
}

// Names of the forwarding settings, as flags; the environment variables
// are the same in upper case with a PETREL_ prefix.
const (
	IPForwardingSetting   = "ip-forwarding"
	IPv6ForwardingSetting = "ipv6-forwarding"
)

// Defaults: IPv4 forwarding on, as Felix's default; IPv6 forwarding on
// once the node routes IPv6 (Auto), as Felix with IPv6 support.
const (
	DefaultIPForwarding   = "Enabled"
	DefaultIPv6Forwarding = "Auto"
)

// ParseForwarding validates the two settings, each "Enabled" or
// "Disabled" (Felix's spelling; case does not matter); IPv6 also takes
// "Auto".
func ParseForwarding(ipv4, ipv6 string) (Forwarding, error) {
	var f Forwarding
	var err error
	if f.IPv4, err = parseEnabled(IPForwardingSetting, ipv4); err != nil {
		return Forwarding{}, err
	}
	if strings.EqualFold(strings.TrimSpace(ipv6), "auto") {
		f.IPv6Auto = true
		return f, nil
	}
	if f.IPv6, err = parseEnabled(IPv6ForwardingSetting, ipv6); err != nil {
		return Forwarding{}, fmt.Errorf("%w (or Auto)", err)
	}
	return f, nil
}

func parseEnabled(setting, value string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(value)) {
	case "enabled":
		return true, nil
	case "disabled":
		return false, nil
	}
	return false, fmt.Errorf("%s: %q is neither Enabled nor Disabled", setting, value)
}
