package kernelsync

import "net/netip"

// SetNotProgrammed makes ranges the address ranges whose BGP routes are
// never programmed, whatever their length, as the rejectcidrs of Calico's
// calico_kernel_programming filter: Service CIDRs, whose addresses
// kube-proxy owns on every node, are advertised to the network but a route
// another node advertises for one must not pull the traffic over there.
// Safe from any goroutine; the latest call wins.
func (s *Sync) SetNotProgrammed(ranges []netip.Prefix) { offer(s.notProgrammedReq, ranges) }

// inNotProgrammed reports whether p lies inside a not-programmed range.
func (s *Sync) inNotProgrammed(p netip.Prefix) bool {
	for r := range s.notProgrammed {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}
