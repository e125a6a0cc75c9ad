package kernelsync

import (
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// learnable says whether an alien kernel route is imported into the
// speaker (BIRD's "learn"): routes of other daemons and of the operator
// (static, boot, ...), not the kernel's own connected and local routes —
// those are protocol direct's business.
func (s *Sync) learnable(r *netlink.Route) bool {
	if int(r.Protocol) == s.cfg.Protocol || r.Protocol == unix.RTPROT_KERNEL || r.Protocol == unix.RTPROT_REDIRECT ||
		slices.Contains(s.cfg.LearnIgnore, int(r.Protocol)) {
		return false
	}
	switch r.Type {
	case unix.RTN_UNICAST, unix.RTN_BLACKHOLE, unix.RTN_UNREACHABLE, unix.RTN_PROHIBIT:
		return true
	}
	return false
}
