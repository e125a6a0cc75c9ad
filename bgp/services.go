package bgp

import (
	"context"
	"maps"
	"net/netip"
)

// SourceService is the source of the Service prefixes this node
// advertises (cluster, external and LoadBalancer IPs).
const SourceService = "service"

// SetServices makes the Service prefixes this node advertises equal to
// prefixes. Like the node's blocks, each is a local route exported exactly,
// to iBGP and eBGP peers alike, and never programmed into the kernel.
// ranges are the configured Service CIDRs: a route reflector also passes
// on the Service routes it learns over iBGP inside them (Calico's
// reflectors do the same), nothing else.
func (s *Speaker) SetServices(ctx context.Context, prefixes, ranges []netip.Prefix) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	want := map[exportRange]bool{}
	for _, r := range ranges {
		want[within(r)] = true
	}
	if !maps.Equal(want, s.serviceRanges) {
		s.serviceRanges = want
		if s.reflect {
			if err := s.resyncExportLocked(ctx); err != nil {
				return err
			}
		}
	}
	return s.setExportedLocked(ctx, SourceService, prefixes)
}

// Services returns the Service prefixes this node advertises.
func (s *Speaker) Services() []netip.Prefix { return s.exportedBy(SourceService) }
