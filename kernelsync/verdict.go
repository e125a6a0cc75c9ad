package kernelsync

import (
	"fmt"
	"strings"
)

// Verdict is the answer to "is petrel's route for this prefix in the FIB,
// and if not, why?", computed from a FIBEntry alone.
type Verdict struct {
	// Wanted: kernel sync wants a route of its own at the prefix.
	Wanted bool
	// Installed: kernel sync's route is in the kernel.
	Installed bool
	// Reason says why a wanted route is missing, or what is special about
	// an installed one (graceful-restart stale); empty otherwise.
	Reason string
}

// Verdict judges e; protocol is kernel sync's route protocol.
func (e FIBEntry) Verdict(protocol int) Verdict {
	v := Verdict{Wanted: e.Desired != nil, Installed: e.IsInstalled}
	switch {
	case e.Excluded:
		v.Reason = "excluded: the VXLAN dataplane programs this prefix, not kernel sync"
	case v.Wanted && !v.Installed:
		v.Reason = e.whyMissing(protocol)
	case v.Installed && e.Stale && e.GracefulRestart:
		v.Reason = "graceful-restart stale: adopted at start, kept until the peers' End-of-RIB"
	case v.Installed && !v.Wanted:
		v.Reason = "no longer wanted; being removed"
	case !v.Wanted && len(e.Gateways) > 0:
		var why []string
		for _, u := range e.Unusable {
			why = append(why, fmt.Sprintf("%s: %s", u.Gateway, u.Why))
		}
		v.Reason = "next hop unreachable (" + strings.Join(why, "; ") + ")"
	}
	return v
}

func (e FIBEntry) whyMissing(protocol int) string {
	for _, r := range e.Kernel {
		if r.Protocol != protocol {
			return fmt.Sprintf("a foreign route (protocol %s, %s) holds the prefix; petrel does not override it", ProtocolName(r.Protocol), r.Type)
		}
	}
	if e.Failing {
		return "the last kernel write failed; retried at every scan"
	}
	return "not written yet"
}

// ProtocolName names a route protocol as iproute2 does.
func ProtocolName(p int) string {
	switch p {
	case 2:
		return "kernel"
	case 3:
		return "boot"
	case 4:
		return "static"
	}
	return fmt.Sprint(p)
}
