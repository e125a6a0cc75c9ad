// Package birdshow reads what BIRD 2's birdc prints: the route table as
// prefix → next hops. The e2e harness and `petrel lab status` (a ToR's
// view of the Service routes) both read BIRD this way.
package birdshow

import (
	"net/netip"
	"slices"
	"strings"
)

// StripBanner removes the "BIRD 2.0.12 ready." line birdc prints first.
func StripBanner(out string) string {
	first, rest, _ := strings.Cut(out, "\n")
	if strings.HasPrefix(first, "BIRD ") && strings.HasSuffix(first, " ready.") {
		return rest
	}
	return out
}

// Routes parses BIRD 2 `show route` output:
//
//	Table master4:
//	10.99.5.0/24         unicast [frr 12:55:30.061] * (100) [i]
//		via 10.0.0.2 on eth1
//	                     unicast [gobgp 12:55:30.028] (100) [?]
//		via 10.0.1.2 on eth3
//	10.99.6.0/24         unicast [st 12:55:30.011] * (200)
//		via 10.0.0.2 on eth1 weight 1
//		via 10.0.1.2 on eth3 weight 1
//	10.99.1.0/24         blackhole [st 12:53:49.835] * (200)
//
// into prefix → the gateways of all of its routes, best route first,
// without duplicates (see AddRoute). A line starting with a prefix opens a
// network; further routes for it start with spaces instead of the prefix;
// gateway lines start with a tab and "via" (several for a multipath
// route); other tab lines ("dev eth1", attributes of `show route all`) are
// ignored.
func Routes(out string) map[string][]string {
	routes := map[string][]string{}
	prefix := ""
	for _, line := range strings.Split(StripBanner(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case line[0] != ' ' && line[0] != '\t':
			if f[0] == "Table" {
				prefix = ""
				continue
			}
			prefix = f[0]
			AddRoute(routes, prefix, "")
		case prefix != "" && f[0] == "via" && len(f) > 1:
			AddRoute(routes, prefix, f[1])
		}
	}
	return routes
}

// AddRoute records nextHop as a next hop of prefix: in first-seen order,
// without duplicates. The prefix is recorded even when nextHop is not a
// gateway: empty, or the unspecified address with which FRR and gobgp mark
// locally originated routes.
func AddRoute(routes map[string][]string, prefix, nextHop string) {
	hops, ok := routes[prefix]
	if !ok {
		hops = []string{}
	}
	if a, err := netip.ParseAddr(nextHop); err == nil && !a.IsUnspecified() && !slices.Contains(hops, nextHop) {
		hops = append(hops, nextHop)
	}
	routes[prefix] = hops
}
